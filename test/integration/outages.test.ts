import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { BACKEND, expectProblem, SAMPLES, startTestApp, TEST_DATABASE_URL, waitFor, type TestApp } from '../support/harness.js';
import { sqliteFile } from '../../src/config/settings.js';
import { SessionClient } from '../support/upload-client.js';
import { processJobKey } from '../../src/queue/queue.js';

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A Redis server of this test's own, which it can stop (by pid) and start again on the same port. */
class OwnRedis {
  private proc: ChildProcess | undefined;
  constructor(readonly port: number) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) return;
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitFor(
      'redis to listen',
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(this.port, '127.0.0.1', () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        }),
    );
  }
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    proc.kill('SIGKILL');
    await once(proc, 'exit');
  }
}

/** A TCP relay in front of PostgreSQL: cutting it is PostgreSQL going away for the app behind it. */
class CuttablePostgres {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  constructor(
    readonly port: number,
    private readonly target: URL,
  ) {}
  async open(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(Number(this.target.port || 5432), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((r) => server.close(r));
  }
}

function assertNoInternals(body: string): void {
  assert.doesNotMatch(body, /ECONNREFUSED|127\.0\.0\.1|Connection is closed|terminated|MaxRetries/i);
}

describe('dependency outages', () => {
  let t: TestApp | undefined;
  let redis: OwnRedis | undefined;
  let pgRelay: CuttablePostgres | undefined;

  after(async () => {
    // Back up, so that closing and cleaning up can reach them.
    if (redis) await redis.start();
    if (pgRelay) await pgRelay.open();
    await t?.close();
    await redis?.stop();
    await pgRelay?.cut();
  });

  it('answers 503 unavailable and a bounded /readyz while Redis is down; the reasons only for admin keys', { timeout: 60_000 }, async () => {
    redis = new OwnRedis(await freePort());
    await redis.start();
    t = await startTestApp({ REDIS_URL: redis.url, READINESS_TIMEOUT: '1s' });
    const client = new SessionClient(t.app, t.tenant.userKey);
    const created = await client.create({ filename: 'a.bin', total_size: 2048, chunk_size: 1024 });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal((await t.app.inject({ url: '/readyz' })).statusCode, 200);

    await redis.stop();

    const ready = await t.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 503, ready.body);
    assert.deepEqual(ready.json().checks.queue, { ok: false });
    assertNoInternals(ready.body);
    const forAdmin = await t.app.inject({ url: '/readyz', headers: t.auth(t.tenant.adminKey) });
    assert.equal(forAdmin.statusCode, 503);
    assert.equal(forAdmin.json().checks.queue.ok, false);
    assert.equal(typeof forAdmin.json().checks.queue.error, 'string', 'an admin key sees why');

    // Chunk state lives in Redis: the chunk cannot be recorded.
    const put = await client.putChunk(created.json().session_id, 0, Buffer.alloc(1024, 1));
    const problem = expectProblem(put, 503, 'unavailable');
    assert.ok(put.headers['retry-after'], 'says when to retry');
    assert.ok(problem.request_id);
    assertNoInternals(put.body);
  });

  it('completes a chunked upload and takes a reprocess while Redis is down, promptly, losing nothing', { timeout: 60_000 }, async () => {
    redis ??= new OwnRedis(await freePort());
    await redis.start();
    await t?.close();
    t = await startTestApp({ REDIS_URL: redis.url, READINESS_TIMEOUT: '1s' });
    const client = new SessionClient(t.app, t.tenant.userKey);
    const video = await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4'));
    const earlier = (await client.uploadWhole(video, { filename: 'earlier.mp4', chunkSize: 256 * 1024 })).completed;
    assert.equal(earlier.statusCode, 201, earlier.body);
    const earlierId = earlier.json().id as string;
    await t.ctx.database.db.updateTable('mediaassets').set({ status: 'error' }).where('id', '=', earlierId).execute();
    const session = (await client.create({ filename: 'bikes.mp4', total_size: video.length, chunk_size: 256 * 1024 })).json();
    for (let i = 0, off = 0; off < video.length; i++, off += 256 * 1024) {
      assert.equal((await client.putChunk(session.session_id, i, video.subarray(off, off + 256 * 1024))).statusCode, 200);
    }

    await redis.stop();

    // A hang fails here rather than passing: each answer must come well within the bound.
    const within = <T>(p: Promise<T>): Promise<T> =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer: the request hangs')), 20_000).unref())]);
    const completed = await within(client.complete(session.session_id));
    const reprocess = await within(t.app.inject({ method: 'POST', url: `/api/v1/media/${earlierId}/reprocess`, headers: t.auth(t.tenant.userKey) }));
    for (const [name, res] of [
      ['complete', completed],
      ['reprocess', reprocess],
    ] as const) {
      if (res.statusCode === 503) expectProblem(res, 503, 'unavailable');
      else assert.ok(res.statusCode < 300 && res.json().status === 'queued', `${name}: ${res.statusCode} ${res.body}`);
      assertNoInternals(res.body);
    }
    // The reprocess is saved (queued), not refused: only the job waits for Redis.
    assert.equal(reprocess.statusCode, 202, reprocess.body);

    // Nothing is lost: once Redis is back, a refused complete can be sent again (the session kept
    // its chunks), and the sweep enqueues what stayed queued.
    await redis.start();
    await waitFor(
      'the queue to answer again',
      async () =>
        await t!.ctx.queue.ping().then(
          () => true,
          () => false,
        ),
    );
    const done = completed.statusCode === 503 ? await client.complete(session.session_id) : completed;
    assert.ok(done.statusCode < 300 && done.json().status === 'queued', done.body);
    await t.ctx.worker.requeueStale(0);
    for (const id of [earlierId, done.json().id as string]) assert.ok(await t.ctx.queue.hasPending(processJobKey(id)), `a job for ${id}`);
  });

  it('answers 503 unavailable, not 500, while PostgreSQL is unreachable', {
    skip: BACKEND !== 'scale' && 'PostgreSQL backend only',
    timeout: 60_000,
  }, async () => {
    await redis?.start();
    await t?.close();
    t = undefined;
    const target = new URL(TEST_DATABASE_URL);
    pgRelay = new CuttablePostgres(await freePort(), target);
    await pgRelay.open();
    const via = new URL(TEST_DATABASE_URL);
    via.hostname = '127.0.0.1';
    via.port = String(pgRelay.port);
    t = await startTestApp({ DATABASE_URL: via.toString(), READINESS_TIMEOUT: '1s' });
    assert.equal((await t.app.inject({ url: '/api/v1/media', headers: t.auth(t.tenant.userKey) })).statusCode, 200);

    await pgRelay.cut();

    const list = await t.app.inject({ url: '/api/v1/media', headers: t.auth(t.tenant.userKey) });
    expectProblem(list, 503, 'unavailable');
    assertNoInternals(list.body);
    const ready = await t.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.deepEqual(ready.json().checks.database, { ok: false });
    assertNoInternals(ready.body);
  });

  it("answers 503 unavailable while another process holds SQLite's write lock past the busy timeout", {
    skip: BACKEND !== 'embedded' && 'SQLite backend only',
    timeout: 60_000,
  }, async () => {
    await redis?.start();
    await t?.close();
    t = undefined;
    await redis?.stop();
    redis = undefined;
    t = await startTestApp();
    const { default: Sqlite } = await import('better-sqlite3');
    const other = new Sqlite(sqliteFile(t.env.settings));
    try {
      other.exec('BEGIN EXCLUSIVE');
      const created = await new SessionClient(t.app, t.tenant.userKey).create({ filename: 'b.bin', total_size: 2048, chunk_size: 1024 });
      expectProblem(created, 503, 'unavailable');
      assert.ok(created.headers['retry-after']);
      assert.doesNotMatch(created.body, /SQLITE|database is locked/i);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
  });
});
