/**
 * The job queue contract. The same test bodies run against the backend QASAR_TEST_BACKEND
 * names: `embedded` (EmbeddedQueue on a SQLite file) or `scale` (BullmqQueue on Redis). Each
 * test builds its queue from its own isolated settings, as src/cli/compose.ts does.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { sqliteFile } from '../../src/config/settings.js';
import { EmbeddedQueue } from '../../src/queue/embedded-queue.js';
import { JobDeferred, type Job, type JobCounts } from '../../src/queue/queue.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { BACKEND, testEnv, waitFor, type TestEnv } from '../support/harness.js';
import { killAndWait, waitForLine } from '../support/child-process.js';
import { openQueue, type OpenQueue } from '../support/queue-backend.js';

const CHILD_WORKER = path.resolve(import.meta.dirname, '../support/queue-child-worker.ts');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function counts(partial: Partial<JobCounts>): JobCounts {
  return { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0, ...partial };
}

/** A copy of what the handler was given, and when. */
interface Call {
  job: Job;
  at: number;
}
function record(calls: Call[], job: Job): void {
  calls.push({ job: { ...job, data: { ...job.data } }, at: Date.now() });
}

describe(`job queue contract (${BACKEND} backend)`, () => {
  const cleanups: Array<() => Promise<void>> = [];

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  /** Starts the helper worker process on these settings; it is killed after the test. */
  function spawnChildWorker(env: TestEnv): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD_WORKER], {
      env: { ...process.env, ...env.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => killAndWait(child));
    return child;
  }

  async function setup(
    overrides: Record<string, string> = {},
    opts: { classed?: boolean } = {},
  ): Promise<OpenQueue & { env: TestEnv; reopen(): Promise<OpenQueue> }> {
    const env = await testEnv(overrides);
    cleanups.push(() => env.cleanup());
    const reopen = async () => {
      const q = await openQueue(env.settings, opts);
      cleanups.push(() => q.close());
      return q;
    };
    const q = await reopen();
    assert.equal(q.queue.backend, env.settings.redisUrl ? 'bullmq' : 'embedded');
    return { ...q, env, reopen };
  }

  it('runs an enqueued job once with its payload on attempt 1, and counts() follow its state', async () => {
    const { queue } = await setup();
    assert.deepEqual(await queue.counts(), counts({}));
    const id = await queue.enqueue('process-media', { media_id: 'm-1' });
    assert.ok(typeof id === 'string' && id.length > 0);
    assert.deepEqual(await queue.counts(), counts({ waiting: 1 }));

    const calls: Call[] = [];
    const gate = deferred();
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        await gate.promise;
      },
      { concurrency: 1 },
    );
    cleanups.push(() => worker.close());
    await waitFor('the handler to start', async () => calls.length === 1);
    assert.deepEqual(await queue.counts(), counts({ active: 1 }));
    gate.resolve();
    await waitFor('the job to complete', async () => (await queue.counts()).completed === 1);
    assert.deepEqual(await queue.counts(), counts({ completed: 1 }));
    assert.deepEqual(
      calls.map((c) => c.job),
      [{ id, name: 'process-media', data: { media_id: 'm-1' }, attempt: 1 }],
    );
    assert.deepEqual(await queue.listFailed(), []);
    await sleep(300);
    assert.equal(calls.length, 1, 'a completed job runs once');
  });

  it('holds a delayed job back until its delay has passed', async () => {
    const { queue } = await setup();
    const calls: Call[] = [];
    const worker = queue.work(async (job) => record(calls, job), { concurrency: 1 });
    cleanups.push(() => worker.close());
    const t0 = Date.now();
    const id = await queue.enqueue('process-media', { media_id: 'later' }, { delayMs: 700 });
    assert.deepEqual(await queue.counts(), counts({ delayed: 1 }));
    await waitFor('the delayed job to run', async () => calls.length === 1);
    assert.ok(calls[0]!.at - t0 >= 690, `ran after ${calls[0]!.at - t0} ms`);
    assert.equal(calls[0]!.job.id, id);
  });

  it('retries a failing job with growing (exponential) delays until it succeeds', async () => {
    // Long enough that scheduling noise on a busy machine (a few hundred ms) cannot blur 1x and 2x.
    const backoff = 600;
    const { queue } = await setup({ JOB_BACKOFF: `${backoff}ms`, JOB_ATTEMPTS: '5' });
    const calls: Call[] = [];
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        if (job.attempt < 3) throw new Error(`transient failure ${job.attempt}`);
      },
      { concurrency: 1 },
    );
    cleanups.push(() => worker.close());
    const id = await queue.enqueue('process-media', { media_id: 'flaky' });
    await waitFor('the job to complete', async () => (await queue.counts()).completed === 1);
    assert.deepEqual(
      calls.map((c) => [c.job.id, c.job.attempt]),
      [
        [id, 1],
        [id, 2],
        [id, 3],
      ],
    );
    const gap1 = calls[1]!.at - calls[0]!.at;
    const gap2 = calls[2]!.at - calls[1]!.at;
    // backoff · 2^(attempt-1): about 600 ms, then about 1200 ms.
    assert.ok(gap1 >= backoff - 10, `first retry after ${gap1} ms, expected at least ${backoff}`);
    assert.ok(gap1 < 2 * backoff - 10, `first retry after ${gap1} ms: the first delay is one backoff, not two`);
    assert.ok(gap2 >= 2 * backoff - 10, `second retry after ${gap2} ms, expected at least ${2 * backoff}: delays grow exponentially`);
    assert.deepEqual(await queue.counts(), counts({ completed: 1 }));
    assert.deepEqual(await queue.listFailed(), []);
  });

  it('fails a job after JOB_ATTEMPTS attempts, lists it with its error, and retry() runs it again', async () => {
    const { queue } = await setup({ JOB_BACKOFF: '50ms', JOB_ATTEMPTS: '3' });
    const calls: Call[] = [];
    let healthy = false;
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        if (!healthy) throw new Error(`boom on attempt ${job.attempt}`);
      },
      { concurrency: 1 },
    );
    cleanups.push(() => worker.close());
    const id = await queue.enqueue('process-media', { media_id: 'doomed' });
    const failed = await waitFor('the job to fail', async () => {
      const f = await queue.listFailed();
      return f.length ? f : undefined;
    });
    assert.equal(failed.length, 1);
    const [f] = failed;
    assert.equal(f!.id, id);
    assert.equal(f!.name, 'process-media');
    assert.deepEqual(f!.data, { media_id: 'doomed' });
    assert.equal(f!.attempts, 3);
    assert.match(f!.error, /boom on attempt 3/);
    assert.ok(f!.failedAt && !Number.isNaN(Date.parse(f!.failedAt)), `failedAt: ${f!.failedAt}`);
    assert.deepEqual(
      calls.map((c) => c.job.attempt),
      [1, 2, 3],
    );
    await sleep(300);
    assert.equal(calls.length, 3, 'no attempt after the last one');
    assert.deepEqual(await queue.counts(), counts({ failed: 1 }));

    assert.equal(await queue.retry('no-such-job'), false);
    healthy = true;
    assert.equal(await queue.retry(id), true);
    await waitFor('the retried job to complete', async () => (await queue.counts()).completed === 1);
    assert.equal(calls.length, 4);
    assert.equal(calls[3]!.job.id, id);
    assert.equal(calls[3]!.job.attempt, 1, 'a retried job starts its attempts afresh');
    assert.deepEqual(await queue.listFailed(), []);
    assert.deepEqual(await queue.counts(), counts({ completed: 1 }));
    assert.equal(await queue.retry(id), false, 'only a failed job can be retried');
  });

  it('fails a job at once, without retries, on PermanentJobError', async () => {
    const { queue } = await setup({ JOB_BACKOFF: '50ms', JOB_ATTEMPTS: '3' });
    const calls: Call[] = [];
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        throw new PermanentJobError('the input is broken', 'broken-input');
      },
      { concurrency: 1 },
    );
    cleanups.push(() => worker.close());
    const id = await queue.enqueue('process-media', { media_id: 'broken' });
    const failed = await waitFor('the job to fail', async () => {
      const f = await queue.listFailed();
      return f.length ? f : undefined;
    });
    assert.equal(failed[0]!.id, id);
    assert.equal(failed[0]!.attempts, 1);
    assert.match(failed[0]!.error, /the input is broken/);
    await sleep(400);
    assert.deepEqual(
      calls.map((c) => c.job.attempt),
      [1],
    );
    assert.deepEqual(await queue.counts(), counts({ failed: 1 }));
  });

  it('puts a deferred job back for later without using an attempt, keeping its dedupe key', async () => {
    // One attempt: a deferral that used it up would fail the job.
    const { queue } = await setup({ JOB_ATTEMPTS: '1' });
    const calls: Call[] = [];
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        if (calls.length < 3) throw new JobDeferred(400, 'its media is busy');
      },
      { concurrency: 1 },
    );
    cleanups.push(() => worker.close());
    const id = await queue.enqueue('process-media', { media_id: 'busy' }, { dedupeKey: 'media:busy' });
    await waitFor('the first run', async () => calls.length === 1);
    assert.equal(await queue.enqueue('process-media', { media_id: 'busy' }, { dedupeKey: 'media:busy' }), id, 'a deferred job still holds its key');
    await waitFor('the job to complete', async () => (await queue.counts()).completed === 1);
    assert.deepEqual(
      calls.map((c) => [c.job.id, c.job.attempt]),
      [
        [id, 1],
        [id, 1],
        [id, 1],
      ],
    );
    for (let i = 1; i < calls.length; i++) {
      const gap = calls[i]!.at - calls[i - 1]!.at;
      assert.ok(gap >= 390, `run ${i + 1} came ${gap} ms after the deferral, expected at least its 400 ms`);
    }
    assert.deepEqual(await queue.listFailed(), []);
    assert.deepEqual(await queue.counts(), counts({ completed: 1 }));
  });

  it('keeps at most one waiting or active job per dedupeKey', async () => {
    const { queue } = await setup({ JOB_ATTEMPTS: '3', JOB_BACKOFF: '50ms' });
    const a1 = await queue.enqueue('process-media', { media_id: 'a' }, { dedupeKey: 'media:a' });
    const a2 = await queue.enqueue('process-media', { media_id: 'a' }, { dedupeKey: 'media:a' });
    const b = await queue.enqueue('process-media', { media_id: 'b' }, { dedupeKey: 'media:b' });
    assert.equal(a2, a1, 'the same key while waiting gives the same job');
    assert.notEqual(b, a1);
    assert.deepEqual(await queue.counts(), counts({ waiting: 2 }));
    assert.equal(await queue.hasPending('media:a'), true, 'a waiting job is pending');
    assert.equal(await queue.hasPending('media:none'), false);

    const calls: Call[] = [];
    const gate = deferred();
    let permanent = false;
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        if (job.data.media_id === 'a') await gate.promise;
        if (permanent) throw new PermanentJobError('no good');
      },
      { concurrency: 2 },
    );
    cleanups.push(() => worker.close());
    await waitFor('a to start', async () => calls.some((c) => c.job.data.media_id === 'a'));
    // While it runs, the key still maps to the same job: no second one is queued.
    assert.equal(await queue.enqueue('process-media', { media_id: 'a' }, { dedupeKey: 'media:a' }), a1);
    assert.equal(await queue.hasPending('media:a'), true, 'a running job is pending');
    gate.resolve();
    await waitFor('both jobs to complete', async () => (await queue.counts()).completed === 2);
    assert.equal(await queue.hasPending('media:a'), false, 'a completed job is not');
    await sleep(300);
    assert.deepEqual(calls.map((c) => c.job.data.media_id).sort(), ['a', 'b']);

    // Once the job is finished, the key is free: enqueueing again makes a new job that runs.
    permanent = true;
    const a3 = await queue.enqueue('process-media', { media_id: 'a' }, { dedupeKey: 'media:a' });
    await waitFor('the new job to run and fail', async () => (await queue.listFailed()).length === 1);
    assert.equal(await queue.hasPending('media:a'), false, 'a failed job is not');
    assert.equal(calls.length, 3);
    assert.equal(calls[2]!.job.id, a3);
    // A failed job does not hold its key either.
    permanent = false;
    const a4 = await queue.enqueue('process-media', { media_id: 'a' }, { dedupeKey: 'media:a' });
    assert.notEqual(a4, a3);
    await waitFor('the next job to complete', async () => (await queue.counts()).completed === 3);
    assert.equal(calls.length, 4);
    assert.equal(calls[3]!.job.id, a4);
  });

  it('loses nothing across a restart: a job enqueued with no worker runs after the queue is reopened', async () => {
    const first = await setup();
    const id = await first.queue.enqueue('process-media', { media_id: 'survivor' }, { dedupeKey: 'media:survivor' });
    const later = await first.queue.enqueue('process-media', { media_id: 'delayed-survivor' }, { delayMs: 300 });
    await first.close();

    const second = await first.reopen();
    assert.deepEqual(await second.queue.counts(), counts({ waiting: 1, delayed: 1 }));
    // The dedupe key still refers to the job from before the restart.
    assert.equal(await second.queue.enqueue('process-media', { media_id: 'survivor' }, { dedupeKey: 'media:survivor' }), id);
    const calls: Call[] = [];
    const worker = second.queue.work(async (job) => record(calls, job), { concurrency: 1 });
    cleanups.push(() => worker.close());
    await waitFor('both jobs to run', async () => (await second.queue.counts()).completed === 2);
    assert.deepEqual(
      calls.map((c) => c.job).sort((x, y) => x.data.media_id.localeCompare(y.data.media_id)),
      [
        { id: later, name: 'process-media', data: { media_id: 'delayed-survivor' }, attempt: 1 },
        { id, name: 'process-media', data: { media_id: 'survivor' }, attempt: 1 },
      ],
    );
  });

  it('takes up again a job whose worker process was killed (SIGKILL), as attempt 2', async () => {
    const lease = 1000;
    const { queue, env } = await setup({ JOB_LEASE: `${lease}ms`, JOB_ATTEMPTS: '3', JOB_BACKOFF: '50ms' });
    const id = await queue.enqueue('process-media', { media_id: 'orphan' });

    const child = spawnChildWorker(env);
    const started = await waitForLine(child, /^STARTED (\S+) (\d+)$/, 30_000);
    assert.equal(started[1], id);
    assert.equal(started[2], '1');

    // Our own worker starts while the child holds the job: as long as the child lives, it keeps
    // renewing its lease, so the job is not taken from it however long it runs.
    const calls: Call[] = [];
    const worker = queue.work(async (job) => record(calls, job), { concurrency: 1 });
    cleanups.push(() => worker.close());
    await sleep(3 * lease);
    assert.equal(calls.length, 0, 'a job held by a live worker was taken from it');
    assert.deepEqual(await queue.counts(), counts({ active: 1 }));

    const killedAt = Date.now();
    await killAndWait(child);
    await waitFor('the job to be taken up again', async () => calls.length === 1, 20_000);
    assert.deepEqual(calls[0]!.job, { id, name: 'process-media', data: { media_id: 'orphan' }, attempt: 2 });
    await waitFor('the job to complete', async () => (await queue.counts()).completed === 1);
    assert.deepEqual(await queue.counts(), counts({ completed: 1 }));
    assert.deepEqual(await queue.listFailed(), []);
    const after = calls[0]!.at - killedAt;
    assert.ok(after < 10 * lease, `taken up ${after} ms after the kill, with a ${lease} ms lease`);
  });

  it('fails, rather than runs again, a job whose worker died on its last attempt', async () => {
    // Each start is an attempt, so a job that kills its worker every time cannot loop for ever.
    const { queue, env } = await setup({ JOB_LEASE: '1s', JOB_ATTEMPTS: '1' });
    const id = await queue.enqueue('process-media', { media_id: 'poison' }, { dedupeKey: 'media:poison' });
    const child = spawnChildWorker(env);
    const started = await waitForLine(child, /^STARTED (\S+) (\d+)$/, 30_000);
    assert.deepEqual(started.slice(1), [id, '1']);
    await killAndWait(child);
    const calls: Call[] = [];
    const worker = queue.work(async (job) => record(calls, job), { concurrency: 1 });
    cleanups.push(() => worker.close());
    const failed = await waitFor(
      'the job to fail',
      async () => {
        const f = await queue.listFailed();
        return f.length ? f : undefined;
      },
      20_000,
    );
    assert.equal(failed[0]!.id, id);
    assert.equal(failed[0]!.attempts, 1);
    assert.deepEqual(calls, []);
    assert.deepEqual(await queue.counts(), counts({ failed: 1 }));
    // What the worker's sweep relies on to fail media left `processing` by such a job.
    assert.equal(await queue.hasPending('media:poison'), false, 'a job given up for a dead worker is not pending');
  });

  it('runs jobs in parallel up to the worker concurrency', async () => {
    const { queue } = await setup();
    let inFlight = 0;
    let maxInFlight = 0;
    const spans: Array<{ id: string; start: number; end: number }> = [];
    for (const m of ['p1', 'p2', 'p3']) await queue.enqueue('process-media', { media_id: m });
    const worker = queue.work(
      async (job) => {
        const start = Date.now();
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(400);
        inFlight--;
        spans.push({ id: job.data.media_id, start, end: Date.now() });
      },
      { concurrency: 2 },
    );
    cleanups.push(() => worker.close());
    await waitFor('all three jobs to complete', async () => (await queue.counts()).completed === 3);
    assert.equal(maxInFlight, 2);
    const [x, y] = [...spans].sort((p, q) => p.start - q.start);
    assert.ok(y!.start < x!.end, `the first two jobs did not overlap: ${JSON.stringify(spans)}`);
  });

  it('close() waits for running jobs, and a closed worker takes no more jobs', async () => {
    const { queue } = await setup();
    const calls: Call[] = [];
    let finished = 0;
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        await sleep(500);
        finished++;
      },
      { concurrency: 1 },
    );
    cleanups.push(() => worker.close());
    await queue.enqueue('process-media', { media_id: 'slow' });
    await waitFor('the job to start', async () => calls.length === 1);
    await worker.close();
    assert.equal(finished, 1, 'close() returned before the running job finished');
    assert.deepEqual(await queue.counts(), counts({ completed: 1 }));

    await queue.enqueue('process-media', { media_id: 'after-close' });
    await sleep(700);
    assert.equal(calls.length, 1, 'a closed worker ran a job');
    assert.deepEqual(await queue.counts(), counts({ waiting: 1, completed: 1 }));

    // Closing the queue itself also waits for its workers' running jobs.
    const again = queue.work(
      async (job) => {
        record(calls, job);
        await sleep(500);
        finished++;
      },
      { concurrency: 1 },
    );
    cleanups.push(() => again.close());
    await waitFor('the second job to start', async () => calls.length === 2);
    await queue.close();
    assert.equal(finished, 2, 'queue.close() returned before the running job finished');
  });

  it('runs follow-ups in slots of their own: a new job starts at once while every follow-up slot is busy', async () => {
    const { queue } = await setup({}, { classed: true });
    const gate = deferred();
    const calls: Call[] = [];
    const handler = async (job: Job) => {
      record(calls, job);
      if (job.name === 'follow-up') await gate.promise;
    };
    const news = queue.work(handler, { concurrency: 1, jobClass: 'new' });
    const followUps = queue.work(handler, { concurrency: 1, jobClass: 'follow-up' });
    cleanups.push(() => news.close());
    cleanups.push(() => followUps.close());
    cleanups.push(async () => gate.resolve());
    await queue.enqueue('follow-up', { media_id: 'm-1', step: 'webm' });
    await queue.enqueue('follow-up', { media_id: 'm-2', step: 'webm' });
    await waitFor('the first follow-up to start', async () => calls.length === 1);
    await queue.enqueue('process-media', { media_id: 'm-3' });
    await waitFor('the new media job to run', async () => calls.some((c) => c.job.name === 'process-media'));
    await waitFor('the new media job to complete', async () => (await queue.counts()).completed === 1);
    assert.deepEqual(
      calls.map((c) => c.job.data.media_id),
      ['m-1', 'm-3'],
      'the second follow-up waits for the follow-up slot; the new job does not',
    );
    assert.deepEqual(await queue.counts(), counts({ active: 1, waiting: 1, completed: 1 }));
    gate.resolve();
    await waitFor('all three to complete', async () => (await queue.counts()).completed === 3);
    assert.deepEqual(
      calls.map((c) => c.job.data.media_id),
      ['m-1', 'm-3', 'm-2'],
    );
  });

  it('gives each job of every class its own id, and lists, retries and counts them together', async () => {
    const { queue } = await setup({ JOB_ATTEMPTS: '1' }, { classed: true });
    const newId = await queue.enqueue('process-media', { media_id: 'm-1' }, { dedupeKey: 'media:m-1' });
    const followUpId = await queue.enqueue('follow-up', { media_id: 'm-1', step: 'webm' }, { dedupeKey: 'webm:m-1' });
    assert.notEqual(newId, followUpId);
    assert.match(followUpId, /^follow-up:/);
    assert.equal(await queue.hasPending('media:m-1'), true);
    assert.equal(await queue.hasPending('webm:m-1'), true);
    assert.equal(await queue.enqueue('follow-up', { media_id: 'm-1', step: 'webm' }, { dedupeKey: 'webm:m-1' }), followUpId, 'deduplicated within its class');
    assert.deepEqual(await queue.counts(), counts({ waiting: 2 }));
    let broken = true;
    const calls: Call[] = [];
    const worker = queue.work(
      async (job) => {
        record(calls, job);
        if (broken) throw new PermanentJobError('broken input');
      },
      { concurrency: 1 },
    );
    cleanups.push(() => worker.close());
    const failed = await waitFor('both jobs to fail', async () => {
      const l = await queue.listFailed();
      return l.length === 2 ? l : undefined;
    });
    assert.deepEqual(failed.map((f) => f.id).sort(), [newId, followUpId].sort());
    assert.deepEqual(calls.map((c) => c.job.id).sort(), [newId, followUpId].sort(), 'handlers see the same ids');
    broken = false;
    assert.equal(await queue.retry(followUpId), true);
    await waitFor('the retried follow-up to complete', async () => (await queue.counts()).completed === 1);
    assert.deepEqual(await queue.counts(), counts({ failed: 1, completed: 1 }));
    assert.deepEqual(
      (await queue.listFailed()).map((f) => f.id),
      [newId],
    );
  });

  // Fair scheduling across tenants. On the scale-up backend the embedded queue also runs on
  // PostgreSQL (DATABASE_URL=postgres and no REDIS_URL), so it is checked there too.
  const fairVariants: Array<{ label: string; overrides: Record<string, string> }> =
    BACKEND === 'scale'
      ? [
          { label: 'bullmq', overrides: {} },
          { label: 'embedded queue on PostgreSQL', overrides: { REDIS_URL: '' } },
        ]
      : [{ label: 'embedded', overrides: {} }];
  for (const variant of fairVariants) {
    it(`runs a tenant's one job among the first two while another tenant has 20 queued, with concurrency 1 (${variant.label})`, async () => {
      const { queue } = await setup({ ...variant.overrides, WORKER_TENANT_CONCURRENCY: '1' });
      const order: string[] = [];
      const firstRunning = deferred();
      const worker = queue.work(
        async (job) => {
          order.push(job.data.media_id);
          if (order.length === 1) await firstRunning.promise;
        },
        { concurrency: 1 },
      );
      cleanups.push(() => worker.close());
      cleanups.push(async () => firstRunning.resolve());
      for (let i = 1; i <= 20; i++) await queue.enqueue('process-media', { media_id: `a${i}`, tenant_id: 'tenant-a' });
      await waitFor("tenant A's first job to start", async () => order.length === 1);
      // Tenant B comes while A's first job runs and 19 more of A's wait.
      await queue.enqueue('process-media', { media_id: 'b1', tenant_id: 'tenant-b' });
      firstRunning.resolve();
      await waitFor('all 21 jobs to complete', async () => (await queue.counts()).completed === 21, 30_000);
      assert.equal(order.length, 21);
      assert.ok(order.indexOf('b1') <= 1, `tenant B's job ran at position ${order.indexOf('b1') + 1}: ${order.join(' ')}`);
      // Within a tenant, jobs keep their order.
      assert.deepEqual(
        order.filter((m) => m !== 'b1'),
        Array.from({ length: 20 }, (_, i) => `a${i + 1}`),
      );
    });

    it(`gives a deduplicated enqueue no turn: re-enqueued jobs do not push their tenant back (${variant.label})`, async () => {
      const { queue } = await setup({ ...variant.overrides, WORKER_TENANT_CONCURRENCY: '1' });
      const job = (media_id: string, tenant_id: string) => ['process-media', { media_id, tenant_id }, { dedupeKey: `k-${media_id}` }] as const;
      await queue.enqueue(...job('a1', 'tenant-a'));
      // What the sweep of stale queued media does every minute: enqueue again what is still waiting.
      for (let i = 0; i < 10; i++) await queue.enqueue(...job('a1', 'tenant-a'));
      await queue.enqueue(...job('a2', 'tenant-a'));
      await queue.enqueue(...job('b1', 'tenant-b'));
      await queue.enqueue(...job('b2', 'tenant-b'));
      const order: string[] = [];
      const worker = queue.work(async (j) => void order.push(j.data.media_id), { concurrency: 1 });
      cleanups.push(() => worker.close());
      await waitFor('the four jobs to complete', async () => (await queue.counts()).completed === 4, 30_000);
      assert.deepEqual(order, ['a1', 'b1', 'a2', 'b2']);
    });

    it(`never runs more than WORKER_TENANT_CONCURRENCY jobs of one tenant at once, and free slots take other tenants' jobs (${variant.label})`, async () => {
      // One attempt only: a job held back by its tenant's limit must not use one up.
      const { queue } = await setup({ ...variant.overrides, WORKER_TENANT_CONCURRENCY: '2', JOB_ATTEMPTS: '1' });
      const gate = deferred();
      const running = new Map<string, number>();
      const most = new Map<string, number>();
      const calls: Call[] = [];
      const worker = queue.work(
        async (job) => {
          record(calls, job);
          const t = job.data.tenant_id ?? '';
          running.set(t, (running.get(t) ?? 0) + 1);
          most.set(t, Math.max(most.get(t) ?? 0, running.get(t)!));
          try {
            await gate.promise;
          } finally {
            running.set(t, running.get(t)! - 1);
          }
        },
        { concurrency: 3 },
      );
      cleanups.push(() => worker.close());
      // Runs first: a failed assertion must not leave close() waiting on the gate.
      cleanups.push(async () => gate.resolve());
      for (let i = 1; i <= 8; i++) await queue.enqueue('process-media', { media_id: `a${i}`, tenant_id: 'tenant-a' });
      await waitFor("two of tenant A's jobs to start", async () => calls.length === 2);
      // The third slot is free, yet A is at its limit: it stays free however long we look.
      await sleep(1500);
      assert.deepEqual(
        calls.map((c) => c.job.data.media_id),
        ['a1', 'a2'],
      );
      await queue.enqueue('process-media', { media_id: 'b1', tenant_id: 'tenant-b' });
      await waitFor("tenant B's job to take the free slot", async () => calls.some((c) => c.job.data.media_id === 'b1'));
      assert.equal(running.get('tenant-a'), 2);
      assert.deepEqual(await queue.runningByTenant(), { 'tenant-a': 2, 'tenant-b': 1 });
      gate.resolve();
      await waitFor('all nine jobs to complete', async () => (await queue.counts()).completed === 9, 30_000);
      assert.equal(most.get('tenant-a'), 2, 'tenant A ran more jobs at once than its limit');
      assert.deepEqual(await queue.listFailed(), []);
      assert.ok(
        calls.every((c) => c.job.attempt === 1),
        `a job held back by its tenant's limit used up an attempt: ${JSON.stringify(calls.map((c) => [c.job.data.media_id, c.job.attempt]))}`,
      );
      assert.equal(calls.length, 9);
    });

    it(`frees the tenant slot of a worker killed (SIGKILL) while it held it (${variant.label})`, async () => {
      const { queue, env } = await setup({ ...variant.overrides, JOB_LEASE: '1s', JOB_ATTEMPTS: '3', JOB_BACKOFF: '50ms', WORKER_TENANT_CONCURRENCY: '1' });
      const held = await queue.enqueue('process-media', { media_id: 'a1', tenant_id: 'tenant-a' });
      const child = spawnChildWorker(env);
      const started = await waitForLine(child, /^STARTED (\S+) (\d+)$/, 30_000);
      assert.equal(started[1], held);
      await killAndWait(child);
      await queue.enqueue('process-media', { media_id: 'a2', tenant_id: 'tenant-a' });
      const calls: Call[] = [];
      const worker = queue.work(async (job) => record(calls, job), { concurrency: 2 });
      cleanups.push(() => worker.close());
      await waitFor("both of tenant A's jobs to complete", async () => (await queue.counts()).completed === 2, 20_000);
      assert.deepEqual(calls.map((c) => [c.job.data.media_id, c.job.attempt]).sort(), [
        ['a1', 2],
        ['a2', 1],
      ]);
    });

    it(`runs as many jobs of one tenant at once as there are slots when WORKER_TENANT_CONCURRENCY is left at its default (${variant.label})`, async () => {
      const { queue, env } = await setup(variant.overrides);
      assert.equal(env.settings.workerTenantConcurrency, 0);
      const gate = deferred();
      const calls: Call[] = [];
      const worker = queue.work(
        async (job) => {
          record(calls, job);
          await gate.promise;
        },
        { concurrency: 3 },
      );
      cleanups.push(() => worker.close());
      cleanups.push(async () => gate.resolve());
      for (let i = 1; i <= 3; i++) await queue.enqueue('process-media', { media_id: `a${i}`, tenant_id: 'tenant-a' });
      await waitFor("all three of the tenant's jobs to run at once", async () => calls.length === 3);
      assert.deepEqual(await queue.runningByTenant(), { 'tenant-a': 3 });
      gate.resolve();
      await waitFor('the three jobs to complete', async () => (await queue.counts()).completed === 3);
    });
  }

  if (BACKEND === 'embedded') {
    it("does not take SQLite's write lock to poll while every due job is held back by its tenant's limit", async () => {
      const { queue, env } = await setup({ WORKER_TENANT_CONCURRENCY: '1' });
      assert.ok(queue instanceof EmbeddedQueue);
      await queue.enqueue('process-media', { media_id: 'a1', tenant_id: 'tenant-a' });
      await queue.enqueue('process-media', { media_id: 'a2', tenant_id: 'tenant-a' });
      assert.equal((await queue.claim('worker-1'))?.data.media_id, 'a1');
      // Another process holds the write lock: a poll that wanted it would wait out busy_timeout and fail with SQLITE_BUSY.
      const other = new SqliteDatabase(sqliteFile(env.settings));
      cleanups.push(async () => void other.close());
      other.prepare('begin immediate').run();
      try {
        assert.equal(await queue.hasClaimable(), false);
        assert.equal(await queue.claim('worker-2'), undefined);
      } finally {
        other.prepare('rollback').run();
      }
      await queue.enqueue('process-media', { media_id: 'b1', tenant_id: 'tenant-b' });
      assert.equal(await queue.hasClaimable(), true);
      assert.equal((await queue.claim('worker-2'))?.data.media_id, 'b1');
    });
  }
});
