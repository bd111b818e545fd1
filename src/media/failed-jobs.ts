import type { Db } from '../db/database.js';
import type { MediaChanges } from '../events/media-changes.js';
import type { FailedJob, JobQueue } from '../queue/queue.js';
import { AppError } from '../shared/errors.js';
import type { Principal } from '../tenancy/principal.js';
import { transition } from './status.js';

export interface FailedJobView {
  id: string;
  name: string;
  media_id: string | null;
  attempts: number;
  error: string;
  failed_at: string | null;
}

const mediaOf = (job: FailedJob | undefined): string | undefined => (job?.data as { media_id?: string } | undefined)?.media_id;

function requireAdmin(p: Principal): void {
  if (!p.isAdmin) throw new AppError('forbidden', 'an admin key is required');
}

/**
 * The queue's failed jobs as a tenant's admin sees them: only jobs of the tenant's media (the
 * queue is shared by every tenant), and a retry that puts the media back in the queue.
 */
export class FailedJobService {
  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    private readonly changes?: MediaChanges,
  ) {}

  async list(p: Principal, limit: number): Promise<FailedJobView[]> {
    requireAdmin(p);
    // The queue cannot filter by tenant: a larger window leaves room for other tenants' jobs.
    const failed = await this.queue.listFailed(limit * 4);
    const mediaIds = failed.map(mediaOf).filter((x): x is string => !!x);
    const mine = new Set(
      mediaIds.length
        ? (await this.db.selectFrom('mediaassets').select('id').where('tenant_id', '=', p.tenantId).where('id', 'in', mediaIds).execute()).map((r) => r.id)
        : [],
    );
    return failed
      .filter((f) => mine.has(mediaOf(f) ?? ''))
      .slice(0, limit)
      .map((f) => ({ id: f.id, name: f.name, media_id: mediaOf(f) ?? null, attempts: f.attempts, error: f.error, failed_at: f.failedAt }));
  }

  /** Runs a failed job of the tenant's media again; a media whose processing failed goes back to `queued`. */
  async retry(p: Principal, jobId: string): Promise<void> {
    requireAdmin(p);
    const job = (await this.queue.listFailed(1000)).find((f) => f.id === jobId);
    const mediaId = mediaOf(job);
    const owned = mediaId
      ? await this.db.selectFrom('mediaassets').select('id').where('tenant_id', '=', p.tenantId).where('id', '=', mediaId).executeTakeFirst()
      : undefined;
    if (!job || !mediaId || !owned) throw new AppError('not-found', 'failed job not found');
    // The media goes back to queued before its job: a retried job may run at once, and must find
    // it queued (the state machine has no error → processing). Should the retry then fail, the
    // media waits queued for the worker's sweep of stale queued media to give it a job.
    if (job.name === 'process-media') await transition(this.db, this.changes, { tenantId: p.tenantId, mediaId }, 'error', 'queued');
    if (!(await this.queue.retry(job.id))) throw new AppError('conflict', 'the job is no longer failed');
  }
}
