/**
 * Jobs of one media never write its files at the same time, with two workers (the scale-up
 * topology) on the backend QASAR_TEST_BACKEND names. ffmpeg is replaced on the PATH by a script
 * that runs the real one, logs each run, and holds its exit while a hold file of its kind exists:
 * the test decides when each job may go on, whatever the machine's speed.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createContext, type AppContext } from '../../src/cli/compose.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { openMediaLocks, type MediaLocks } from '../../src/media/media-lock.js';
import { createLogger } from '../../src/shared/logger.js';
import { processJobKey, type RunningWorker } from '../../src/queue/queue.js';
import { BACKEND, getMedia, listFiles, mediaSettled, startTestApp, testEnv, waitFor, type TestApp, type TestEnv } from '../support/harness.js';
import { makeClip } from '../support/test-clip.js';
import { killAndWait, waitForLine } from '../support/child-process.js';
import { SessionClient } from '../support/upload-client.js';

type Kind = 'media' | 'webm';

/** An ffmpeg that logs `<kind> start|end <media id> <ms>` for each run and holds its exit while `hold-<kind>` exists. */
async function ffmpegDouble(dir: string, real: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin, { recursive: true });
  const script = `#!/bin/bash
kind=other
media=-
for a in "$@"; do
  case "$a" in
    */.work-webm-*) kind=webm ;;
    */.work-media-*) kind=media ;;
    *) continue ;;
  esac
  m="\${a%%/.work-*}"
  media="\${m##*/}"
done
now() { echo $(( $(date +%s%N) / 1000000 )); }
echo "$kind start $media $(now)" >> '${dir}/runs.log'
'${real}' "$@"
code=$?
while [ -e '${dir}/hold-'"$kind" ]; do sleep 0.05; done
echo "$kind end $media $(now)" >> '${dir}/runs.log'
exit $code
`;
  await fs.writeFile(path.join(bin, 'ffmpeg'), script, { mode: 0o755 });
  return bin;
}

interface Run {
  kind: string;
  media: string;
  start: number;
  end: number | undefined;
}

