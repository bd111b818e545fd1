import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalStore } from '../../src/storage/local-store.js';
import { UnsafePathError } from '../../src/storage/layout.js';
import { clearLeftovers, makeWorkDir } from '../../src/storage/scratch.js';
import { readText } from '../../src/storage/store.js';
import { storeContract } from '../support/store-contract.js';

storeContract('local folder', async () => {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-local-store-'));
  return { store: new LocalStore(path.join(tmp, 'storage')), cleanup: () => fs.rm(tmp, { recursive: true, force: true }) };
});

describe('local store: symbolic links planted in storage', () => {
  let tmp: string;
  let root: string;
  let store: LocalStore;

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-local-links-'));
    // The root itself is a link, as when an operator mounts storage elsewhere.
    await fs.mkdir(path.join(tmp, 'real-storage'));
    root = path.join(tmp, 'storage');
    await fs.symlink(path.join(tmp, 'real-storage'), root);
    store = new LocalStore(root);
    await store.put('t/u/mine/posters/poster.jpg', 'mine');
    await store.put('t/u/theirs/posters/poster.jpg', 'theirs');
    await fs.writeFile(path.join(tmp, 'outside.txt'), 'outside');
  });
  after(() => fs.rm(tmp, { recursive: true, force: true }));

  it('follows a link inside the root and says where it leads', async () => {
    await fs.symlink('poster.jpg', path.join(root, 't/u/mine/posters/alias.jpg'));
    await fs.symlink(path.join(root, 't/u/theirs/posters/poster.jpg'), path.join(root, 't/u/mine/posters/theirs.jpg'));
    assert.equal((await store.stat('t/u/mine/posters/alias.jpg'))?.key, 't/u/mine/posters/poster.jpg');
    assert.equal((await store.stat('t/u/mine/posters/theirs.jpg'))?.key, 't/u/theirs/posters/poster.jpg');
    assert.equal(await readText(store, 't/u/mine/posters/alias.jpg'), 'mine');
  });

  it('refuses a link that leads out of the root', async () => {
    await fs.symlink(path.join(tmp, 'outside.txt'), path.join(root, 't/u/mine/posters/out.jpg'));
    await assert.rejects(store.stat('t/u/mine/posters/out.jpg'), UnsafePathError);
    await assert.rejects(store.read('t/u/mine/posters/out.jpg'), UnsafePathError);
    await assert.rejects(
      store.withLocalFile('t/u/mine/posters/out.jpg', async () => undefined),
      UnsafePathError,
    );
  });

  it('never writes, deletes, lists or publishes through a linked folder', async () => {
    await fs.symlink(path.join(root, 't/u/theirs/posters'), path.join(root, 't/u/mine/thumbnails'));
    await assert.rejects(store.put('t/u/mine/thumbnails/poster.jpg', 'overwritten'), UnsafePathError);
    await assert.rejects(store.put('t/u/mine/thumbnails/new/x.jpg', 'created'), UnsafePathError);
    await assert.rejects(store.delete('t/u/mine/thumbnails/poster.jpg'), UnsafePathError);
    await assert.rejects(store.list('t/u/mine/thumbnails'), UnsafePathError);
    await assert.rejects(store.deletePrefix('t/u/mine/thumbnails/x'), UnsafePathError);
    const dir = path.join(tmp, 'fresh');
    await fs.mkdir(dir);
    await assert.rejects(store.publishFolder(dir, 't/u/mine/thumbnails/sub'), UnsafePathError);
    assert.equal(await readText(store, 't/u/theirs/posters/poster.jpg'), 'theirs');
    assert.ok(!(await store.list('t/u/theirs')).some((o) => o.key.includes('new')), 'nothing was created in their folder');
    // A linked folder of its own is removed as a link, not followed.
    await store.deletePrefix('t/u/mine/thumbnails');
    assert.equal(await readText(store, 't/u/theirs/posters/poster.jpg'), 'theirs');
  });

  it('makes and clears no scratch folder through a linked media folder', async () => {
    await fs.mkdir(path.join(tmp, 'elsewhere/.work-media-old'), { recursive: true });
    await fs.symlink(path.join(tmp, 'elsewhere'), path.join(root, 't/u/linked'));
    await assert.rejects(store.scratchRoot('t/u/linked'), UnsafePathError);
    const target = { store, prefix: 't/u/linked' };
    await assert.rejects(makeWorkDir(target, 'media'), UnsafePathError);
    await assert.rejects(clearLeftovers(target, ['media']), UnsafePathError);
    assert.deepEqual(await fs.readdir(path.join(tmp, 'elsewhere')), ['.work-media-old'], 'nothing made or removed out there');
  });

  it('lists no links, and moves no link out', async () => {
    await fs.symlink(path.join(tmp, 'outside.txt'), path.join(root, 't/u/mine/posters/listed.jpg'));
    assert.ok(!(await store.list('t/u/mine')).some((o) => o.key.endsWith('listed.jpg')));
    await assert.rejects(store.moveToLocal('t/u/mine/posters/listed.jpg', path.join(tmp, 'taken')), UnsafePathError);
  });

  it('replaces a link rather than writing through it', async () => {
    await fs.symlink(path.join(tmp, 'outside.txt'), path.join(root, 't/u/mine/posters/replace.jpg'));
    await store.put('t/u/mine/posters/replace.jpg', 'ours now');
    assert.equal(await fs.readFile(path.join(tmp, 'outside.txt'), 'utf8'), 'outside');
    assert.equal(await readText(store, 't/u/mine/posters/replace.jpg'), 'ours now');
  });

  it('keeps its own dot names out of listings', async () => {
    await fs.mkdir(path.join(root, 't/u/mine/.work-media-abc/hls'), { recursive: true });
    await fs.writeFile(path.join(root, 't/u/mine/.work-media-abc/hls/master.m3u8'), 'scratch');
    assert.ok(!(await store.list('t/u/mine')).some((o) => o.key.includes('.work-')));
    assert.equal(await store.scratchRoot('t/u/mine'), path.join(root, 't/u/mine'));
  });
});
