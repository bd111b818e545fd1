import { Queue, UnrecoverableError, Worker, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import {
  PermanentJobError,
  type EnqueueOptions,
  type FailedJob,
  type JobCounts,
  type JobHandler,
  type JobName,
  type JobPayloads,
  type JobQueue,
  type QueueSettings,
  type RunningWorker,
  type WorkerOptions,
} from './queue.js';

/** BullMQ custom job ids may not contain ':' (it separates Redis key parts). */
function jobIdFor(dedupeKey: string): string {
  return dedupeKey.replace(/:/g, '.');
}

/**
 * The Redis/Valkey backend. BullMQ's locks play the part of the embedded backend's leases:
 * a job whose worker dies is found stalled and moved back to wait.
 */
export class BullmqQueue implements JobQueue {
  readonly backend = 'bullmq' as const;
  private readonly queue: Queue;
  private readonly connection: Redis;
  private readonly workers = new Set<RunningWorker>();

  constructor(
    redisUrl: string,
    private readonly prefix: string,
    private readonly settings: QueueSettings,
    private readonly queueName = 'media',
  ) {
    this.connection = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    this.connection.on('error', () => undefined);
    this.queue = new Queue(this.queueName, { connection: this.connection as unknown as ConnectionOptions, prefix });
    this.queue.on('error', () => undefined);
  }

  async enqueue<N extends JobName>(name: N, data: JobPayloads[N], opts: EnqueueOptions = {}): Promise<string> {
    const job = await this.queue.add(name, data, {
      ...(opts.dedupeKey ? { jobId: jobIdFor(opts.dedupeKey) } : {}),
      attempts: this.settings.attempts,
      backoff: { type: 'exponential', delay: this.settings.backoffMs },
      delay: opts.delayMs ?? 0,
      // Completed jobs are removed so that the same dedupe key can be enqueued again later.
      removeOnComplete: true,
      removeOnFail: false,
    });
    return job.id!;
  }

  work(handler: JobHandler, opts: WorkerOptions): RunningWorker {
    // A connection passed in is the caller's to close: BullMQ leaves it open.
    const connection = this.connection.duplicate();
    connection.on('error', () => undefined);
    const worker = new Worker(
      this.queueName,
      async (job) => {
        try {
          await handler({ id: job.id!, name: job.name as JobName, data: job.data, attempt: job.attemptsMade + 1 });
        } catch (err) {
          if (err instanceof PermanentJobError) throw new UnrecoverableError(err.message);
          throw err;
        }
      },
      {
        connection: connection as unknown as ConnectionOptions,
        prefix: this.prefix,
        concurrency: opts.concurrency,
        lockDuration: this.settings.leaseMs,
        stalledInterval: Math.max(1000, Math.floor(this.settings.leaseMs / 2)),
        maxStalledCount: this.settings.attempts,
      },
    );
    worker.on('error', () => undefined);
    const running: RunningWorker = {
      close: async () => {
        await worker.close();
        connection.disconnect();
        this.workers.delete(running);
      },
    };
    this.workers.add(running);
    return running;
  }

  async listFailed(limit = 100): Promise<FailedJob[]> {
    const jobs = await this.queue.getFailed(0, limit - 1);
    return jobs
      .filter((j) => j)
      .map((j) => ({
        id: j.id!,
        name: j.name,
        data: j.data,
        attempts: j.attemptsMade,
        error: j.failedReason ?? '',
        failedAt: j.finishedOn ? new Date(j.finishedOn).toISOString() : null,
      }));
  }

  async retry(jobId: string): Promise<boolean> {
    const job = await this.queue.getJob(jobId);
    if (!job || !(await job.isFailed())) return false;
    await job.retry('failed', { resetAttemptsMade: true });
    return true;
  }

  async counts(): Promise<JobCounts> {
    const c = await this.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
      active: c.active ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
      delayed: c.delayed ?? 0,
    };
  }

  async ping(): Promise<void> {
    await this.connection.ping();
  }

  /** Deletes every key of this queue (tests use a throw-away prefix). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers].map((w) => w.close()));
    await this.queue.close();
    this.connection.disconnect();
  }
}
