/**
 * What every payload may carry: the tenant whose work the job is. The queue runs tenants' jobs
 * fairly by it. Jobs queued before it existed have none; they share one group.
 */
export interface TenantJob {
  tenant_id?: string;
}

/** The jobs Qasar runs, and their payloads (each has a handler in src/processing/jobs.ts). */
export interface JobPayloads {
  /** A media's processing: queued → processing → ready. */
  'process-media': TenantJob & { media_id: string };
  /** One follow-up step (`step`: WebM, …) of a media that is already ready. */
  'follow-up': TenantJob & { media_id: string; step: string };
  /** The WebM follow-up as versions before named follow-ups queued it. */
  'make-webm': TenantJob & { media_id: string };
}
export type JobName = keyof JobPayloads;

/**
 * Which worker slots run a job. New media is processed in slots of its own, so a slow follow-up
 * (a WebM encode) never holds up a fresh upload; follow-ups run in theirs
 * (WORKER_CONCURRENCY and WORKER_FOLLOWUP_CONCURRENCY per worker process).
 */
export type JobClass = 'new' | 'follow-up';
export const JOB_CLASSES: readonly JobClass[] = ['new', 'follow-up'];
export const JOB_CLASS: { readonly [N in JobName]: JobClass } = {
  'process-media': 'new',
  'follow-up': 'follow-up',
  'make-webm': 'follow-up',
};

/** The dedupe key of a media's processing job: at most one waiting or running per media. */
export function processJobKey(mediaId: string): string {
  return `media:${mediaId}`;
}

/** The dedupe key of a media's follow-up job of a step: at most one waiting or running per media and step. */
export function followUpJobKey(step: string, mediaId: string): string {
  return `${step}:${mediaId}`;
}

/** The WebM follow-up's key (the one `make-webm` jobs were queued with). */
export function webmJobKey(mediaId: string): string {
  return followUpJobKey('webm', mediaId);
}

export interface Job<N extends JobName = JobName> {
  id: string;
  name: N;
  data: JobPayloads[N];
  /** 1 on the first run, 2 on the first retry, … */
  attempt: number;
}

export type JobHandler = (job: Job) => Promise<void>;

/**
 * Thrown by a handler for a job that cannot run yet (another job holds its media): the queue
 * puts it back, due again in `delayMs`, without counting the attempt.
 */
export class JobDeferred extends Error {
  constructor(
    readonly delayMs: number,
    message: string,
  ) {
    super(message);
    this.name = 'JobDeferred';
  }
}

export interface EnqueueOptions {
  /** At most one waiting or running job per key: enqueueing again returns the existing job. */
  dedupeKey?: string;
  delayMs?: number;
}

export interface FailedJob {
  id: string;
  name: string;
  data: unknown;
  attempts: number;
  error: string;
  failedAt: string | null;
}

export interface WorkerOptions {
  concurrency: number;
  /** The class of jobs this worker runs (a ClassedQueue; a single backend queue runs whatever it holds). */
  jobClass?: JobClass;
}

export interface RunningWorker {
  /** Stops taking jobs and waits for running ones to settle. */
  close(): Promise<void>;
}

export type JobCounts = Record<'waiting' | 'active' | 'completed' | 'failed' | 'delayed', number>;

/**
 * One interface, two backends: BullMQ on Redis/Valkey, and an embedded lease-based table in
 * the database. Both are at-least-once: a job whose worker dies is taken up again once its
 * lease lapses, failed attempts retry with exponential backoff, and nothing queued is lost
 * across a restart.
 */
export interface JobQueue {
  readonly backend: 'embedded' | 'bullmq';
  enqueue<N extends JobName>(name: N, data: JobPayloads[N], opts?: EnqueueOptions): Promise<string>;
  work(handler: JobHandler, opts: WorkerOptions): RunningWorker;
  listFailed(limit?: number): Promise<FailedJob[]>;
  retry(jobId: string): Promise<boolean>;
  counts(): Promise<JobCounts>;
  /** Jobs running now, per tenant ('' for jobs that name none): what fair scheduling shares out. */
  runningByTenant(): Promise<Record<string, number>>;
  /** Whether a job with this dedupe key is waiting, delayed or running. */
  hasPending(dedupeKey: string): Promise<boolean>;
  ping(): Promise<void>;
  /** Removes finished jobs older than this, where the backend keeps them itself (the embedded queue). */
  pruneCompleted?(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}

export interface QueueSettings {
  attempts: number;
  backoffMs: number;
  leaseMs: number;
  /** Most jobs of one tenant active at once in the whole queue; 0 for no limit. */
  tenantConcurrency: number;
}

/** The group a job is scheduled in: its tenant, or '' for a job that names none. */
export function jobTenant(data: unknown): string {
  const t = (data as TenantJob | null)?.tenant_id;
  return typeof t === 'string' ? t : '';
}

export function backoffDelay(backoffMs: number, attempt: number): number {
  return backoffMs * 2 ** Math.max(0, attempt - 1);
}
