import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { sql, type UpdateResult } from 'kysely';
import type { DatabaseHandle, Db } from '../db/database.js';
import { fromJson, nowIso, toJson } from '../db/schema.js';
import { writeTransaction } from '../db/write-transaction.js';
import { newId } from '../shared/ids.js';
import { PermanentJobError } from '../shared/errors.js';
import {
  backoffDelay,
  JobDeferred,
  type EnqueueOptions,
  type FailedJob,
  type Job,
  type JobCounts,
  type JobHandler,
  type JobName,
  type JobPayloads,
  jobTenant,
  type JobQueue,
  type QueueSettings,
  type RunningWorker,
  type WorkerOptions,
} from './queue.js';

const POLL_MS = 500;

/**
 * The embedded backend: jobs are rows in `queue_jobs`. A worker claims a row by a
 * conditional update that sets a lease; it renews the lease while the job runs. A row whose
 * lease lapsed (its worker died) is claimable again, which makes delivery at-least-once.
 */
export class EmbeddedQueue implements JobQueue {
  readonly backend = 'embedded' as const;
  private readonly wake = new EventEmitter();
  private readonly workers = new Set<RunningWorker>();
  private readonly db: Db;

  constructor(
    private readonly database: Pick<DatabaseHandle, 'db' | 'dialect'>,
    private readonly settings: QueueSettings,
    private readonly queueName = 'media',
  ) {
    this.db = database.db;
    this.wake.setMaxListeners(0);
  }

  async enqueue<N extends JobName>(name: N, data: JobPayloads[N], opts: EnqueueOptions = {}): Promise<string> {
    if (opts.dedupeKey) {
      const existing = await this.findPending(opts.dedupeKey);
      if (existing) return existing;
    }
    const now = nowIso();
    const id = newId();
    try {
      await this.db
        .insertInto('queue_jobs')
        .values({
          id,
          queue: this.queueName,
          name,
          data: toJson(data),
          dedupe_key: opts.dedupeKey ?? null,
          tenant_id: jobTenant(data),
          state: 'waiting',
          attempts: 0,
          max_attempts: this.settings.attempts,
          run_at: Date.now() + (opts.delayMs ?? 0),
          lease_owner: null,
          lease_until: null,
          last_error: null,
          created_at: now,
          updated_at: now,
          finished_at: null,
        })
        .execute();
    } catch (err) {
      // Lost a race with another enqueue of the same key: the unique index kept one.
      if (opts.dedupeKey) {
        const existing = await this.findPending(opts.dedupeKey);
        if (existing) return existing;
      }
      throw err;
    }
    this.wake.emit('job');
    return id;
  }

  async hasPending(dedupeKey: string): Promise<boolean> {
    return (await this.findPending(dedupeKey)) !== undefined;
  }

  private async findPending(dedupeKey: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('queue_jobs')
      .select('id')
      .where('queue', '=', this.queueName)
      .where('dedupe_key', '=', dedupeKey)
      .where('state', 'in', ['waiting', 'active'])
      .executeTakeFirst();
    return row?.id;
  }

