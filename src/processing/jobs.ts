import type { Job, JobName } from '../queue/queue.js';
import { PermanentJobError } from '../shared/errors.js';

/** Runs one job of name N. */
export type JobHandlerFor<N extends JobName> = (job: Job<N>) => Promise<void>;

/**
 * The job table: a handler for every job name. A name added to JobPayloads does not compile
 * until it has its row here.
 */
export type JobHandlers = { readonly [N in JobName]: JobHandlerFor<N> };

/** What the media jobs do (MediaWorker). */
export interface MediaJobs {
  /** queued → processing → ready: the kind's processing steps. */
  process(job: Job<'process-media'>): Promise<void>;
  /** A follow-up step of a ready media (WebM…), which leaves its status alone. */
  followUp(job: Job, step: string): Promise<void>;
}

export function mediaJobHandlers(jobs: MediaJobs): JobHandlers {
  return {
    'process-media': (job) => jobs.process(job),
    'follow-up': (job) => jobs.followUp(job, job.data.step),
    'make-webm': (job) => jobs.followUp(job, 'webm'),
  };
}

/** Thrown for a job whose name has no handler: a queue fails it at once, with this message. */
export class UnknownJobError extends PermanentJobError {
  constructor(name: string) {
    super(`no handler for jobs named ${JSON.stringify(name)} (queued by a newer version, or by mistake)`, 'unknown-job');
    this.name = 'UnknownJobError';
  }
}

/** The handler of `job`'s name; throws UnknownJobError when the table has none. */
export function handlerOf(handlers: JobHandlers, job: Job): JobHandlerFor<JobName> {
  const handler = Object.hasOwn(handlers, job.name) ? handlers[job.name] : undefined;
  if (!handler) throw new UnknownJobError(String(job.name));
  return handler as JobHandlerFor<JobName>;
}
