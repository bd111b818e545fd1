import type { MediaChanges } from '../events/media-changes.js';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import type { Job, JobQueue, RunningWorker } from '../queue/queue.js';
import { PermanentJobError } from '../shared/errors.js';
import { processJobKey, webmJobKey } from '../queue/queue.js';
import type { StorageLayout } from '../storage/layout.js';
import { clearLeftovers, mediaFolderIn, type ScratchOwner } from '../storage/scratch.js';
import type { MediaStore } from '../storage/store.js';
import { publicReason } from './public-reason.js';
import { warnIfToolsOutliveWorker } from '../tools/run-tool.js';
import { transition } from '../media/status.js';

/** The media row a processing step works on. */
export interface MediaToProcess {
  id: string;
  tenant_id: string;
  user_id: string;
  kind: string;
  status: string;
}

/**
 * The per-kind processing steps, run while the media is `processing`. They must be
 * idempotent: an attempt repeated after a crash is safe. Throw PermanentJobError for input
 * that no retry can fix.
 */
export type MediaSteps = (media: MediaToProcess, job: Job) => Promise<void>;

const noSteps: MediaSteps = async () => undefined;

/**
 * Runs `process-media` jobs: queued → processing → ready (or error). The per-kind steps
 * plug in here; each is idempotent, so an attempt that is repeated after a crash is safe.
 */
export class MediaWorker {
  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    private readonly log: Logger,
    private readonly maxAttempts: number,
    private readonly steps: MediaSteps = noSteps,
    /** Runs after a media became ready (e.g. enqueues the slow WebM rendition). */
    private readonly afterReady: (media: MediaToProcess) => Promise<void> = async () => undefined,
    private readonly changes?: MediaChanges,
    /** The storage root, kept out of error messages. */
    private readonly layout?: StorageLayout,
    /** Where media files are, to remove the scratch folders a failed media's attempts left. */
    private readonly store?: MediaStore,
  ) {}

  /**
   * Removes the scratch folders of a media that failed for good: no attempt will come to clear
   * them (the next one would), and they can hold gigabytes of half-made renditions. A WebM job
   * queued before a reprocess may still be encoding in its own folder: WebM folders are left to
   * that job unless none is pending.
   */
  private async clearScratch(media: { id: string; tenant_id: string; user_id: string }): Promise<void> {
    if (!this.store) return;
    try {
      const owners: ScratchOwner[] = (await this.queue.hasPending(webmJobKey(media.id))) ? ['media'] : ['media', 'webm'];
      await clearLeftovers(mediaFolderIn(this.store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id }), owners);
    } catch (err) {
      this.log.warn({ err, mediaId: media.id }, 'could not remove the scratch folders of a failed media');
    }
  }

  async handle(job: Job): Promise<void> {
    try {
      await this.process(job);
    } catch (err) {
      const final = err instanceof PermanentJobError || job.attempt >= this.maxAttempts;
      this.log.warn({ err, jobId: job.id, attempt: job.attempt, final }, 'media job failed');
      if (final && job.name === 'process-media') {
        try {
          const code = err instanceof PermanentJobError ? err.code : 'processing-failed';
          const row = await this.db.selectFrom('mediaassets').select(['id', 'tenant_id', 'user_id']).where('id', '=', job.data.media_id).executeTakeFirst();
          const error = { code, reason: publicReason(err, job.attempt, this.layout?.root) };
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

  private async process(job: Job): Promise<void> {
    if (job.name === 'make-webm') return this.followUp(job);
    if (job.name !== 'process-media') return;
    const mediaId = job.data.media_id;
    const media = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'status', 'kind'])
      .where('id', '=', mediaId)
      .executeTakeFirst();
    if (!media) {
      this.log.info({ mediaId, jobId: job.id }, 'media was deleted before processing; nothing to do');
      return;
    }
    if (media.status === 'ready') {
      // A retry after the media became ready: the attempt before failed queueing its follow-ups
      // (a Redis blip), and nothing else would queue them. Their dedupe keys make this safe.
      if (job.attempt > 1) await this.afterReady(media);
      return;
    }
    if (!(await transition(this.db, this.changes, { tenantId: media.tenant_id, mediaId }, ['queued', 'processing'], 'processing'))) {
      this.log.info({ mediaId, jobId: job.id }, 'media is no longer queued or processing; nothing to do');
      return;
    }
    this.log.info({ mediaId, kind: media.kind, attempt: job.attempt }, 'processing media');
    await this.steps({ ...media, status: 'processing' }, job);
    if (await transition(this.db, this.changes, { tenantId: media.tenant_id, mediaId }, 'processing', 'ready')) {
      await this.afterReady({ ...media, status: 'ready' });
    }
  }

  /** A job on a media that is already ready: its steps run without touching the status. */
  private async followUp(job: Job): Promise<void> {
    const media = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'status', 'kind'])
      .where('id', '=', job.data.media_id)
      .executeTakeFirst();
    if (!media) return;
    if (media.status !== 'ready') {
      // This job will not run: what its earlier attempts left behind is removed now (a later
      // WebM job of the media would, but none may come).
      if (job.name === 'make-webm' && this.store) {
        await clearLeftovers(mediaFolderIn(this.store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id }), ['webm']).catch((err) =>
          this.log.warn({ err, mediaId: media.id }, 'could not remove the scratch folders of a WebM job that will not run'),
        );
      }
      return;
    }
    await this.steps(media, job);
  }

  start(concurrency: number): RunningWorker {
    warnIfToolsOutliveWorker(this.log);
    return this.queue.work((job) => this.handle(job), { concurrency });
  }

  /**
   * Fails media left `processing` by a job that no longer exists or runs: its worker died on
   * the last attempt, and the queue gave the job up without our handler seeing it.
   */
  async failAbandoned(olderThanMs: number): Promise<number> {
    const rows = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id'])
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
      await this.clearScratch(r);
      this.log.warn({ mediaId: r.id }, 'media failed: its job was given up while processing');
    }
    return failed;
  }

  /**
   * Enqueues media that stayed `queued` with no job (the enqueue after the record was saved
   * failed, or the queue lost it). Dedupe keys make this harmless for media that has a job.
   */
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
