import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { UnsafePathError } from '../../src/storage/layout.js';
import { isNotStored, readText, type MediaStore, type ServeStrategy } from '../../src/storage/store.js';

export interface StoreUnderTest {
  store: MediaStore;
  /** Removes everything the store and the test made. */
  cleanup(): Promise<void>;
}

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** The bytes a client gets through a serve strategy (the whole object). */
async function served(how: ServeStrategy): Promise<Buffer> {
  if (how.kind === 'file') return fs.readFile(path.join(how.root, how.relative));
  if (how.kind === 'stream') return bytesOf(await how.open());
  const res = await fetch(how.url);
  assert.equal(res.status, 200, `the redirect URL answers: ${how.url}`);
  return Buffer.from(await res.arrayBuffer());
}

/**
 * What every MediaStore backend must do, run against each (the local folder here; an object
 * store runs the same suite). Each test works below its own prefix, so backends that cannot be
 * emptied cheaply (a shared bucket) need no cleanup between tests.
 */
export function storeContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`MediaStore contract: ${name}`, () => {
    let s: StoreUnderTest;
    let store: MediaStore;
    let local: string;
    let n = 0;
    /** A fresh prefix for one test. */
    const fresh = () => `t${process.pid}/u/m${++n}-${randomBytes(3).toString('hex')}`;

    before(async () => {
      s = await open();
      store = s.store;
      local = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-store-contract-'));
    });
    after(async () => {
      await s.cleanup();
      await fs.rm(local, { recursive: true, force: true });
    });

    it('stores strings, bytes and streams, and replaces an object whole', async () => {
      const p = fresh();
      await store.put(`${p}/a.txt`, 'hello');
      await store.put(`${p}/b.bin`, new Uint8Array([1, 2, 3]));
      await store.put(`${p}/c.bin`, Readable.from([Buffer.from('str'), Buffer.from('eam')]));
      assert.equal(await readText(store, `${p}/a.txt`), 'hello');
      assert.deepEqual([...(await bytesOf(await store.read(`${p}/b.bin`)))], [1, 2, 3]);
      assert.equal(await readText(store, `${p}/c.bin`), 'stream');
      await store.put(`${p}/a.txt`, 'replaced, and longer');
      assert.equal(await readText(store, `${p}/a.txt`), 'replaced, and longer');
      assert.deepEqual(
        (await store.list(p)).map((o) => o.key),
        [`${p}/a.txt`, `${p}/b.bin`, `${p}/c.bin`],
        'no temporary object is left',
      );
    });

    it('reads byte ranges, inclusive at both ends', async () => {
      const p = fresh();
      await store.put(`${p}/r.bin`, '0123456789');
      assert.equal((await bytesOf(await store.read(`${p}/r.bin`, { start: 2, end: 4 }))).toString(), '234');
      assert.equal((await bytesOf(await store.read(`${p}/r.bin`, { start: 9, end: 9 }))).toString(), '9');
    });

    it('answers what is stored: size, time and the key', async () => {
      const p = fresh();
      const before = Date.now();
      await store.put(`${p}/s.txt`, 'twelve bytes');
      const o = await store.stat(`${p}/s.txt`);
      assert.ok(o);
      assert.equal(o.key, `${p}/s.txt`);
      assert.equal(o.size, 12);
      assert.ok(o.modified.getTime() >= before - 2_000 && o.modified.getTime() <= Date.now() + 2_000, String(o.modified));
      assert.equal(await store.stat(`${p}/missing.txt`), undefined);
      assert.equal(await store.stat(p), undefined, 'a prefix is no object');
    });

    it('says "not stored" when reading or borrowing a missing key', async () => {
      const p = fresh();
      await assert.rejects(async () => bytesOf(await store.read(`${p}/nope`)), isNotStored);
      await assert.rejects(
        store.withLocalFile(`${p}/nope`, async () => 'never'),
        isNotStored,
      );
      assert.equal(await store.moveToLocal(`${p}/nope`, path.join(local, 'nope')), false);
    });

    it('lists the objects below a prefix, and only those', async () => {
      const p = fresh();
      await store.put(`${p}/hls/master.m3u8`, 'm');
      await store.put(`${p}/hls/v0/seg-1.m4s`, 's');
      await store.put(`${p}/posters/poster.jpg`, 'p');
      await store.put(`${p}x/hls/other.m3u8`, 'not below the prefix');
      assert.deepEqual(
        (await store.list(p)).map((o) => o.key),
        [`${p}/hls/master.m3u8`, `${p}/hls/v0/seg-1.m4s`, `${p}/posters/poster.jpg`],
      );
      assert.deepEqual(
        (await store.list(`${p}/hls`)).map((o) => [o.key, o.size]),
        [
          [`${p}/hls/master.m3u8`, 1],
          [`${p}/hls/v0/seg-1.m4s`, 1],
        ],
      );
      assert.deepEqual(await store.list(`${p}/nothing`), []);
    });

    it('deletes one object, and every object below a prefix', async () => {
      const p = fresh();
      await store.put(`${p}/a/1`, '1');
      await store.put(`${p}/a/2`, '2');
      await store.put(`${p}/b/3`, '3');
      await store.put(`${p}b/4`, 'a sibling prefix that shares the start');
      await store.delete(`${p}/a/1`);
      await store.delete(`${p}/a/1`);
      assert.deepEqual(
        (await store.list(p)).map((o) => o.key),
        [`${p}/a/2`, `${p}/b/3`],
      );
      await store.deletePrefix(p);
      await store.deletePrefix(p);
      assert.deepEqual(await store.list(p), []);
      assert.equal(await readText(store, `${p}b/4`), 'a sibling prefix that shares the start');
      await assert.rejects(store.deletePrefix(''), UnsafePathError);
    });

    it('takes in a local file, copied or moved, and moves one back out', async () => {
      const p = fresh();
      const file = path.join(local, `in-${n}`);
      await fs.writeFile(file, 'original bytes');
      await store.putFile(`${p}/media/original.mp4`, file);
      assert.equal(await fs.readFile(file, 'utf8'), 'original bytes', 'a copy leaves the file');
      await store.putFile(`${p}/media/moved.mp4`, file, { move: true });
      await assert.rejects(fs.stat(file), { code: 'ENOENT' });
      assert.equal(await readText(store, `${p}/media/moved.mp4`), 'original bytes');
      const back = path.join(local, `back-${n}`);
      assert.equal(await store.moveToLocal(`${p}/media/moved.mp4`, back), true);
      assert.equal(await fs.readFile(back, 'utf8'), 'original bytes');
      assert.equal(await store.stat(`${p}/media/moved.mp4`), undefined);
    });

    it('publishes a local folder whole, replacing what was below the prefix', async () => {
      const p = fresh();
      await store.put(`${p}/hls/old-only.m4s`, 'old');
      await store.put(`${p}/hls/master.m3u8`, 'old master');
      await store.put(`${p}/dash/keep.mpd`, 'another folder');
      const dir = path.join(local, `publish-${n}`);
      await fs.mkdir(path.join(dir, 'v0'), { recursive: true });
      await fs.writeFile(path.join(dir, 'master.m3u8'), 'new master');
      await fs.writeFile(path.join(dir, 'v0', 'seg-1.m4s'), 'segment');
      await store.publishFolder(dir, `${p}/hls`);
      assert.deepEqual(
        (await store.list(p)).map((o) => o.key),
        [`${p}/dash/keep.mpd`, `${p}/hls/master.m3u8`, `${p}/hls/v0/seg-1.m4s`],
      );
      assert.equal(await readText(store, `${p}/hls/master.m3u8`), 'new master');
      assert.equal(await fs.stat(dir).catch(() => undefined), undefined, 'the local folder is used up');
      // A first publish (nothing there before) works the same.
      const dir2 = path.join(local, `publish-${n}-2`);
      await fs.mkdir(dir2);
      await fs.writeFile(path.join(dir2, 'poster.jpg'), 'poster');
      await store.publishFolder(dir2, `${p}/posters`);
      assert.equal(await readText(store, `${p}/posters/poster.jpg`), 'poster');
    });

    it('lends a local file with the bytes to tools', async () => {
      const p = fresh();
      await store.put(`${p}/media/original.bin`, 'for ffmpeg');
      const seen = await store.withLocalFile(`${p}/media/original.bin`, async (file) => {
        assert.ok(path.isAbsolute(file), file);
        return fs.readFile(file, 'utf8');
      });
      assert.equal(seen, 'for ffmpeg');
      assert.equal(await readText(store, `${p}/media/original.bin`), 'for ffmpeg', 'the object is still there');
    });

    it('answers how to serve an object with one of its strategies', async () => {
      const p = fresh();
      await store.put(`${p}/posters/poster.jpg`, 'jpeg bytes');
      const o = await store.stat(`${p}/posters/poster.jpg`);
      assert.ok(o);
      for (const redirect of [false, true]) {
        const how = await store.serve(o, { contentType: 'image/jpeg', cacheControl: 'private, max-age=60', expiresAt: Date.now() + 60_000, redirect });
        assert.ok(['file', 'redirect', 'stream'].includes(how.kind), how.kind);
        if (!redirect) assert.notEqual(how.kind, 'redirect', 'no redirect where it is not allowed');
        assert.equal((await served(how)).toString(), 'jpeg bytes');
        if (how.kind === 'stream') assert.equal((await bytesOf(await how.open({ start: 1, end: 4 }))).toString(), 'peg ');
      }
    });

    it('hands out an absolute local scratch root for any prefix', async () => {
      assert.ok(path.isAbsolute(await store.scratchRoot(fresh())));
      await store.probe();
    });

    it('refuses anything that is not a key, on every method', async () => {
      const bad = ['', '/abs/key', '../up', 'a/../b', 'a//b', 'a/./b', 'a/.hidden', 'a\\b', 'a/b\0c', 'x/'];
      for (const key of bad) {
        await assert.rejects(store.put(key, 'x'), UnsafePathError, `put ${JSON.stringify(key)}`);
        await assert.rejects(store.stat(key), UnsafePathError, `stat ${JSON.stringify(key)}`);
        await assert.rejects(store.read(key), UnsafePathError, `read ${JSON.stringify(key)}`);
        await assert.rejects(store.delete(key), UnsafePathError, `delete ${JSON.stringify(key)}`);
        if (key) await assert.rejects(store.deletePrefix(key), UnsafePathError, `deletePrefix ${JSON.stringify(key)}`);
      }
    });
  });
}