  /**
   * Claims the next runnable job for `owner`, or returns undefined. Among the tenants that have
   * a runnable job and run fewer than `tenantConcurrency` jobs (jobs that name no tenant are not
   * limited: only older versions queued such jobs), the tenant running the fewest
   * goes first, then the one whose last job started longest ago, then its oldest job: with one
   * worker that is round-robin across tenants, not first-come first-served, so a tenant that
   * queued many jobs delays another's by at most one of its jobs.
   *
   * The choice and the claim are one transaction that holds the queue's write right (SQLite's
   * write lock; on PostgreSQL a transaction-scoped advisory lock of this queue), so claims of
   * several processes cannot both pass a tenant's limit.
   */
  async claim(owner: string): Promise<Job | undefined> {
    // Most polls find nothing: they take no lock.
    if (!(await this.hasClaimable())) return undefined;
    return writeTransaction(this.database, async (trx) => {
      if (this.database.dialect === 'postgres') {
        await sql`select pg_advisory_xact_lock(hashtext(current_schema() || ${`:qasar-queue:${this.queueName}`}))`.execute(trx);
      }
      const now = Date.now();
      await this.failDeadLastAttempts(trx, now);
      const candidate = await sql<{ id: string; tenant: string }>`
        ${this.runningByTenantCte(now)}
        select j.id as id, coalesce(j.tenant_id, '') as tenant
        from queue_jobs j
        left join running r on r.tenant = coalesce(j.tenant_id, '')
        left join queue_tenant_turns t on t.queue = j.queue and t.tenant_id = coalesce(j.tenant_id, '')
        where ${this.claimable(now)}
        order by coalesce(r.n, 0), coalesce(t.turn, 0), j.run_at, j.id
        limit 1`.execute(trx);
      const pick = candidate.rows[0];
      if (!pick) return undefined;
      const claimed = await trx
        .updateTable('queue_jobs')
        .set((eb) => ({
          state: 'active',
          lease_owner: owner,
          lease_until: now + this.settings.leaseMs,
          attempts: eb('attempts', '+', 1),
          updated_at: nowIso(),
        }))
        .where('id', '=', pick.id)
        .returning(['id', 'name', 'data', 'attempts'])
        .executeTakeFirstOrThrow();
      await sql`
        insert into queue_tenant_turns (queue, tenant_id, turn)
        values (${this.queueName}, ${pick.tenant}, (select coalesce(max(turn), 0) + 1 from queue_tenant_turns where queue = ${this.queueName}))
        on conflict (queue, tenant_id) do update set turn = excluded.turn`.execute(trx);
      return {
        id: claimed.id,
        name: claimed.name as JobName,
        data: fromJson(claimed.data, {}) as Job['data'],
        attempt: Number(claimed.attempts),
      };
    });
  }

  /**
   * Whether a claim now has work: a job that is due and whose tenant is under its limit, or a
   * dead last attempt to fail. Jobs held back by the limit do not count, or idle pollers would
   * take the write lock on every poll while a busy tenant's jobs wait.
   */
  async hasClaimable(now = Date.now()): Promise<boolean> {
    const row = await sql<{ one: number }>`
      ${this.runningByTenantCte(now)}
      select 1 as one
      from queue_jobs j
      left join running r on r.tenant = coalesce(j.tenant_id, '')
      where ${this.claimable(now)}
        or (j.queue = ${this.queueName} and j.state = 'active' and j.lease_until < ${now} and j.attempts >= j.max_attempts)
      limit 1`.execute(this.db);
    return row.rows.length > 0;
  }

  /** `running`: the jobs each tenant runs now (held leases); jobs that name no tenant are tenant ''. */
  private runningByTenantCte(now: number) {
    return sql`with running as (
      select coalesce(tenant_id, '') as tenant, count(*) as n from queue_jobs
      where queue = ${this.queueName} and state = 'active' and lease_until >= ${now}
      group by coalesce(tenant_id, '')
    )`;
  }

  /** The jobs `j` (joined to `running` as `r`) a worker may claim now. */
  private claimable(now: number) {
    const limit = this.settings.tenantConcurrency;
    return sql`j.queue = ${this.queueName}
      and ((j.state = 'waiting' and j.run_at <= ${now}) or (j.state = 'active' and j.lease_until < ${now}))
      and (${limit} = 0 or coalesce(j.tenant_id, '') = '' or coalesce(r.n, 0) < ${limit})`;
  }

  /**
   * Fails the jobs whose worker died on their last attempt (each start counts, as BullMQ's
   * maxStartedAttempts does), rather than run them for ever if they kill workers.
   */
  private async failDeadLastAttempts(trx: Db, now: number): Promise<void> {
    const dead = await trx
      .selectFrom('queue_jobs')
      .select(['id', 'attempts', 'max_attempts'])
      .where('queue', '=', this.queueName)
      .where('state', '=', 'active')
      .where('lease_until', '<', now)
      .where((eb) => eb('attempts', '>=', eb.ref('max_attempts')))
      .execute();
    for (const job of dead) {
      const at = nowIso();
      await trx
        .updateTable('queue_jobs')
        .set({
          state: 'failed',
          lease_owner: null,
          lease_until: null,
          last_error: `the worker running attempt ${Number(job.attempts)} of ${Number(job.max_attempts)} stopped (its lease expired)`,
          updated_at: at,
          finished_at: at,
        })
        .where('id', '=', job.id)
        .execute();
    }
  }

