/**
 * MediaWorker on the backend QASAR_TEST_BACKEND names: `embedded` (SQLite + embedded queue)
 * or `scale` (PostgreSQL + BullMQ on Redis). Each test has its own context and settings.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { createContext, type AppContext } from '../../src/cli/compose.js';
import { toJson } from '../../src/db/schema.js';
import type { MediaStatus } from '../../src/db/schema.js';
import { newId } from '../../src/shared/ids.js';
import { createLogger } from '../../src/shared/logger.js';
import { MediaWorker } from '../../src/processing/media-worker.js';
import type { MediaToProcess } from '../../src/processing/media-to-process.js';
import { Pipeline } from '../../src/processing/pipeline.js';
import { followUpJobKey, type Job, type JobName, type JobQueue } from '../../src/queue/queue.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { processJobKey } from '../../src/queue/queue.js';
import { BACKEND, testEnv, waitFor } from '../support/harness.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What the tests' one processing step does with each media it is given. */
type MediaSteps = (media: MediaToProcess, job: Job) => Promise<void>;

/** A pipeline whose one main step (for video, what the fixture inserts) is `steps`. */
function pipelineOf(steps: MediaSteps = async () => undefined): Pipeline {
  return new Pipeline().register({ name: 'test', kinds: ['video'], stage: 'main', needs: [], publishes: [], run: (c) => steps(c.media, c.job) });
}

