import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { killAndWait, waitForLine } from '../support/child-process.js';
import { startMaintenance } from '../../src/cli/maintenance.js';
import Sqlite from 'better-sqlite3';
import pg from 'pg';
import { sqliteFile } from '../../src/config/settings.js';
import { BACKEND, expectProblem, listFiles, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const CHILD = path.resolve(import.meta.dirname, '../support/upload-child.ts');
const MiB = 1024 * 1024;

/**
 * An API process killed in the middle of an upload: a `complete` (issue: killed 150–600 ms
 * after it began, the session stayed `completing` for good) and a chunk send (its lock answered
 * 409 for the stale age). The parent is the process that lives on and takes them up.
 */
describe('uploads stranded by a crashed process', () => {
  let t: TestApp;
  let client: SessionClient;
  const children: ChildProcess[] = [];

  before(async () => {
    t = await startTestApp({ UPLOAD_MAX_SIZE: '1GiB', UPLOAD_MAX_CHUNK_SIZE: '64MiB' });
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(async () => {
    for (const c of children) await killAndWait(c);
    await t.close();
  });

  function spawnChild(args: string[]): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      env: { ...process.env, ...t.env.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    return child;
  }

  async function stateOf(sessionId: string): Promise<string | undefined> {
    const row = await t.ctx.database.db.selectFrom('upload_sessions').select('state').where('id', '=', sessionId).executeTakeFirst();
    return row?.state;
  }

  /**
   * A session of `size` bytes, every chunk sent through this process: the child that completes
   * it has hashed none of it, so its complete reads the whole file (a window to kill it in).
   */
  async function fullSession(size: number): Promise<{ id: string; data: Buffer }> {
    const block = randomBytes(MiB);
    const data = Buffer.alloc(size);
    for (let o = 0; o < size; o += MiB) block.copy(data, o);
    data.writeUInt32BE(0xdeadbeef, size - 4); // not a repetition of the first block
    const created = await client.create({ filename: 'big.bin', total_size: size, chunk_size: 64 * MiB });
    assert.equal(created.statusCode, 201, created.body);
    const s = created.json() as { session_id: string; chunk_count: number };
    for (let i = 0; i < s.chunk_count; i++) {
      const res = await client.putChunk(s.session_id, i, data.subarray(i * 64 * MiB, (i + 1) * 64 * MiB));
      assert.equal(res.statusCode, 200, res.body);
    }
    return { id: s.session_id, data };
  }

  /** Starts a complete in a child process and SIGKILLs it while the session is `completing`. */
  async function killMidComplete(sessionId: string): Promise<void> {
    const child = spawnChild(['complete', t.tenant.id, t.tenant.userId, sessionId]);
    await waitForLine(child, /^COMPLETING$/, 30_000);
    for (let i = 0; i < 6000 && (await stateOf(sessionId)) !== 'completing'; i++) await new Promise((r) => setTimeout(r, 5));
    await killAndWait(child);
    assert.equal(await stateOf(sessionId), 'completing', 'the child finished before it could be killed mid-way');
  }

  /** Files under the storage root other than chunk folders of open sessions (which hold the data and receipts). */
  async function strayFiles(openSessions: string[] = []): Promise<string[]> {
    const files = await listFiles(t.ctx.layout.root);
    return files.filter((f) => !openSessions.some((id) => f.startsWith(`${t.ctx.layout.chunkDirName}/${t.tenant.id}/${id}/`)));
  }

  it('takes up a session whose completing process was killed: start-up opens it with its chunks, then complete and DELETE work', async () => {
    const { id, data } = await fullSession(192 * MiB);
    await killMidComplete(id);

    // A process starting up runs the upload sweep at once, which takes up stranded sessions.
    const stop = startMaintenance(t.ctx, { api: true, worker: false });
    try {
      await waitFor('the stranded session to be open again', async () => (await stateOf(id)) === 'open');
    } finally {
      stop();
    }
    const status = (await client.status(id)).json();
    assert.equal(status.state, 'open');
    assert.equal(status.received_chunks, status.chunk_count);
    assert.deepEqual(status.missing_chunks, []);
    // Nothing of the dead completion is left: no hand-off file, no half-made media folder.
    assert.deepEqual(await strayFiles([id]), []);

    const completed = await client.complete(id);
    assert.equal(completed.statusCode, 201, completed.body);
    const media = completed.json();
    assert.equal(media.size, data.length);
    const original = path.join(t.ctx.layout.root, media.file_metadata.original.path);
    const hash = createHash('sha256');
    for await (const chunk of fs.createReadStream(original)) hash.update(chunk as Buffer);
    assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'), 'bytes were lost');

    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${media.id}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(del.statusCode, 204, del.body);
    assert.deepEqual(await strayFiles(), []);
  });

  it('lets DELETE abort a session whose completing process was killed, at once and leaving no file', async () => {
    const { id } = await fullSession(192 * MiB);
    await killMidComplete(id);
    const res = await client.abort(id);
    assert.equal(res.statusCode, 204, res.body);
    assert.equal(await stateOf(id), 'aborted');
    assert.deepEqual(await strayFiles(), []);
  });

  it('finishes a tus upload whose last PATCH was being finished by a killed process', async () => {
    const data = randomBytes(2 * MiB);
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tus',
      headers: {
        ...t.auth(t.tenant.userKey),
        'tus-resumable': '1.0.0',
        'upload-length': String(data.length),
        'upload-metadata': `filename ${Buffer.from('t.bin').toString('base64')}`,
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const url = new URL(String(created.headers.location), 'http://x').pathname;
    const id = url.split('/').pop()!;
    const patch = (offset: number, body: Buffer) => ({
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${t.tenant.userKey}`,
        'tus-resumable': '1.0.0',
        'upload-offset': String(offset),
        'content-type': 'application/offset+octet-stream',
      },
      body,
    });
    const first = await t.app.inject({ url, ...patch(0, data.subarray(0, MiB)), payload: data.subarray(0, MiB) });
    assert.equal(first.statusCode, 204, first.body);

    const child = spawnChild(['serve']);
    const port = Number((await waitForLine(child, /^LISTENING (\d+)$/, 30_000))[1]);
    // The child's ingest is held at its database write (the record and `completed` are one
    // transaction), after it moved the bytes into the media's folder: it is killed right there.
    const hold = await holdIngest();
    try {
      void fetch(`http://127.0.0.1:${port}${url}`, patch(MiB, data.subarray(MiB))).catch(() => undefined);
      await hold.untilBlocked(id);
      await killAndWait(child);
    } finally {
      await hold.release();
    }
    assert.equal(await stateOf(id), 'completing');

    assert.equal(await t.ctx.tus.recoverStranded(), 1);
    const row = await t.ctx.database.db.selectFrom('upload_sessions').select(['state', 'media_id']).where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(row.state, 'completed');
    const media = (await t.app.inject({ url: `/api/v1/media/${row.media_id}`, headers: t.auth(t.tenant.userKey) })).json();
    assert.equal(media.sha256, createHash('sha256').update(data).digest('hex'), 'bytes were lost');
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${row.media_id}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(del.statusCode, 204, del.body);
    assert.deepEqual(await strayFiles(), []);
  });

  /**
   * Holds the child's ingest transaction. PostgreSQL: a lock on the tenant's row, which the
   * media insert's foreign key check waits for (nothing before it touches that row), until the
   * child waits on it. SQLite: the database's write lock, taken as soon as the session is
   * `completing` (the child then waits out its busy timeout at the ingest's write).
   */
  async function holdIngest(): Promise<{ untilBlocked(id: string): Promise<void>; release(): Promise<void> }> {
    if (BACKEND === 'scale') {
      const client = new pg.Client({ connectionString: t.env.settings.databaseUrl });
      await client.connect();
      await client.query(`set search_path to "${t.env.settings.databaseSchema}"`);
      await client.query('begin');
      await client.query('select id from tenants where id = $1 for update', [t.tenant.id]);
      return {
        untilBlocked: async (id) => {
          await waitFor(
            'the child to wait on the tenant row',
            async () => {
              // Inside a transaction, pg_stat_activity is read from a snapshot taken at its first use.
              await client.query('select pg_stat_clear_snapshot()');
              const waiting = await client.query(
                `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%insert into "mediaassets"%'`,
              );
              return (waiting.rows[0] as { n: number }).n > 0 && (await stateOf(id)) === 'completing';
            },
            30_000,
          );
        },
        release: async () => {
          await client.query('rollback').catch(() => undefined);
          await client.end();
        },
      };
    }
    const db = new Sqlite(sqliteFile(t.env.settings));
    db.pragma('busy_timeout = 5000');
    let held = false;
    return {
      untilBlocked: async (id) => {
        const state = db.prepare('select state from upload_sessions where id = ?');
        // Bounded by time, not by a count of turns: a child slowed by a busy machine is waited for.
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline && (state.get(id) as { state: string }).state !== 'completing') {
          await new Promise((r) => setImmediate(r));
        }
        db.prepare('begin immediate').run();
        held = true;
        assert.equal((state.get(id) as { state: string }).state, 'completing', 'the child finished before its ingest could be held');
        // Long enough for the child to reach its ingest write, well within its busy timeout.
        await new Promise((r) => setTimeout(r, 1000));
      },
      release: async () => {
        if (held) db.prepare('rollback').run();
        db.close();
      },
    };
  }

  it('accepts the resend of a chunk whose sending process was killed mid-chunk, at once', async () => {
    const data = randomBytes(2 * MiB);
    const created = (await client.create({ filename: 'two.bin', total_size: data.length, chunk_size: MiB })).json();
    const child = spawnChild(['chunk', t.tenant.id, t.tenant.userId, created.session_id, '0', String(100 * 1024)]);
    await waitForLine(child, /^SENDING$/, 30_000);
    // While its sender lives, the chunk is busy.
    expectProblem(await client.putChunk(created.session_id, 0, data.subarray(0, MiB)), 409, 'upload-busy');
    await killAndWait(child);

    const resent = await client.putChunk(created.session_id, 0, data.subarray(0, MiB));
    assert.equal(resent.statusCode, 200, resent.body);
    assert.equal((await client.putChunk(created.session_id, 1, data.subarray(MiB))).statusCode, 200);
    const completed = await client.complete(created.session_id);
    assert.equal(completed.statusCode, 201, completed.body);
    assert.equal(completed.json().sha256, createHash('sha256').update(data).digest('hex'));
  });
});