  /**
   * Milliseconds until the next delayed job is due (at most `cap`). Jobs already due but held
   * back by their tenant's limit wait for a settle (this process) or the next poll (others).
   */
  private async nextDueIn(cap: number): Promise<number> {
    const now = Date.now();
    const row = await this.db
      .selectFrom('queue_jobs')
      .select((eb) => eb.fn.min('run_at').as('next'))
      .where('queue', '=', this.queueName)
      .where('state', '=', 'waiting')
      .where('run_at', '>', now)
      .executeTakeFirst();
    if (row?.next === null || row?.next === undefined) return cap;
    return Math.min(cap, Math.max(0, Number(row.next) - now));
  }

  private async renew(jobId: string, owner: string): Promise<void> {
    await this.db
      .updateTable('queue_jobs')
      .set({ lease_until: Date.now() + this.settings.leaseMs })
      .where('id', '=', jobId)
      .where('lease_owner', '=', owner)
      .where('state', '=', 'active')
      .execute();
  }

  private async settle(job: Job, owner: string, err: unknown): Promise<void> {
    const now = nowIso();
    const base = this.db.updateTable('queue_jobs').where('id', '=', job.id).where('lease_owner', '=', owner).where('state', '=', 'active');
    if (err === undefined) {
      await base.set({ state: 'completed', lease_owner: null, lease_until: null, updated_at: now, finished_at: now }).execute();
      return;
    }
    if (err instanceof JobDeferred) {
      // Not an attempt: the claim's count is taken back.
      await base
        .set((eb) => ({
          state: 'waiting',
          lease_owner: null,
          lease_until: null,
          attempts: eb('attempts', '-', 1),
          run_at: Date.now() + err.delayMs,
          updated_at: now,
        }))
        .execute();
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    const row = await this.db.selectFrom('queue_jobs').select(['max_attempts']).where('id', '=', job.id).executeTakeFirst();
    const permanent = err instanceof PermanentJobError;
    if (permanent || !row || job.attempt >= Number(row.max_attempts)) {
      await base.set({ state: 'failed', lease_owner: null, lease_until: null, last_error: message, updated_at: now, finished_at: now }).execute();
    } else {
      await base
        .set({
          state: 'waiting',
          lease_owner: null,
          lease_until: null,
          last_error: message,
          run_at: Date.now() + backoffDelay(this.settings.backoffMs, job.attempt),
          updated_at: now,
        })
        .execute();
    }
  }

  work(handler: JobHandler, opts: WorkerOptions): RunningWorker {
    const owner = `${hostname()}:${process.pid}:${newId()}`;
    const concurrency = Math.max(1, opts.concurrency);
    let stopping = false;
    const running = new Set<Promise<void>>();
    let timer: NodeJS.Timeout | undefined;
    let polling: Promise<void> | undefined;
    let pollAgain = false;

    let dueAt = Infinity;

    /** Polls in `ms`, unless a poll is already due sooner. */
    const schedule = (ms: number) => {
      if (stopping) return;
      const at = Date.now() + ms;
      if (timer && at >= dueAt) return;
      if (timer) clearTimeout(timer);
      dueAt = at;
      timer = setTimeout(() => {
        timer = undefined;
        dueAt = Infinity;
        void poll();
      }, ms);
    };

    const runOne = async (job: Job) => {
      const heartbeat = setInterval(
        () => {
          this.renew(job.id, owner).catch(() => undefined);
        },
        Math.max(50, Math.floor(this.settings.leaseMs / 3)),
      );
      let failure: unknown;
      try {
        await handler(job);
      } catch (err) {
        failure = err ?? new Error('job failed');
      } finally {
        clearInterval(heartbeat);
      }
      try {
        await this.settle(job, owner, failure);
      } catch {
        // The database is unreachable: the lease will lapse and the job run again.
      }
      // A tenant slot is free: jobs held back by the tenant limit may run in other workers too.
      this.wake.emit('job');
    };

    const start = (job: Job) => {
      const p: Promise<void> = runOne(job).finally(() => {
        running.delete(p);
        schedule(0);
      });
      running.add(p);
    };

    const poll = (): Promise<void> => {
      if (stopping) return Promise.resolve();
      if (polling) {
        // A wake-up while a poll is under way: look once more when it ends.
        pollAgain = true;
        return polling;
      }
      polling = (async () => {
        // Yield first: without an await before `finally`, a poll with nothing to do would
        // clear `polling` before the assignment above stores its promise, and every later
        // wake-up would wait on that stale promise for ever.
        await Promise.resolve();
        let next = POLL_MS;
        try {
          do {
            pollAgain = false;
            while (!stopping && running.size < concurrency) {
              // A job claimed here is started even if close() came meanwhile: close() waits for it.
              const job = await this.claim(owner);
              if (!job) break;
              start(job);
            }
          } while (pollAgain && !stopping && running.size < concurrency);
          // Wake up when the next delayed job or retry is due, not a whole poll interval later.
          if (!stopping && running.size < concurrency) next = await this.nextDueIn(POLL_MS);
        } catch {
          // Database hiccup: try again on the next tick.
        } finally {
          polling = undefined;
        }
        schedule(pollAgain ? 0 : next);
      })();
      return polling;
    };

    const onWake = () => schedule(0);
    this.wake.on('job', onWake);
    schedule(0);

    const worker: RunningWorker = {
      close: async () => {
        stopping = true;
        this.wake.off('job', onWake);
        if (timer) clearTimeout(timer);
        await polling;
        while (running.size) await Promise.allSettled([...running]);
        this.workers.delete(worker);
      },
    };
    this.workers.add(worker);
    return worker;
  }

  async listFailed(limit = 100): Promise<FailedJob[]> {
    const rows = await this.db
      .selectFrom('queue_jobs')
      .select(['id', 'name', 'data', 'attempts', 'last_error', 'finished_at'])
      .where('queue', '=', this.queueName)
      .where('state', '=', 'failed')
      .orderBy('finished_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      data: fromJson(r.data, {}),
      attempts: Number(r.attempts),
      error: r.last_error ?? '',
      failedAt: r.finished_at,
    }));
  }

  async retry(jobId: string): Promise<boolean> {
    let res: UpdateResult;
    try {
      res = await this.db
        .updateTable('queue_jobs')
        .set({ state: 'waiting', attempts: 0, run_at: Date.now(), lease_owner: null, lease_until: null, finished_at: null, updated_at: nowIso() })
        .where('id', '=', jobId)
        .where('queue', '=', this.queueName)
        .where('state', '=', 'failed')
        .executeTakeFirst();
    } catch (err) {
      // The job's dedupe key belongs to a newer waiting or active job: that one does the work.
      const row = await this.db.selectFrom('queue_jobs').select('dedupe_key').where('id', '=', jobId).executeTakeFirst();
      if (row?.dedupe_key && (await this.findPending(row.dedupe_key))) return false;
      throw err;
    }
    const ok = Number(res.numUpdatedRows) > 0;
    if (ok) this.wake.emit('job');
    return ok;
  }

  async counts(): Promise<JobCounts> {
    const rows = await this.db
      .selectFrom('queue_jobs')
      .select(['state', (eb) => eb.fn.countAll().as('n')])
      .where('queue', '=', this.queueName)
      .groupBy('state')
      .execute();
    const counts: JobCounts = { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0 };
    const now = Date.now();
    for (const r of rows) counts[r.state as keyof JobCounts] = Number(r.n);
    const delayed = await this.db
      .selectFrom('queue_jobs')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('queue', '=', this.queueName)
      .where('state', '=', 'waiting')
      .where('run_at', '>', now)
      .executeTakeFirstOrThrow();
    counts.delayed = Number(delayed.n);
    counts.waiting -= counts.delayed;
    return counts;
  }

  async runningByTenant(): Promise<Record<string, number>> {
    // A literal '' (not a parameter), so that PostgreSQL sees the same expression in both places.
    const tenant = sql<string>`coalesce(tenant_id, '')`;
    const rows = await this.db
      .selectFrom('queue_jobs')
      .select([tenant.as('tenant'), (eb) => eb.fn.countAll().as('n')])
      .where('queue', '=', this.queueName)
      .where('state', '=', 'active')
      .where('lease_until', '>=', Date.now())
      .groupBy(tenant)
      .execute();
    return Object.fromEntries(rows.map((r) => [String(r.tenant), Number(r.n)]));
  }

  /** Removes finished jobs older than `olderThanMs` (failed ones stay until retried or pruned by an operator). */
  async pruneCompleted(olderThanMs: number): Promise<number> {
    const res = await this.db
      .deleteFrom('queue_jobs')
      .where('queue', '=', this.queueName)
      .where('state', '=', 'completed')
      .where('finished_at', '<', new Date(Date.now() - olderThanMs).toISOString())
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  async ping(): Promise<void> {
    await this.db.selectFrom('queue_jobs').select('id').limit(1).execute();
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers].map((w) => w.close()));
  }
}