describe(`media worker (${BACKEND} backend)`, () => {
  const cleanups: Array<() => Promise<void>> = [];

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  interface Fixture {
    ctx: AppContext;
    tenantId: string;
    /** A worker on the context's queue and database with these processing steps. */
    worker(steps?: MediaSteps): MediaWorker;
    /** Starts a worker and closes it after the test. */
    start(worker: MediaWorker): void;
    insertMedia(opts?: { status?: MediaStatus; updatedAgoMs?: number }): Promise<string>;
    media(id: string): Promise<
      | {
          status: string;
          error_code: string | null;
          error_reason: string | null;
          processing_started_at: string | null;
          ready_at: string | null;
          updated_at: string;
        }
      | undefined
    >;
    enqueue(mediaId: string): Promise<string>;
  }

  async function setup(overrides: Record<string, string> = {}): Promise<Fixture> {
    const env = await testEnv(overrides);
    cleanups.push(() => env.cleanup());
    const ctx = await createContext(env.settings, { log: createLogger(env.settings.logLevel) });
    cleanups.push(() => ctx.close());
    const tenant = await ctx.tenancy.createTenant('acme');
    const db = ctx.database.db;
    return {
      ctx,
      tenantId: tenant.id,
      worker: (steps) =>
        new MediaWorker({
          db,
          queue: ctx.queue,
          log: ctx.log,
          pipeline: pipelineOf(steps),
          deps: { store: ctx.store, layout: ctx.layout, settings: env.settings },
          locks: ctx.mediaLocks,
        }),
      start: (worker) => {
        const running = worker.start(1);
        cleanups.push(() => running.close());
      },
      insertMedia: async ({ status = 'queued', updatedAgoMs = 0 } = {}) => {
        const id = newId();
        const at = new Date(Date.now() - updatedAgoMs).toISOString();
        await db
          .insertInto('mediaassets')
          .values({
            id,
            tenant_id: tenant.id,
            user_id: 'alice',
            status,
            error_code: null,
            error_reason: null,
            kind: 'video',
            original_filename: 'clip.mp4',
            mime_type: 'video/mp4',
            size: 1234,
            sha256: '0'.repeat(64),
            caption: null,
            user_tags: toJson([]),
            file_metadata: toJson({}),
            upload_session_id: null,
            created_at: at,
            updated_at: at,
            processing_started_at: null,
            ready_at: status === 'ready' ? at : null,
          })
          .execute();
        return id;
      },
      media: (id) =>
        db
          .selectFrom('mediaassets')
          .select(['status', 'error_code', 'error_reason', 'processing_started_at', 'ready_at', 'updated_at'])
          .where('id', '=', id)
          .executeTakeFirst(),
      // As IngestService does once the record is saved.
      enqueue: (mediaId) => ctx.queue.enqueue('process-media', { media_id: mediaId }, { dedupeKey: processJobKey(mediaId) }),
    };
  }

  /** Waits until the media has `status`, and returns its row. */
  async function statusOf(f: Fixture, id: string, status: string) {
    return waitFor(`media ${id} to be ${status}`, async () => {
      const m = await f.media(id);
      return m?.status === status ? m : undefined;
    });
  }

  it('takes media from queued through processing to ready', async () => {
    const f = await setup();
    const id = await f.insertMedia();
    await f.enqueue(id);
    const seen: Array<{ attempt: number; passed: string; stored: string | undefined; started: string | null | undefined }> = [];
    f.start(
      f.worker(async (media, job) => {
        const row = await f.media(media.id);
        seen.push({ attempt: job.attempt, passed: media.status, stored: row?.status, started: row?.processing_started_at });
      }),
    );
    const ready = await statusOf(f, id, 'ready');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.attempt, 1);
    assert.equal(seen[0]!.passed, 'processing');
    assert.equal(seen[0]!.stored, 'processing', 'the media is `processing` while its steps run');
    assert.ok(seen[0]!.started);
    assert.equal(ready.error_code, null);
    assert.equal(ready.error_reason, null);
    assert.ok(ready.processing_started_at && ready.ready_at);
    assert.ok(Date.parse(ready.processing_started_at) <= Date.parse(ready.ready_at));
    await waitFor('the job to complete', async () => (await f.ctx.queue.counts()).completed === 1);
    assert.deepEqual(await f.ctx.queue.listFailed(), []);

    // The context's own worker (the one `qasar serve` runs) does the same.
    const other = await f.insertMedia();
    await f.enqueue(other);
    f.start(f.ctx.worker);
    await statusOf(f, other, 'ready');
  });

  it('completes quietly a job whose media was deleted', async () => {
    const f = await setup();
    const id = await f.insertMedia();
    const jobId = await f.enqueue(id);
    await f.ctx.database.db.deleteFrom('mediaassets').where('id', '=', id).execute();
    let ran = 0;
    f.start(
      f.worker(async () => {
        ran++;
      }),
    );
    await waitFor('the job to complete', async () => (await f.ctx.queue.counts()).completed === 1);
    assert.equal(ran, 0);
    assert.deepEqual(await f.ctx.queue.listFailed(), []);
    assert.equal(await f.media(id), undefined);
    assert.ok(jobId);
  });

  it('fails at once a job whose name has no handler, instead of completing it', async () => {
    const f = await setup({ JOB_ATTEMPTS: '3' });
    const id = await f.insertMedia();
    // What a newer version (or a typo) could queue.
    const jobId = await f.ctx.queue.enqueue('make-hologram' as JobName, { media_id: id, tenant_id: f.tenantId } as never);
    let ran = 0;
    f.start(
      f.worker(async () => {
        ran++;
      }),
    );
    const failed = await waitFor('the job to be listed as failed', async () => (await f.ctx.queue.listFailed()).find((j) => j.id === jobId));
    assert.equal(failed.attempts, 1, 'not retried');
    assert.match(failed.error, /no handler for jobs named "make-hologram"/);
    assert.equal((await f.ctx.queue.counts()).completed, 0);
    assert.equal(ran, 0);
    assert.equal((await f.media(id))?.status, 'queued', 'the media is left as it was');
  });

  it('keeps media processing across a failed attempt, and ready with no error once a retry succeeds', async () => {
    const f = await setup({ JOB_ATTEMPTS: '3', JOB_BACKOFF: '800ms' });
    const id = await f.insertMedia();
    await f.enqueue(id);
    const attempts: number[] = [];
    f.start(
      f.worker(async (_media, job) => {
        attempts.push(job.attempt);
        if (job.attempt === 1) throw new Error('the disk hiccuped');
      }),
    );
    await waitFor('the retry to be scheduled', async () => (await f.ctx.queue.counts()).delayed === 1);
    const between = await f.media(id);
    assert.equal(between?.status, 'processing', 'a failed attempt that will be retried does not mark the media');
    assert.equal(between?.error_code, null);
    const ready = await statusOf(f, id, 'ready');
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(ready.error_code, null);
    assert.equal(ready.error_reason, null);
  });

  it('queues the follow-ups of a media on the retry when queueing them failed after it became ready', async () => {
    const f = await setup({ JOB_ATTEMPTS: '3', JOB_BACKOFF: '100ms' });
    const id = await f.insertMedia();
    await f.enqueue(id);
    // A queue that refuses the first follow-up (Redis went away for a moment).
    let refused = 0;
    const queue = new Proxy(f.ctx.queue, {
      get(target, prop) {
        if (prop === 'enqueue') {
          return ((name, data, opts) => {
            if (name === 'follow-up' && refused++ === 0) return Promise.reject(new Error('Connection is closed.'));
            return target.enqueue(name, data, opts);
          }) satisfies JobQueue['enqueue'];
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const followedUp: string[] = [];
    const pipeline = pipelineOf().register({
      name: 'extra',
      kinds: ['video'],
      stage: 'follow-up',
      needs: [],
      publishes: [],
      run: async (c) => void followedUp.push(c.media.id),
    });
    const worker = new MediaWorker({
      db: f.ctx.database.db,
      queue,
      log: f.ctx.log,
      pipeline,
      deps: { store: f.ctx.store, layout: f.ctx.layout, settings: f.ctx.settings },
      locks: f.ctx.mediaLocks,
    });
    f.start(worker);
    await waitFor('the follow-up to run after the retry queued it', async () => followedUp.length === 1);
    assert.equal(refused, 2, 'queued on the retry');
    assert.deepEqual(followedUp, [id]);
    assert.equal((await f.media(id))?.status, 'ready', 'the media stays ready through the retry');
    assert.equal((await f.ctx.queue.counts()).failed, 0);
    // The step has run; its job completes a moment later.
    await waitFor('the follow-up job to complete', async () => !(await f.ctx.queue.hasPending(followUpJobKey('extra', id))));
  });

  it('marks the media error when the last attempt fails', async () => {
    const f = await setup({ JOB_ATTEMPTS: '2', JOB_BACKOFF: '800ms' });
    const id = await f.insertMedia();
    const jobId = await f.enqueue(id);
    const attempts: number[] = [];
    f.start(
      f.worker(async (_media, job) => {
        attempts.push(job.attempt);
        throw new Error(`ffmpeg exploded (attempt ${job.attempt})`);
      }),
    );
    await waitFor('the retry to be scheduled', async () => (await f.ctx.queue.counts()).delayed === 1);
    const between = await f.media(id);
    assert.equal(between?.status, 'processing', 'attempt 1 of 2 is not final');
    assert.equal(between?.error_code, null);

    const failed = await statusOf(f, id, 'error');
    assert.equal(failed.error_code, 'processing-failed');
    // A fault of the machine is not the file's: the person reads a plain sentence, the job (admins, logs) keeps the cause.
    assert.equal(failed.error_reason, 'processing failed 2 times because of a problem on the server, not with the file; reprocess it to try again');
    const jobs = await waitFor('the job to be listed as failed', async () => {
      const l = await f.ctx.queue.listFailed();
      return l.length ? l : undefined;
    });
    assert.equal(jobs[0]!.id, jobId);
    assert.equal(jobs[0]!.attempts, 2);
    assert.match(jobs[0]!.error, /ffmpeg exploded \(attempt 2\)/);
    assert.deepEqual(attempts, [1, 2]);
  });

  it('marks the media error at once on PermanentJobError, with its code and reason', async () => {
    const f = await setup({ JOB_ATTEMPTS: '5', JOB_BACKOFF: '50ms' });
    const id = await f.insertMedia();
    await f.enqueue(id);
    const attempts: number[] = [];
    f.start(
      f.worker(async (_media, job) => {
        attempts.push(job.attempt);
        throw new PermanentJobError('not a playable video', 'unsupported-media');
      }),
    );
    const failed = await statusOf(f, id, 'error');
    assert.equal(failed.error_code, 'unsupported-media');
    assert.equal(failed.error_reason, 'not a playable video');
    const jobs = await waitFor('the job to be listed as failed', async () => {
      const l = await f.ctx.queue.listFailed();
      return l.length ? l : undefined;
    });
    assert.equal(jobs[0]!.attempts, 1);
    await sleep(300);
    assert.deepEqual(attempts, [1]);
    assert.equal((await f.media(id))?.status, 'error');
  });

  it('requeueStale() enqueues media stuck in queued with no job, without duplicating existing jobs', async () => {
    const f = await setup();
    const old = 10 * 60_000;
    const withJob = await f.insertMedia({ updatedAgoMs: old });
    await f.enqueue(withJob);
    const lost = await f.insertMedia({ updatedAgoMs: old });
    const fresh = await f.insertMedia({ updatedAgoMs: 0 });
    const done = await f.insertMedia({ status: 'ready', updatedAgoMs: old });
    assert.deepEqual(await f.ctx.queue.counts(), { waiting: 1, active: 0, completed: 0, failed: 0, delayed: 0 });

    const processed: Job[] = [];
    const worker = f.worker(async (_media, job) => {
      processed.push(job);
    });
    await worker.requeueStale(60_000);
    assert.equal((await f.ctx.queue.counts()).waiting, 2, 'one job for the lost media, none more for the one with a job');
    await worker.requeueStale(60_000);
    assert.equal((await f.ctx.queue.counts()).waiting, 2, 'a second sweep adds nothing');

    f.start(worker);
    await statusOf(f, withJob, 'ready');
    await statusOf(f, lost, 'ready');
    await waitFor('both jobs to complete', async () => (await f.ctx.queue.counts()).completed === 2);
    await sleep(300);
    assert.deepEqual(processed.map((j) => j.data.media_id).sort(), [withJob, lost].sort());
    assert.equal((await f.media(fresh))?.status, 'queued', 'media queued moments ago is left to its own job');
    assert.equal((await f.media(done))?.status, 'ready');

    // Nothing is stale any more.
    await worker.requeueStale(60_000);
    await sleep(300);
    assert.equal(processed.length, 2);
    assert.deepEqual(await f.ctx.queue.counts(), { waiting: 0, active: 0, completed: 2, failed: 0, delayed: 0 });
  });

  it('failAbandoned() fails media left processing with no live job, and leaves media whose job is pending', async () => {
    const f = await setup();
    const old = 10 * 60_000;
    // Its job was given up (a worker died on the last attempt): no job holds its key any more.
    const abandoned = await f.insertMedia({ status: 'processing', updatedAgoMs: old });
    // Its job waits for a retry, or runs: still in hand.
    const retrying = await f.insertMedia({ status: 'processing', updatedAgoMs: old });
    await f.enqueue(retrying);
    const recent = await f.insertMedia({ status: 'processing', updatedAgoMs: 0 });
    const done = await f.insertMedia({ status: 'ready', updatedAgoMs: old });
    const worker = f.worker();
    assert.equal(await worker.failAbandoned(60_000), 1);
    const m = await f.media(abandoned);
    assert.equal(m?.status, 'error');
    assert.equal(m?.error_code, 'processing-failed');
    assert.match(m?.error_reason ?? '', /last attempt/);
    const events = await f.ctx.database.db.selectFrom('media_status_events').select(['status', 'error_code']).where('media_id', '=', abandoned).execute();
    assert.deepEqual(events, [{ status: 'error', error_code: 'processing-failed' }], 'the transition is recorded');
    assert.equal((await f.media(retrying))?.status, 'processing');
    assert.equal((await f.media(recent))?.status, 'processing');
    assert.equal((await f.media(done))?.status, 'ready');
    assert.equal(await worker.failAbandoned(60_000), 0, 'a second sweep changes nothing');
  });
});
