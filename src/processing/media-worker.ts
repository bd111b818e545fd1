import type { MediaChanges } from '../events/media-changes.js';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { Db } from '../db/database.js';
import { fromJson, type MediaKind } from '../db/schema.js';
import { followUpJobKey, JobDeferred, type Job, type JobName, type JobQueue, type RunningWorker } from '../queue/queue.js';
import { PermanentJobError } from '../shared/errors.js';
import { processJobKey } from '../queue/queue.js';
import { mediaPrefix } from '../storage/layout.js';
import type { StorageLayout } from '../storage/layout.js';
import { clearLeftovers, mediaFolderIn, type ScratchOwner } from '../storage/scratch.js';
import type { MediaStore } from '../storage/store.js';
import { transition } from '../media/status.js';
import type { MediaToProcess } from './media-to-process.js';
import type { MediaLocks } from '../media/media-lock.js';
import { publicReason } from './public-reason.js';
import { warnIfToolsOutliveWorker } from '../tools/run-tool.js';
import { saveFileMetadata, type StepDeps } from './steps/scratch-step.js';
import { handlerOf, mediaJobHandlers, UnknownJobError, type JobHandlerFor, type JobHandlers, type JobRun } from './jobs.js';
import type { Pipeline, ProcessingStep } from './pipeline.js';

export interface MediaWorkerOptions {
  db: Db;
  queue: JobQueue;
  log: Logger;
  /** The steps of each media kind. */
  pipeline: Pipeline;
  /** What steps are given: the storage layout, the settings (JOB_ATTEMPTS is read from them), whom to tell of writes. */
  deps: Omit<StepDeps<Settings>, 'db' | 'pending' | 'signal' | 'log'>;
  /** The lock each job holds on the media it writes. */
  locks: MediaLocks;
}

/** How long a job waits for its media's lock before it goes back to the queue. */
const LOCK_WAIT_MS = 500;
/** How long the job of a deleted media waits for the lock to remove its folder (another job of the media gives it up at once). */
const DELETED_LOCK_WAIT_MS = 2000;

/**
 * Runs the media jobs (src/processing/jobs.ts): `process-media` takes a media from queued
 * through processing to ready (or error) with its kind's main steps, then queues the kind's
 * follow-ups; `follow-up` runs one follow-up step of a ready media. Steps are idempotent, so an
 * attempt that is repeated after a crash is safe.
 */
export class MediaWorker {
  private readonly handlers: JobHandlers = mediaJobHandlers(this);
  private readonly db: Db;
  private readonly queue: JobQueue;
  private readonly log: Logger;
  private readonly maxAttempts: number;
  private readonly changes: MediaChanges | undefined;
  private readonly layout: StorageLayout;
  private readonly store: MediaStore;
  private readonly deps: StepDeps<Settings>;
  private readonly locks: MediaLocks;
  /** When a job whose media is held by another runs again. */
  private readonly lockedDelayMs: number;
  readonly pipeline: Pipeline;

  constructor(opts: MediaWorkerOptions) {
    this.db = opts.db;
    this.queue = opts.queue;
    this.log = opts.log;
    this.pipeline = opts.pipeline;
    this.deps = { ...opts.deps, db: opts.db, log: opts.log };
    this.maxAttempts = opts.deps.settings.jobAttempts;
    this.changes = opts.deps.changes;
    this.layout = opts.deps.layout;
    this.store = opts.deps.store;
    this.locks = opts.locks;
    this.lockedDelayMs = Math.max(1000, opts.deps.settings.jobBackoff);
  }

