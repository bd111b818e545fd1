import type { Job, JobName, JobPayloads } from '../queue/queue.js';
import { PermanentJobError } from '../shared/errors.js';

/** What a running job is given besides its payload. */
export interface JobRun {
  /** Aborted when the job lost its media's lock: it must publish and record nothing more. */
  readonly signal: AbortSignal;
  /** The media the job works on, once it has read it (its folder is removed if the media is deleted meanwhile). */
  media?: { id: string; tenant_id: string; user_id: string };
}

/** How jobs of name N run. */
export interface JobHandlerFor<N extends JobName> {
  /** The media whose files or file_metadata the job writes: the job runs holding that media's lock. */
  lockedMedia(data: JobPayloads[N]): string | undefined;
  run(job: Job<N>, run: JobRun): Promise<void>;
}

/**
 * The job table: a handler for every job name. A name added to JobPayloads does not compile
 * until it has its row here.
 */
export type JobHandlers = { readonly [N in JobName]: JobHandlerFor<N> };

/** What the media jobs do (MediaWorker). */
export interface MediaJobs {
  /** queued → processing → ready: the kind's processing steps. */
  process(job: Job<'process-media'>, run: JobRun): Promise<void>;
  /** A follow-up step of a ready media (WebM…), which leaves its status alone. */
  followUp(job: Job, step: string, run: JobRun): Promise<void>;
}

const ofMedia = (data: { media_id: string }) => data.media_id;

export function mediaJobHandlers(jobs: MediaJobs): JobHandlers {
  return {
    'process-media': { lockedMedia: ofMedia, run: (job, run) => jobs.process(job, run) },
    'follow-up': { lockedMedia: ofMedia, run: (job, run) => jobs.followUp(job, job.data.step, run) },
    'make-webm': { lockedMedia: ofMedia, run: (job, run) => jobs.followUp(job, 'webm', run) },
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
