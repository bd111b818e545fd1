import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createContext } from '../../src/cli/compose.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/shared/logger.js';
import { expectProblem, listFiles, SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient, sha256 } from '../support/upload-client.js';

describe('chunked-session uploads', () => {
  let t: TestApp;
  let client: SessionClient;

  before(async () => {
    t = await startTestApp({ UPLOAD_MAX_SIZE: '8MiB' }, { worker: true });
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(() => t.close());

  /**
   * Only finished media (originals and what the worker derived, or is deriving in its scratch
   * folder) may remain: no chunk, temp or merge file anywhere.
   */
  async function assertNoLeftovers(): Promise<void> {
    const files = await listFiles(t.ctx.layout.root);
    const stray = files.filter((f) => !/^[^/]+\/[^/]+\/[^/]+\/(\.work-[^/]+\/)?(media|hls|dash|thumbnails|posters|webm|webp)\/[^/]+$/.test(f));
    assert.deepEqual(stray, []);
  }

  it('uploads a real video out of order and in parallel, and it becomes a media record', async () => {
    const data = await fs.readFile(path.join(SAMPLES, 'h264-1920x1080-aac-deer.mp4'));
    const created = await client.create({
      filename: 'deer clip.mp4',
      total_size: data.length,
      chunk_size: 64 * 1024,
      sha256: sha256(data),
      caption: 'A deer in the bushes',
      user_tags: ['Nature', 'nature', ' wildlife '],
      labels: ['Deer', 'Forest'],
    });
    assert.equal(created.statusCode, 201);
    const s = created.json();
    assert.equal(s.chunk_count, Math.ceil(data.length / (64 * 1024)));
    assert.equal(s.chunk_size, 64 * 1024);
    assert.deepEqual(s.missing_chunks, [...Array(s.chunk_count).keys()]);

    const order = [...Array(s.chunk_count).keys()].reverse();
    const half = order.slice(0, 3);
    await Promise.all(half.map((i) => client.putChunk(s.session_id, i, data.subarray(i * s.chunk_size, (i + 1) * s.chunk_size))));
    // A client that crashed asks where it was.
    const mid = (await client.status(s.session_id)).json();
    assert.equal(mid.received_chunks, 3);
    assert.deepEqual(
      mid.missing_chunks,
      order.slice(3).sort((a, b) => a - b),
    );

    const rest = await Promise.all(order.slice(3).map((i) => client.putChunk(s.session_id, i, data.subarray(i * s.chunk_size, (i + 1) * s.chunk_size))));
    assert.ok(rest.every((r) => r.statusCode === 200));
    // Re-sending a chunk is harmless.
    const again = await client.putChunk(s.session_id, 0, data.subarray(0, s.chunk_size));
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().received_chunks, s.chunk_count);

    const done = await client.complete(s.session_id);
    assert.equal(done.statusCode, 201, done.body);
    const media = done.json();
    assert.equal(media.kind, 'video');
    assert.equal(media.mime_type, 'video/mp4');
    assert.equal(media.size, data.length);
    assert.equal(media.sha256, sha256(data));
    assert.equal(media.original_filename, 'deer clip.mp4');
    assert.equal(media.caption, 'A deer in the bushes');
    assert.deepEqual(media.user_tags, ['Nature', 'wildlife']);
    assert.deepEqual(
      media.labels.map((l: { name: string }) => l.name),
      ['Deer', 'Forest'],
      'as they were given',
    );
    assert.ok(['queued', 'processing', 'ready'].includes(media.status));

    const stored = path.join(t.ctx.layout.root, media.file_metadata.original.path);
    assert.equal(stored, t.ctx.layout.originalFile({ tenantId: t.tenant.id, userId: 'alice', mediaId: media.id }, 'mp4'));
    assert.equal(sha256(await fs.readFile(stored)), sha256(data));

    const ready = await waitFor('media ready', async () => {
      const r = await t.app.inject({ url: `/api/v1/media/${media.id}`, headers: t.auth(t.tenant.userKey) });
      return r.json().status === 'ready' ? r.json() : undefined;
    });
    assert.ok(ready.ready_at);
    const status = (await client.status(s.session_id)).json();
    assert.equal(status.state, 'completed');
    assert.equal(status.media_id, media.id);
    await assertNoLeftovers();
  });

  it('detects the kind from the bytes, not the name', async () => {
    const png = await fs.readFile(path.join(SAMPLES, 'png-rgba-alpha-2048x1536.png'));
    const { completed } = await client.uploadWhole(png, { filename: 'holiday.mp4', chunkSize: 256 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    assert.equal(completed.json().kind, 'image');
    assert.equal(completed.json().mime_type, 'image/png');

    const audio = await fs.readFile(path.join(SAMPLES, 'm4a-aac-cover-art.m4a'));
    const a = await client.uploadWhole(audio, { filename: 'song.mp4' });
    assert.equal(a.completed.json().kind, 'audio');

    const text = Buffer.from('just some notes\n'.repeat(100));
    const o = await client.uploadWhole(text, { filename: 'notes.log' });
    const other = o.completed.json();
    assert.equal(other.kind, 'other');
    assert.equal(other.mime_type, 'text/plain');
    assert.equal(other.status, 'ready', 'kinds with nothing to derive are ready at once');
    assert.match(other.file_metadata.original.path, /original\.txt$/);
  });

  it('answers 409 with the missing indexes, and completes once all are there', async () => {
    const data = randomBytes(10_000);
    const s = (await client.create({ filename: 'x.bin', total_size: data.length, chunk_size: 4096 })).json();
    await client.putChunk(s.session_id, 1, data.subarray(4096, 8192));
    const res = await client.complete(s.session_id);
    assert.deepEqual(expectProblem(res, 409, 'upload-incomplete').missing_chunks, [0, 2]);
    await client.putChunk(s.session_id, 0, data.subarray(0, 4096));
    await client.putChunk(s.session_id, 2, data.subarray(8192));
    assert.equal((await client.complete(s.session_id)).statusCode, 201);
    const twice = await client.complete(s.session_id);
    assert.equal(twice.statusCode, 409);
    assert.equal(twice.json().type, '/problems/upload-not-open');
  });

  describe('bad input', () => {
    const cases: Array<[string, Record<string, unknown>, number, string]> = [
      ['an upload over the limit', { filename: 'big.bin', total_size: 9 * 1024 * 1024 }, 413, 'payload-too-large'],
      ['a zero-byte file', { filename: 'empty.bin', total_size: 0 }, 422, 'empty-file'],
      ['a filename with ../', { filename: '../../etc/passwd', total_size: 10 }, 422, 'invalid-filename'],
      ['a filename with control characters', { filename: 'a\u0007b.mp4', total_size: 10 }, 422, 'invalid-filename'],
      ['a chunk size below the bounds', { filename: 'a.bin', total_size: 10_000, chunk_size: 10 }, 400, 'validation-failed'],
      ['a malformed sha256', { filename: 'a.bin', total_size: 10, sha256: 'xyz' }, 400, 'validation-failed'],
      ['a missing filename', { total_size: 10 }, 400, 'validation-failed'],
      ['an unknown field', { filename: 'a.bin', total_size: 10, owner: 'mallory' }, 400, 'validation-failed'],
    ];
    for (const [name, body, status, type] of cases) {
      it(`refuses ${name}`, async () => {
        const res = await client.create(body);
        expectProblem(res, status, type);
        await assertNoLeftovers();
      });
    }

    it('refuses malformed JSON', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/upload',
        headers: { ...t.auth(t.tenant.userKey), 'content-type': 'application/json' },
        payload: '{"filename": "a.bin", "total_size": ',
      });
      expectProblem(res, 400, 'malformed-body');
    });

    it('refuses an index out of range, an oversized or short chunk, and a bad checksum, keeping none', async () => {
      const data = randomBytes(5000);
      const s = (await client.create({ filename: 'x.bin', total_size: data.length, chunk_size: 2048 })).json();
      const outOfRange = await client.putChunk(s.session_id, 3, data.subarray(0, 100));
      assert.equal(outOfRange.statusCode, 422);
      assert.equal(outOfRange.json().type, '/problems/chunk-index-out-of-range');

      const oversized = await client.putChunk(s.session_id, 0, randomBytes(4096));
      assert.equal(oversized.statusCode, 413);
      assert.equal(oversized.json().type, '/problems/payload-too-large');

      const short = await client.putChunk(s.session_id, 0, data.subarray(0, 1000));
      assert.equal(short.statusCode, 422);
      assert.equal(short.json().type, '/problems/chunk-size-mismatch');

      const lastTooLong = await client.putChunk(s.session_id, 2, data.subarray(0, 2048));
      assert.equal(lastTooLong.statusCode, 413, 'the last chunk is the remainder (904 bytes)');

      const badSum = await client.putChunk(s.session_id, 0, data.subarray(0, 2048), { 'x-chunk-checksum': `sha256=${'0'.repeat(64)}` });
      assert.equal(badSum.statusCode, 422);
      assert.equal(badSum.json().type, '/problems/chunk-checksum-mismatch');

      const badDigest = await client.putChunk(s.session_id, 1, data.subarray(2048, 4096), {
        'content-digest': `sha-256=:${Buffer.alloc(32).toString('base64')}:`,
      });
      assert.equal(badDigest.json().type, '/problems/chunk-checksum-mismatch');

      const st = (await client.status(s.session_id)).json();
      assert.equal(st.received_chunks, 0, 'no refused chunk was kept');
      // Chunks are written into the session's one data file; a refused one leaves no receipt (and no temp or lock file).
      const dataName = path.basename(t.ctx.layout.sessionDataFile(t.tenant.id, s.session_id));
      assert.deepEqual(
        (await fs.readdir(t.ctx.layout.sessionChunkDir(t.tenant.id, s.session_id))).filter((n) => n !== dataName),
        [],
      );

      const good = await client.putChunk(s.session_id, 0, data.subarray(0, 2048), {
        'content-digest': `sha-256=:${Buffer.from(sha256(data.subarray(0, 2048)), 'hex').toString('base64')}:`,
      });
      assert.equal(good.statusCode, 200, good.body);
      assert.equal((await client.abort(s.session_id)).statusCode, 204);
      await assertNoLeftovers();
    });

    it('refuses a chunk that is not application/octet-stream', async () => {
      const s = (await client.create({ filename: 'x.bin', total_size: 10, chunk_size: 2048 })).json();
      const res = await t.app.inject({
        method: 'PUT',
        url: `/api/v1/upload/${s.session_id}/chunk?index=0`,
        headers: { ...t.auth(t.tenant.userKey), 'content-type': 'text/plain' },
        payload: '0123456789',
      });
      assert.equal(res.statusCode, 415);
      assert.equal(res.json().type, '/problems/unsupported-media-type');
      await client.abort(s.session_id);
    });

    it('fails a bad whole-file sha256 at complete and removes everything', async () => {
      const data = randomBytes(3000);
      const { session, completed } = await client.uploadWhole(data, { chunkSize: 1024, extra: { sha256: sha256(Buffer.from('other')) } });
      assert.equal(completed.statusCode, 422);
      assert.equal(completed.json().type, '/problems/upload-checksum-mismatch');
      const st = (await client.status(session.session_id)).json();
      assert.equal(st.state, 'failed');
      assert.match(st.error, /hashes to/);
      await assertNoLeftovers();
      const again = await client.complete(session.session_id);
      assert.equal(again.json().type, '/problems/upload-not-open');
    });

    it('answers 404 for an unknown session id', async () => {
      for (const res of [
        await client.status('01234567-89ab-7def-8123-456789abcdef'),
        await client.putChunk('nope', 0, Buffer.from('x')),
        await client.complete('../../etc'),
        await client.abort('01234567-89ab-7def-8123-456789abcdef'),
      ]) {
        assert.equal(res.statusCode, 404, res.body);
        assert.equal(res.json().type, '/problems/not-found');
      }
    });
  });

  it('aborts: removes the chunks, and the session can take no more', async () => {
    const data = randomBytes(4096);
    const s = (await client.create({ filename: 'x.bin', total_size: data.length, chunk_size: 1024 })).json();
    await client.putChunk(s.session_id, 0, data.subarray(0, 1024));
    const res = await client.abort(s.session_id);
    assert.equal(res.statusCode, 204);
    assert.equal((await client.status(s.session_id)).json().state, 'aborted');
    const late = await client.putChunk(s.session_id, 1, data.subarray(1024, 2048));
    assert.equal(late.statusCode, 409);
    assert.equal(late.json().type, '/problems/upload-not-open');
    await assertNoLeftovers();
  });

  it('sweeps sessions idle past the expiry', async () => {
    const data = randomBytes(2048);
    const s = (await client.create({ filename: 'x.bin', total_size: data.length, chunk_size: 1024 })).json();
    await client.putChunk(s.session_id, 0, data.subarray(0, 1024));
    assert.equal(await t.ctx.uploads.sweepExpired(Date.now()), 0, 'a fresh session is not swept');
    const swept = await t.ctx.uploads.sweepExpired(Date.now() + t.ctx.settings.uploadSessionExpiry + 1000);
    assert.ok(swept >= 1);
    assert.equal((await client.status(s.session_id)).json().state, 'expired');
    await assertNoLeftovers();
  });

  describe('whole-file sha256 computed while the chunks arrive', () => {
    const CHUNK = 256 * 1024;
    const part = (data: Buffer, i: number) => data.subarray(i * CHUNK, (i + 1) * CHUNK);

    it('resumes across the hashed prefix, a harmless re-send of a hashed chunk included', async () => {
      const data = randomBytes(6 * CHUNK + 1000);
      const s = (await client.create({ filename: 'resume.bin', total_size: data.length, chunk_size: CHUNK, sha256: sha256(data) })).json();
      for (const i of [0, 1, 2]) assert.equal((await client.putChunk(s.session_id, i, part(data, i))).statusCode, 200);
      await waitFor('chunks 0-2 hashed', async () => t.ctx.uploads.hashedChunks(s.session_id) === 3);
      // The client lost its place: it asks, re-sends one it had sent, and goes on.
      assert.deepEqual((await client.status(s.session_id)).json().missing_chunks, [3, 4, 5, 6]);
      const again = await client.putChunk(s.session_id, 1, part(data, 1));
      assert.equal(again.json().received_chunks, 3);
      for (const i of [6, 4, 3, 5]) assert.equal((await client.putChunk(s.session_id, i, part(data, i))).statusCode, 200);
      const done = await client.complete(s.session_id);
      assert.equal(done.statusCode, 201, done.body);
      assert.equal(done.json().sha256, sha256(data));
    });

    it('hashes the final bytes when a chunk already hashed is replaced by other bytes', async () => {
      const first = randomBytes(4 * CHUNK);
      const final = Buffer.from(first);
      randomBytes(CHUNK).copy(final, CHUNK);
      const s = (await client.create({ filename: 'replaced.bin', total_size: first.length, chunk_size: CHUNK })).json();
      for (const i of [0, 1, 2]) await client.putChunk(s.session_id, i, part(first, i));
      await waitFor('chunks 0-2 hashed', async () => t.ctx.uploads.hashedChunks(s.session_id) === 3);
      const replaced = await client.putChunk(s.session_id, 1, part(final, 1), { 'x-chunk-checksum': `sha256=${sha256(part(final, 1))}` });
      assert.equal(replaced.statusCode, 200, replaced.body);
      await client.putChunk(s.session_id, 3, part(final, 3));
      const done = await client.complete(s.session_id);
      assert.equal(done.statusCode, 201, done.body);
      assert.equal(done.json().sha256, sha256(final));
      assert.notEqual(done.json().sha256, sha256(first));
    });

    it('refuses a declared sha256 that the chunks, sent out of order, do not add up to', async () => {
      const data = randomBytes(5 * CHUNK);
      const declared = sha256(Buffer.concat([data.subarray(0, -1), Buffer.from([data.at(-1)! ^ 1])]));
      const s = (await client.create({ filename: 'mismatch.bin', total_size: data.length, chunk_size: CHUNK, sha256: declared })).json();
      for (const i of [4, 2, 0, 3, 1]) assert.equal((await client.putChunk(s.session_id, i, part(data, i))).statusCode, 200);
      const done = await client.complete(s.session_id);
      expectProblem(done, 422, 'upload-checksum-mismatch');
      assert.match(done.json().detail, new RegExp(sha256(data)));
      assert.equal((await client.status(s.session_id)).json().state, 'failed');
      await assertNoLeftovers();
    });

    it('completes on a restarted server (no hashed prefix in memory) with the right sha256', async () => {
      const data = randomBytes(5 * CHUNK + 123);
      const s = (await client.create({ filename: 'restart.bin', total_size: data.length, chunk_size: CHUNK, sha256: sha256(data) })).json();
      for (const i of [0, 1, 2]) await client.putChunk(s.session_id, i, part(data, i));
      await waitFor('chunks 0-2 hashed', async () => t.ctx.uploads.hashedChunks(s.session_id) === 3);
      // Another server process on the same database and storage: it knows nothing of the first one's hash.
      const ctx2 = await createContext(t.env.settings, { log: createLogger('warn') });
      const app2 = await buildApp(ctx2);
      try {
        await app2.ready();
        const client2 = new SessionClient(app2, t.tenant.userKey);
        assert.equal(ctx2.uploads.hashedChunks(s.session_id), 0);
        for (const i of [5, 3, 4]) assert.equal((await client2.putChunk(s.session_id, i, part(data, i))).statusCode, 200);
        const done = await client2.complete(s.session_id);
        assert.equal(done.statusCode, 201, done.body);
        assert.equal(done.json().sha256, sha256(data));
        assert.equal(done.json().size, data.length);
      } finally {
        await app2.close();
        await ctx2.close();
      }
    });
  });

  it('rebuilds lost chunk state from the chunk receipts, keeping whole chunks and dropping damaged ones', async () => {
    const data = randomBytes(5 * 1024);
    const s = (await client.create({ filename: 'x.bin', total_size: data.length, chunk_size: 1024, sha256: sha256(data) })).json();
    for (const i of [0, 1, 3]) await client.putChunk(s.session_id, i, data.subarray(i * 1024, (i + 1) * 1024));
    // Lose the state: Redis flushed, or the rows gone.
    if (t.ctx.redis) await t.ctx.redis.del(`${t.ctx.settings.redisPrefix}:upload:${s.session_id}:chunks`);
    else await t.ctx.database.db.deleteFrom('upload_chunks').where('session_id', '=', s.session_id).execute();
    // Damage chunk 3's range of the data file (a torn write from an old crash) and leave a temp file behind.
    const dir = t.ctx.layout.sessionChunkDir(t.tenant.id, s.session_id);
    const dataFile = await fs.open(t.ctx.layout.sessionDataFile(t.tenant.id, s.session_id), 'r+');
    await dataFile.write(Buffer.alloc(100), 0, 100, 3 * 1024 + 10);
    await dataFile.close();
    await fs.writeFile(path.join(dir, '2.chunk.abc.tmp'), 'partial');

    const st = (await client.status(s.session_id)).json();
    if (t.ctx.redis) {
      assert.deepEqual(st.missing_chunks, [2, 3, 4], 'chunks 0 and 1 survive; the damaged 3 is dropped');
    }
    for (const i of st.missing_chunks as number[]) await client.putChunk(s.session_id, i, data.subarray(i * 1024, (i + 1) * 1024));
    const done = await client.complete(s.session_id);
    assert.equal(done.statusCode, 201, done.body);
    assert.equal(done.json().sha256, sha256(data));
  });
});