describe(`per-media lock with two workers (${BACKEND} backend)`, () => {
  let t: TestApp;
  let second: AppContext;
  let secondWorker: RunningWorker;
  let client: SessionClient;
  let dir: string;
  let clip: Buffer;
  const savedPath = process.env.PATH;

  const hold = (kind: Kind) => fs.writeFile(path.join(dir, `hold-${kind}`), '');
  const release = (kind: Kind) => fs.rm(path.join(dir, `hold-${kind}`), { force: true });
  async function runs(media: string): Promise<Run[]> {
    const text = await fs.readFile(path.join(dir, 'runs.log'), 'utf8').catch(() => '');
    const out: Run[] = [];
    for (const line of text.split('\n')) {
      const [kind, event, id, at] = line.split(' ');
      if (id !== media) continue;
      if (event === 'start') out.push({ kind: kind!, media: id, start: Number(at), end: undefined });
      else out.findLast((r) => r.kind === kind && r.end === undefined)!.end = Number(at);
    }
    return out;
  }
  const media = (id: string) => getMedia(t, t.tenant.userKey, id);
  async function upload(): Promise<string> {
    const { completed } = await client.uploadWhole(clip, { filename: 'clip.mp4', chunkSize: 64 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-lock-'));
    const real = execFileSync('sh', ['-c', 'command -v ffmpeg'], { encoding: 'utf8' }).trim();
    const clipFile = path.join(dir, 'clip.mp4');
    makeClip(clipFile, { seconds: 2, ffmpeg: real });
    clip = await fs.readFile(clipFile);
    process.env.PATH = `${await ffmpegDouble(dir, real)}${path.delimiter}${savedPath}`;
    t = await startTestApp({ ENABLE_WEBM: 'true' }, { worker: true });
    // The second worker: another context on the same database, queue and storage.
    second = await createContext(t.env.settings, { log: createLogger(t.env.settings.logLevel), migrate: false });
    secondWorker = second.worker.start(1);
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(async () => {
    await release('media');
    await release('webm');
    await secondWorker?.close();
    await second?.close();
    await t?.close();
    process.env.PATH = savedPath;
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs a reprocess after the WebM job of its media, never beside it, and loses nothing it recorded', async (ctx) => {
    ctx.after(async () => {
      await release('media');
      await release('webm');
    });
    await hold('webm');
    const id = await upload();
    assert.equal((await mediaSettled(t, t.tenant.userKey, id)).status, 'ready');
    const first = await media(id);
    await waitFor('the WebM encode to run', async () => (await runs(id)).some((r) => r.kind === 'webm'), 60_000);

    // A reprocess while the WebM job holds the media; its processing job is held at the end of its ffmpeg too.
    await hold('media');
    const res = await t.app.inject({ method: 'POST', url: `${t.ctx.settings.apiPrefix}/media/${id}/reprocess`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 202, res.body);
    // Where nothing keeps them apart, the other worker starts the processing job at once.
    const overlapping = await waitFor(
      'the processing job to run beside the WebM job',
      async () => (await runs(id)).filter((r) => r.kind === 'media').length === 2,
      5_000,
    )
      .then(() => true)
      .catch(() => false);

    // The WebM job finishes and records its rendition; the WebM job the reprocess will queue is held.
    await release('webm');
    await waitFor('the WebM rendition to be recorded', async () => (await media(id)).file_metadata?.artifacts?.webm, 60_000);
    await hold('webm');
    await release('media');
    const again = await waitFor(
      'the reprocess to finish',
      async () => {
        const m = await media(id);
        return m.status === 'ready' && m.file_metadata.processed_at !== first.file_metadata.processed_at ? m : undefined;
      },
      60_000,
    );

    const problems: string[] = [];
    const all = await runs(id);
    const webm = all.find((r) => r.kind === 'webm')!;
    const reprocess = all.filter((r) => r.kind === 'media')[1]!;
    if (overlapping || reprocess.start < webm.end!) {
      problems.push(`the reprocess's ffmpeg ran (from ${reprocess.start}) while the WebM job still held the media (until ${webm.end})`);
    }
    if (!again.file_metadata.artifacts?.webm) problems.push('the reprocess dropped the WebM rendition the WebM job had recorded meanwhile');
    assert.deepEqual(problems, []);

    // The WebM job the reprocess queued makes the rendition again; nothing is left behind.
    await release('webm');
    const done = await waitFor(
      'the new WebM rendition',
      async () => {
        const m = await media(id);
        return m.file_metadata.pending?.length === 0 && m.file_metadata.artifacts?.webm ? m : undefined;
      },
      60_000,
    );
    assert.equal(done.status, 'ready');
    const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id }));
    assert.ok(files.includes('webm/video.webm'), files.join(', '));
    assert.ok(!files.some((f) => f.startsWith('.')), `no scratch or swapped-out folder left: ${files.join(', ')}`);
  });

  it('removes every file of a media deleted while its processing job runs', async (ctx) => {
    ctx.after(() => release('media'));
    await hold('media');
    const id = await upload();
    const mediaDir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id });
    await waitFor('the processing job to run', async () => (await runs(id)).some((r) => r.kind === 'media'), 60_000);
    const res = await t.app.inject({ method: 'DELETE', url: `${t.ctx.settings.apiPrefix}/media/${id}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 204, res.body);
    await release('media');
    await waitFor(
      'the job to end',
      async () => (await runs(id)).every((r) => r.end !== undefined) && !(await t.ctx.queue.hasPending(processJobKey(id))),
      60_000,
    );
    await waitFor('the media folder to be gone', async () => !(await fs.stat(mediaDir).catch(() => undefined)), 20_000).catch(() => undefined);
    assert.deepEqual(await listFiles(mediaDir), []);
    assert.equal(await fs.stat(mediaDir).catch(() => undefined), undefined, 'the media folder is removed');
  });
});

describe(`media locks (${BACKEND} backend)`, () => {
  let env: TestEnv;
  let database: DatabaseHandle;
  let locks: MediaLocks;

  before(async () => {
    env = await testEnv({ JOB_LEASE: '1s' });
    database = await openDatabase(env.settings);
    await migrateToLatest(database);
    locks = await openMediaLocks(database, env.settings);
  });
  after(async () => {
    await database.close();
    await env.cleanup();
  });

  it('has one holder at a time; a waiter gets the lock when the holder lets go', async () => {
    const a = await locks.acquire('m-1', 0);
    assert.ok(a);
    assert.equal(await locks.acquire('m-1', 0), undefined, 'taken: no wait');
    assert.equal(await locks.acquire('m-1', 300), undefined, 'taken: a bounded wait');
    const other = await locks.acquire('m-2', 0);
    assert.ok(other, 'another media is not held');
    const waiting = locks.acquire('m-1', 10_000);
    await new Promise((r) => setTimeout(r, 200));
    await a.release();
    const b = await waiting;
    assert.ok(b, 'the waiter took it over');
    assert.equal(a.signal.aborted, false, 'letting go is not losing it');
    await b.release();
    await other.release();
  });

  it("is freed when its holder's process dies", async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../support/media-lock-child.ts'), 'm-dead'], {
      env: { ...process.env, ...env.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await waitForLine(child, /^HELD$/, 30_000);
      assert.equal(await locks.acquire('m-dead', 0), undefined);
    } finally {
      await killAndWait(child);
    }
    // PostgreSQL ends the session at once; on SQLite a holder certainly dead (same machine) is taken
    // over at once, else its lease (JOB_LEASE, 1 s here) lapses.
    const lock = await locks.acquire('m-dead', 5_000);
    assert.ok(lock, 'the lock of the dead holder was taken');
    await lock.release();
  });

  it('tells its holder when the lock was lost, so that it publishes nothing more', async () => {
    const lock = (await locks.acquire('m-lost', 0))!;
    if (database.dialect === 'postgres') {
      // Its connection is ended from the server side (a restart, a network cut, an operator).
      const key = (text: string) => sql`(hashtext(${text})::bigint & 4294967295)`;
      const ended = await sql<{ ok: boolean }>`
        select pg_terminate_backend(pid) as ok from pg_locks
        where locktype = 'advisory' and objsubid = 2 and granted
          and classid::bigint = ${key(`${database.schema}:qasar-media`)} and objid::bigint = ${key('m-lost')}`.execute(database.db);
      assert.deepEqual(ended.rows, [{ ok: true }]);
    } else {
      // As if its lease had lapsed and another process had taken it.
      await database.db.updateTable('media_locks').set({ owner: 'someone else' }).where('media_id', '=', 'm-lost').execute();
    }
    await waitFor('the holder to learn it lost the lock', async () => lock.signal.aborted, 10_000);
    assert.match(String((lock.signal.reason as Error).message), /lock of media m-lost/);
    await lock.release();
  });
});
