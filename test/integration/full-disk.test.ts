import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BACKEND, expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const MiB = 1024 * 1024;

/** Mounts a small tmpfs: a real file system that fills up. Fails (never skips) where mounting is impossible. */
async function mountSmallFs(sizeMiB: number): Promise<{ dir: string; unmount(): Promise<void> }> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-full-'));
  const dir = path.join(base, 'mnt');
  await fs.mkdir(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    await fs.rm(base, { recursive: true, force: true });
    throw new Error(`this test needs to mount a small tmpfs (root, mount(8)); mounting failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`);
  }
  return {
    dir,
    unmount: async () => {
      execFileSync('umount', [dir], { stdio: 'pipe' });
      await fs.rm(base, { recursive: true, force: true });
    },
  };
}

/** Writes a file until the file system refuses another byte. */
async function fill(dir: string): Promise<void> {
  const fh = await fs.open(path.join(dir, `filler-${randomBytes(4).toString('hex')}`), 'w');
  try {
    for (const size of [MiB, 4096, 1]) {
      const buf = Buffer.alloc(size, 1);
      try {
        for (;;) await fh.write(buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    await fh.close();
  }
  const st = await fs.statfs(dir);
  assert.equal(Number(st.bavail), 0, 'the file system is not full');
}

/**
 * The issue: with the database and storage on one full file system, DELETE /media/{id} and
 * DELETE /upload/{id} answered 500. Deletes work on a full disk, writes are refused with 507
 * insufficient-storage, and /readyz reports storage not ready.
 */
describe('a full disk', () => {
  let mount: Awaited<ReturnType<typeof mountSmallFs>>;
  let t: TestApp;
  let client: SessionClient;

  before(async () => {
    mount = await mountSmallFs(32);
    t = await startTestApp({
      STORAGE_ROOT: path.join(mount.dir, 'storage'),
      STORAGE_MIN_FREE: '1MiB',
      // The embedded database lives on the same file system, as in the attack.
      ...(BACKEND === 'embedded' ? { DATABASE_URL: `sqlite:${path.join(mount.dir, 'qasar.sqlite')}` } : {}),
    });
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(async () => {
    for (const name of await fs.readdir(mount.dir)) if (name.startsWith('filler-')) await fs.rm(path.join(mount.dir, name));
    await t?.close();
    await mount?.unmount();
  });

  it('deletes media and uploads on a full disk, refuses writes with 507 and is not ready', async () => {
    const { completed } = await client.uploadWhole(randomBytes(4 * MiB), { filename: 'kept.bin', chunkSize: MiB });
    assert.equal(completed.statusCode, 201, completed.body);
    const media = completed.json();
    const partial = (await client.create({ filename: 'partial.bin', total_size: 4 * MiB, chunk_size: MiB })).json();
    for (const i of [0, 1]) assert.equal((await client.putChunk(partial.session_id, i, randomBytes(MiB))).statusCode, 200);
    const waiting = (await client.create({ filename: 'waiting.bin', total_size: 2 * MiB, chunk_size: MiB })).json();
    assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);

    await fill(mount.dir);
    const delMedia = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${media.id}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(delMedia.statusCode, 204, delMedia.body);
    assert.equal((await t.app.inject({ method: 'GET', url: `/api/v1/media/${media.id}`, headers: t.auth(t.tenant.userKey) })).statusCode, 404);

    await fill(mount.dir);
    const delUpload = await client.abort(partial.session_id);
    assert.equal(delUpload.statusCode, 204, delUpload.body);
    assert.equal((await client.status(partial.session_id)).json().state, 'aborted');

    await fill(mount.dir);
    expectProblem(await client.create({ filename: 'new.bin', total_size: MiB }), 507, 'insufficient-storage');
    expectProblem(await client.putChunk(waiting.session_id, 0, randomBytes(MiB)), 507, 'insufficient-storage');
    const tus = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tus',
      headers: {
        ...t.auth(t.tenant.userKey),
        'tus-resumable': '1.0.0',
        'upload-length': String(MiB),
        'upload-metadata': `filename ${Buffer.from('t.bin').toString('base64')}`,
      },
    });
    expectProblem(tus, 507, 'insufficient-storage');
    const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.json().checks.storage.ok, false);
  });

  it('answers a write that runs out of space anyway (no free-space margin kept) with 507, not 500', async () => {
    for (const name of await fs.readdir(mount.dir)) if (name.startsWith('filler-')) await fs.rm(path.join(mount.dir, name));
    const bare = await startTestApp({
      STORAGE_ROOT: path.join(mount.dir, 'storage-bare'),
      STORAGE_MIN_FREE: '0',
      ...(BACKEND === 'embedded' ? { DATABASE_URL: `sqlite:${path.join(mount.dir, 'bare.sqlite')}` } : {}),
    });
    try {
      const bareClient = new SessionClient(bare.app, bare.tenant.userKey);
      const session = (await bareClient.create({ filename: 'late.bin', total_size: 2 * MiB, chunk_size: MiB })).json();
      await fill(mount.dir);
      expectProblem(await bareClient.putChunk(session.session_id, 0, randomBytes(MiB)), 507, 'insufficient-storage');
    } finally {
      for (const name of await fs.readdir(mount.dir)) if (name.startsWith('filler-')) await fs.rm(path.join(mount.dir, name));
      await bare.close();
    }
  });
});
