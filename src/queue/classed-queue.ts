import {
  JOB_CLASS,
  JOB_CLASSES,
  type EnqueueOptions,
  type FailedJob,
  type JobClass,
  type JobCounts,
  type JobHandler,
  type JobName,
  type JobPayloads,
  type JobQueue,
  type RunningWorker,
  type WorkerOptions,
} from './queue.js';

/** The backend queue of a class: `media` for new media (its name before classes), `media-<class>` for the others. */
export function queueNameOf(jobClass: JobClass): string {
  return jobClass === 'new' ? 'media' : `media-${jobClass}`;
}

/** A ClassedQueue of one backend queue per class, each opened by `open` under its name. */
export function classedQueue(open: (queueName: string) => JobQueue): ClassedQueue {
  return new ClassedQueue({ new: open(queueNameOf('new')), 'follow-up': open(queueNameOf('follow-up')) });
}

/**
 * The job queue the application uses: one backend queue per job class (JOB_CLASS), so each
 * class has its own worker slots, its own waiting line and its own fair turns between tenants
 * (WORKER_TENANT_CONCURRENCY applies per class). On BullMQ these are two BullMQ queues; on the
 * embedded queue two queue names in the one table.
 *
 * Ids of jobs outside the `new` class carry their class (`follow-up:<id>`): BullMQ numbers each
 * queue's jobs from 1, and an id must name one job. Ids of `new` jobs are the backend's own, as
 * before classes existed.
 */
export class ClassedQueue implements JobQueue {
  readonly backend: JobQueue['backend'];

  constructor(private readonly parts: { readonly [C in JobClass]: JobQueue }) {
    this.backend = parts.new.backend;
  }

  private static idOf(jobClass: JobClass, id: string): string {
    return jobClass === 'new' ? id : `${jobClass}:${id}`;
  }

  private static parse(id: string): { jobClass: JobClass; id: string } {
    for (const c of JOB_CLASSES) {
      if (c !== 'new' && id.startsWith(`${c}:`)) return { jobClass: c, id: id.slice(c.length + 1) };
    }
    return { jobClass: 'new', id };
  }

  private get all(): JobQueue[] {
    return JOB_CLASSES.map((c) => this.parts[c]);
  }

  async enqueue<N extends JobName>(name: N, data: JobPayloads[N], opts?: EnqueueOptions): Promise<string> {
    const jobClass = JOB_CLASS[name] ?? 'new';
    return ClassedQueue.idOf(jobClass, await this.parts[jobClass].enqueue(name, data, opts));
  }

  /** Runs the jobs of `opts.jobClass` in `opts.concurrency` slots; without a class, every class gets that many. */
  work(handler: JobHandler, opts: WorkerOptions): RunningWorker {
    const classes = opts.jobClass ? [opts.jobClass] : JOB_CLASSES;
    const workers = classes.map((c) => this.parts[c].work((job) => handler({ ...job, id: ClassedQueue.idOf(c, job.id) }), { concurrency: opts.concurrency }));
    return { close: async () => void (await Promise.all(workers.map((w) => w.close()))) };
  }

  async listFailed(limit = 100): Promise<FailedJob[]> {
    const lists = await Promise.all(
      JOB_CLASSES.map(async (c) => (await this.parts[c].listFailed(limit)).map((f) => ({ ...f, id: ClassedQueue.idOf(c, f.id) }))),
    );
    return lists
      .flat()
      .sort((a, b) => (b.failedAt ?? '').localeCompare(a.failedAt ?? ''))
      .slice(0, limit);
  }

  async retry(jobId: string): Promise<boolean> {
    const { jobClass, id } = ClassedQueue.parse(jobId);
    return this.parts[jobClass].retry(id);
  }

  async counts(): Promise<JobCounts> {
    const total: JobCounts = { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0 };
    for (const c of await Promise.all(this.all.map((q) => q.counts()))) {
      for (const k of Object.keys(total) as Array<keyof JobCounts>) total[k] += c[k];
    }
    return total;
  }

  async runningByTenant(): Promise<Record<string, number>> {
    const total: Record<string, number> = {};
    for (const r of await Promise.all(this.all.map((q) => q.runningByTenant()))) {
      for (const [tenant, n] of Object.entries(r)) total[tenant] = (total[tenant] ?? 0) + n;
    }
    return total;
  }

  async hasPending(dedupeKey: string): Promise<boolean> {
    return (await Promise.all(this.all.map((q) => q.hasPending(dedupeKey)))).some(Boolean);
  }

  async ping(): Promise<void> {
    await Promise.all(this.all.map((q) => q.ping()));
  }

  async pruneCompleted(olderThanMs: number): Promise<number> {
    let pruned = 0;
    for (const q of this.all) pruned += (await q.pruneCompleted?.(olderThanMs)) ?? 0;
    return pruned;
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((q) => q.close()));
  }
}
