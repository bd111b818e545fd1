import { Queue, UnrecoverableError, Worker, type ConnectionOptions, type Job as BullJob } from 'bullmq';
import { Redis } from 'ioredis';
import { PermanentJobError } from '../shared/errors.js';
import { TenantFairness } from './bullmq-fairness.js';
import {
  JobDeferred,
  jobTenant,
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

/** Completed jobs are kept for counts and inspection as long as the embedded backend keeps them. */
const KEEP_COMPLETED = { age: 7 * 86_400, count: 10_000 };

/** How long a job whose tenant has no free slot waits before a worker looks at it again. */
const HOLD_BACK_MS = 1000;

/** Longest a producer command (an enqueue, a count) may wait for Redis before it fails. */
const PRODUCER_COMMAND_TIMEOUT_MS = 5000;

/**
 * The Redis/Valkey backend. BullMQ's locks play the part of the embedded backend's leases:
 * a job whose worker dies is found stalled and moved back to wait.
 */
export class BullmqQueue implements JobQueue {
  readonly backend = 'bullmq' as const;
  private readonly queue: Queue;
  /** Workers' connections are duplicated from this one: they wait for Redis as long as it takes. */
  private readonly connection: Redis;
  /** Requests enqueue on this one: it fails at once while Redis is down, so that they can answer. */
  private readonly producer: Redis;
  private readonly workers = new Set<RunningWorker>();
  private readonly fair: TenantFairness;
  private readonly producerFair: TenantFairness;

  constructor(
    redisUrl: string,
    private readonly prefix: string,
    private readonly settings: QueueSettings,
    private readonly queueName = 'media',
  ) {
    this.connection = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    this.connection.on('error', () => undefined);
    this.producer = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: PRODUCER_COMMAND_TIMEOUT_MS });
    this.producer.on('error', () => undefined);
    // No version check: it is one INFO sent once, and on this fail-fast connection a failure of
    // it would fail every later enqueue of the process.
    this.queue = new Queue(this.queueName, { connection: this.producer as unknown as ConnectionOptions, prefix, skipVersionCheck: true });
    this.queue.on('error', () => undefined);
    const keyBase = `${prefix}:${this.queueName}`;
    this.fair = new TenantFairness(this.connection, keyBase, settings.tenantConcurrency, settings.leaseMs);
    this.producerFair = new TenantFairness(this.producer, keyBase, settings.tenantConcurrency, settings.leaseMs);
  }

  /**
   * Fails rather than waits while Redis is down (callers keep the media `queued` for the sweep,
   * or answer 503). The producer connection fails its commands at once; the bound also covers a
   * queue whose first connection never came up.
   */
  async enqueue<N extends JobName>(name: N, data: JobPayloads[N], opts: EnqueueOptions = {}): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error('the queue did not answer in time'), { code: 'ETIMEDOUT' })), PRODUCER_COMMAND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.add(name, data, opts), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async add<N extends JobName>(name: N, data: JobPayloads[N], opts: EnqueueOptions): Promise<string> {
    await this.queue.waitUntilReady();
    // A job that BullMQ would deduplicate takes no turn: the sweep re-enqueues long-queued media
    // every minute, and each turn taken would push its tenant back. (An add racing this check
    // may still take one; the dedupe itself stays BullMQ's.)
    if (opts.dedupeKey) {
      // Only a holder still to run or running short-cuts the add: a key whose job was removed (an
      // eviction, an outage) is then recovered by BullMQ's add itself.
      const holder = await this.pendingHolder(opts.dedupeKey);
      if (holder) return holder;
    }
    await this.producerFair.resetTurnsIfIdle(async () => {
      const c = await this.queue.getJobCounts('waiting', 'prioritized', 'delayed');
      return !c.waiting && !c.prioritized && !c.delayed;
    });
    const job = await this.queue.add(name, data, {
      // The tenant's turn (see TenantFairness): round-robin across tenants.
      priority: await this.producerFair.nextTurn(jobTenant(data)),
      // BullMQ's deduplication (simple mode) holds the key from the add until the job completes
      // or fails, and returns the holder's id meanwhile: at most one waiting/active job per key.
      // (A custom jobId would also match finished jobs: a failed job would swallow the key.)
      ...(opts.dedupeKey ? { deduplication: { id: opts.dedupeKey } } : {}),
      attempts: this.settings.attempts,
      backoff: { type: 'exponential', delay: this.settings.backoffMs },
      delay: opts.delayMs ?? 0,
      removeOnComplete: KEEP_COMPLETED,
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
      async (job, token) => {
        const tenant = jobTenant(job.data);
        if (!(await this.fair.take(tenant, job.id!, job.priority))) await this.fair.holdBack(job, token, Math.min(HOLD_BACK_MS, this.settings.leaseMs));
        const renewal = setInterval(() => void this.fair.renew(tenant, job.id!).catch(() => undefined), Math.max(50, Math.floor(this.settings.leaseMs / 3)));
        try {
          await this.run(handler, job, token);
        } finally {
          clearInterval(renewal);
          // If this fails, the slot lapses with its lease.
          await this.fair.release(tenant, job.id!).catch(() => undefined);
        }
      },
      {
        connection: connection as unknown as ConnectionOptions,
        prefix: this.prefix,
        concurrency: opts.concurrency,
        lockDuration: this.settings.leaseMs,
        stalledInterval: Math.max(1000, Math.floor(this.settings.leaseMs / 2)),
        maxStalledCount: this.settings.attempts,
        // Starts are what count: no retry once `attempts` runs have started, and a job whose
        // worker died on its last attempt fails instead of running again.
        maxStartedAttempts: this.settings.attempts,
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

  private async run(handler: JobHandler, job: BullJob, token: string | undefined): Promise<void> {
    // Every start counts, as in the embedded backend: a run cut short by a dead worker (a
    // stalled job) is an attempt too, so the next run is attempt 2. attemptsMade only
    // counts failures that were caught.
    const attempt = Math.max(job.attemptsStarted, job.attemptsMade + 1);
    try {
      await handler({ id: job.id!, name: job.name as JobName, data: job.data, attempt });
    } catch (err) {
      // Back to delayed, its start taken back: not an attempt.
      if (err instanceof JobDeferred) await this.fair.holdBack(job, token, err.delayMs);
      const error = err instanceof Error ? err : new Error(String(err ?? 'job failed'));
      if (error instanceof PermanentJobError) {
        const final = new UnrecoverableError(error.message);
        final.stack = error.stack;
        throw final;
      }
      throw error;
    }
  }

  async listFailed(limit = 100): Promise<FailedJob[]> {
    const jobs = await this.queue.getFailed(0, limit - 1);
    return jobs
      .filter((j) => j)
      .map((j) => ({
        id: j.id!,
        name: j.name,
        data: j.data,
        // Runs of the handler: a job failed for a dead worker's last attempt counts one more
        // start (the one refused by maxStartedAttempts) that never ran.
        attempts: Math.min(Math.max(j.attemptsStarted ?? 0, j.attemptsMade), this.settings.attempts),
        error: j.failedReason ?? '',
        failedAt: j.finishedOn ? new Date(j.finishedOn).toISOString() : null,
      }));
  }

  async hasPending(dedupeKey: string): Promise<boolean> {
    return (await this.pendingHolder(dedupeKey)) !== undefined;
  }

  /** The id of the job holding a dedupe key, while that job is still to run or running. */
  private async pendingHolder(dedupeKey: string): Promise<string | undefined> {
    const id = await this.queue.getDeduplicationJobId(dedupeKey);
    const job = id ? await this.queue.getJob(id) : undefined;
    if (!job) return undefined;
    return ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'].includes(await job.getState()) ? job.id : undefined;
  }

  async retry(jobId: string): Promise<boolean> {
    const job = await this.queue.getJob(jobId);
    if (!job || !(await job.isFailed())) return false;
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
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

  async runningByTenant(): Promise<Record<string, number>> {
    // Active jobs are at most the workers' slots: few enough to read.
    const running: Record<string, number> = {};
    for (const job of await this.queue.getActive()) {
      if (!job) continue;
      const tenant = jobTenant(job.data);
      running[tenant] = (running[tenant] ?? 0) + 1;
    }
    return running;
  }

  async ping(): Promise<void> {
    await this.queue.waitUntilReady();
    await this.producer.ping();
  }

  /** Deletes every key of this queue (tests use a throw-away prefix). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
    await this.producerFair.obliterate();
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers].map((w) => w.close()));
    await this.queue.close();
    this.connection.disconnect();
    this.producer.disconnect();
  }
}