  /**
   * Removes the scratch folders of a media that failed for good: no attempt will come to clear
   * them (the next one would), and they can hold gigabytes of half-made renditions. A follow-up
   * (WebM) queued before a reprocess keeps the folders of its own kind while it is pending.
   */
  private async clearScratch(media: { id: string; tenant_id: string; user_id: string; kind: MediaKind }): Promise<void> {
    try {
      const owners: ScratchOwner[] = ['media'];
      for (const step of this.pipeline.followUps(media.kind)) {
        const own = step.scratch ?? 'media';
        if (!owners.includes(own) && !(await this.queue.hasPending(followUpJobKey(step.name, media.id)))) owners.push(own);
      }
      await clearLeftovers(mediaFolderIn(this.store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id }), owners);
    } catch (err) {
      this.log.warn({ err, mediaId: media.id }, 'could not remove the scratch folders of a failed media');
    }
  }

  /**
   * Runs a job with its handler from the job table, holding the lock of the media it writes. A
   * job that cannot have the lock within LOCK_WAIT_MS (another job of the media runs: a WebM
   * encode, a delete) goes back to the queue for a while without using an attempt, so that it
   * does not hold a worker slot while it waits.
   */
  async handle(job: Job): Promise<void> {
    let handler: JobHandlerFor<JobName>;
    try {
      handler = handlerOf(this.handlers, job);
    } catch (err) {
      if (err instanceof UnknownJobError) this.log.error({ jobId: job.id, name: job.name }, err.message);
      throw err;
    }
    const mediaId = handler.lockedMedia(job.data);
    const lock = mediaId === undefined ? undefined : await this.locks.acquire(mediaId, LOCK_WAIT_MS);
    if (mediaId !== undefined && !lock) {
      this.log.debug({ jobId: job.id, mediaId }, 'media held by another job; the job waits');
      throw new JobDeferred(this.lockedDelayMs, `media ${mediaId} is held by another job`);
    }
    const run: JobRun = { signal: lock?.signal ?? new AbortController().signal };
    try {
      await this.run(handler, job, run);
    } finally {
      await lock?.release();
      if (run.media) await this.removeIfDeleted(run.media);
    }
  }

  private async run(handler: JobHandlerFor<JobName>, job: Job, run: JobRun): Promise<void> {
    try {
      await handler.run(job, run);
    } catch (err) {
      const final = err instanceof PermanentJobError || job.attempt >= this.maxAttempts;
      this.log.warn({ err, jobId: job.id, attempt: job.attempt, final }, 'media job failed');
      if (final && job.name === 'process-media') {
        try {
          const code = err instanceof PermanentJobError ? err.code : 'processing-failed';
          const row = await this.db
            .selectFrom('mediaassets')
            .select(['id', 'tenant_id', 'user_id', 'kind'])
            .where('id', '=', job.data.media_id)
            .executeTakeFirst();
          const error = { code, reason: publicReason(err, job.attempt, this.layout.root) };
          if (row && (await transition(this.db, this.changes, { tenantId: row.tenant_id, mediaId: row.id }, ['queued', 'processing'], 'error', error))) {
            await this.clearScratch(row);
          }
        } catch (markErr) {
          // The job still fails with its own error; the media stays as it was.
          this.log.error({ err: markErr, jobId: job.id, mediaId: job.data.media_id }, 'could not mark media as failed');
        }
      }
      throw err;
    }
  }

  async process(job: Job<'process-media'>, run: JobRun): Promise<void> {
    const mediaId = job.data.media_id;
    const media = await this.db.selectFrom('mediaassets').select(['id', 'tenant_id', 'user_id', 'status', 'kind']).where('id', '=', mediaId).executeTakeFirst();
    run.media = media;
    if (!media) {
      this.log.info({ mediaId, jobId: job.id }, 'media was deleted before processing; nothing to do');
      return;
    }
    if (media.status === 'ready') {
      // A retry after the media became ready: the attempt before failed queueing its follow-ups
      // (a Redis blip), and nothing else would queue them. Their dedupe keys make this safe.
      if (job.attempt > 1) await this.queueFollowUps(media);
      return;
    }
    if (!(await transition(this.db, this.changes, { tenantId: media.tenant_id, mediaId }, ['queued', 'processing'], 'processing'))) {
      this.log.info({ mediaId, jobId: job.id }, 'media is no longer queued or processing; nothing to do');
      return;
    }
    this.log.info({ mediaId, kind: media.kind, attempt: job.attempt }, 'processing media');
    const followUps = this.pipeline.followUps(media.kind, this.deps.settings).map((s) => s.name);
    for (const step of this.pipeline.mainSteps(media.kind)) {
      await this.runStep(step, { ...media, status: 'processing' }, job, run, followUps);
    }
    run.signal.throwIfAborted();
    const awaitModeration = this.pipeline.followUps(media.kind, this.deps.settings).some((s) => s.moderates);
    if (await transition(this.db, this.changes, { tenantId: media.tenant_id, mediaId }, 'processing', 'ready', undefined, { awaitModeration })) {
      await this.queueFollowUps(media);
    }
  }

  private runStep(step: ProcessingStep, media: MediaToProcess, job: Job, run: JobRun, pending: readonly string[]): Promise<void> {
    return step.run({ deps: { ...this.deps, pending, signal: run.signal }, media, job, publishes: step.publishes });
  }

  /**
   * Removes the folder of a media deleted while a job of it ran. The delete left the files to the
   * job (it could not have the lock), and whoever holds the lock when the record is gone removes
   * them: this job once it let go, unless another job holds the media by then (it will).
   */
  private async removeIfDeleted(media: { id: string; tenant_id: string; user_id: string }): Promise<void> {
    try {
      if (await this.db.selectFrom('mediaassets').select('id').where('id', '=', media.id).executeTakeFirst()) return;
      const lock = await this.locks.acquire(media.id, DELETED_LOCK_WAIT_MS);
      if (!lock) return;
      try {
        await this.store.deletePrefix(mediaPrefix({ tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id }));
      } finally {
        await lock.release();
      }
    } catch (err) {
      this.log.warn({ err, mediaId: media.id }, 'could not remove the folder of a media deleted while a job ran');
    }
  }

  /** Queues the follow-ups of a media that became ready (at most one job of each per media). */
  private async queueFollowUps(media: { id: string; tenant_id: string; kind: MediaKind }): Promise<void> {
    for (const step of this.pipeline.followUps(media.kind, this.deps.settings)) {
      await this.queue.enqueue(
        'follow-up',
        { media_id: media.id, tenant_id: media.tenant_id, step: step.name },
        { dedupeKey: followUpJobKey(step.name, media.id) },
      );
    }
  }

  /** A follow-up step of a media that is already ready: it runs without touching the status. */
  async followUp(job: Job, name: string, run: JobRun): Promise<void> {
    const step = this.pipeline.step(name);
    if (step?.stage !== 'follow-up') throw new PermanentJobError(`no follow-up step is named ${JSON.stringify(name)}`, 'unknown-job');
    const media = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'status', 'kind'])
      .where('id', '=', job.data.media_id)
      .executeTakeFirst();
    run.media = media;
    if (!media) return;
    if (media.status !== 'ready') {
      // This job will not run: what its earlier attempts left behind is removed now (a later
      // job of the step would, but none may come). The processing job clears `media` folders.
      if (step.scratch && step.scratch !== 'media') {
        await clearLeftovers(mediaFolderIn(this.store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id }), [step.scratch]).catch((err) =>
          this.log.warn({ err, mediaId: media.id, step: name }, 'could not remove the scratch folders of a follow-up that will not run'),
        );
      }
      return;
    }
    if (!step.kinds.includes(media.kind)) return;
    try {
      await this.runStep(step, media, job, run, []);
    } catch (err) {
      if (err instanceof PermanentJobError || job.attempt >= this.maxAttempts) {
        await this.noLongerPending(media, name).catch((e) =>
          this.log.warn({ err: e, mediaId: media.id, step: name }, 'could not take a failed follow-up off pending'),
        );
      }
      throw err;
    }
    await this.noLongerPending(media, name);
  }

  /** Takes a follow-up off file_metadata.pending, when its step has not done so. */
  private async noLongerPending(media: MediaToProcess, name: string): Promise<void> {
    const row = await this.db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirst();
    const meta = fromJson<Record<string, unknown>>(row?.file_metadata ?? null, {});
    const pending = Array.isArray(meta.pending) ? (meta.pending as unknown[]) : [];
    if (!row || !pending.includes(name)) return;
    await saveFileMetadata(this.deps, media, { ...meta, pending: pending.filter((p) => p !== name) });
  }

  /**
   * Runs new media in `concurrency` slots and follow-ups in `followUpConcurrency` slots of their
   * own (none: this process runs no follow-ups), so a follow-up never holds up new media.
   * `concurrency` 0: this process runs only follow-ups.
   */
  start(concurrency: number, followUpConcurrency = this.deps.settings.workerFollowupConcurrency): RunningWorker {
    warnIfToolsOutliveWorker(this.log);
    const handler = (job: Job) => this.handle(job);
    const workers: RunningWorker[] = [];
    if (concurrency > 0) workers.push(this.queue.work(handler, { concurrency, jobClass: 'new' }));
    if (followUpConcurrency > 0) workers.push(this.queue.work(handler, { concurrency: followUpConcurrency, jobClass: 'follow-up' }));
    return { close: async () => void (await Promise.all(workers.map((w) => w.close()))) };
  }

  /**
   * Fails media left `processing` by a job that no longer exists or runs: its worker died on
   * the last attempt, and the queue gave the job up without our handler seeing it.
   */
  async failAbandoned(olderThanMs: number): Promise<number> {
    const rows = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'kind'])
      .where('status', '=', 'processing')
      .where('updated_at', '<', new Date(Date.now() - olderThanMs).toISOString())
      .limit(1000)
      .execute();
    let failed = 0;
    for (const r of rows) {
      if (await this.queue.hasPending(processJobKey(r.id))) continue;
      const moved = await transition(this.db, this.changes, { tenantId: r.tenant_id, mediaId: r.id }, 'processing', 'error', {
        code: 'processing-failed',
        reason: 'processing stopped on its last attempt (the worker running it died); reprocess to try again',
      });
      if (!moved) continue;
      failed++;
      // Unless a job of the media holds it now (a follow-up): its folders are that job's.
      const lock = await this.locks.acquire(r.id, 0).catch(() => undefined);
      if (lock) {
        try {
          await this.clearScratch(r);
        } finally {
          await lock.release();
        }
      }
      this.log.warn({ mediaId: r.id }, 'media failed: its job was given up while processing');
    }
    return failed;
  }

  /**
   * Enqueues media that stayed `queued` with no job (the enqueue after the record was saved
   * failed, or the queue lost it). Dedupe keys make this harmless for media that has a job.
   */
  /**
   * Queues again the follow-ups still listed as pending of media that wait for moderation, when no
   * job of them is waiting or running: the job was given up without our handler seeing it (its
   * worker killed on the last attempt) or its queueing was lost. Such a media would otherwise stay
   * hidden for good. Returns how many jobs it queued.
   */
  async requeueStaleFollowUps(olderThanMs: number): Promise<number> {
    const rows = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'kind', 'file_metadata'])
      .where('status', '=', 'ready')
      .where('moderation_state', '=', 'pending')
      .where('updated_at', '<', new Date(Date.now() - olderThanMs).toISOString())
      .limit(1000)
      .execute();
    let queued = 0;
    for (const r of rows) {
      const pending = fromJson<{ pending?: unknown }>(r.file_metadata, {}).pending;
      for (const step of this.pipeline.followUps(r.kind, this.deps.settings)) {
        if (!Array.isArray(pending) || !pending.includes(step.name)) continue;
        const key = followUpJobKey(step.name, r.id);
        if (await this.queue.hasPending(key)) continue;
        await this.queue.enqueue('follow-up', { media_id: r.id, tenant_id: r.tenant_id, step: step.name }, { dedupeKey: key });
        queued++;
      }
    }
    return queued;
  }

  async requeueStale(olderThanMs: number): Promise<number> {
    const rows = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id'])
      .where('status', '=', 'queued')
      .where('updated_at', '<', new Date(Date.now() - olderThanMs).toISOString())
      .limit(1000)
      .execute();
    for (const r of rows) {
      await this.queue.enqueue('process-media', { media_id: r.id, tenant_id: r.tenant_id }, { dedupeKey: processJobKey(r.id) });
    }
    return rows.length;
  }
}
