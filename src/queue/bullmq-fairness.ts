import { DelayedError, PRIORITY_LIMIT, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';

/**
 * Fair scheduling across tenants on BullMQ, which has no groups in its open-source edition.
 *
 * - Turns: a job is added with a BullMQ priority that is its tenant's turn: one more than the
 *   tenant's last job, but never before the turn of the job started last. A tenant with 20 jobs
 *   queued holds turns 1…20; another that comes while turn 1 runs gets turn 1 and runs next.
 *   That is round-robin across tenants, kept by BullMQ's own priority order (FIFO within a turn).
 * - Slots: a tenant's running jobs are a sorted set of job id → lease end in Redis. A worker
 *   takes a slot (Lua, atomic) before it runs a job, renews it with the job, and gives it back
 *   at the end; the slot of a worker that died lapses with its lease. A job whose tenant has no
 *   free slot is moved back to delayed for a moment, its start not counted.
 */
export class TenantFairness {
  constructor(
    private readonly redis: Redis,
    private readonly keyBase: string,
    private readonly tenantConcurrency: number,
    private readonly leaseMs: number,
  ) {}

  private get turnKey(): string {
    return `${this.keyBase}:fair:turn`;
  }
  private get lastTurnsKey(): string {
    return `${this.keyBase}:fair:last-turns`;
  }
  private slotsKey(tenant: string): string {
    return `${this.keyBase}:fair:slots:${tenant}`;
  }

  /** Whether jobs of this tenant take slots ('' is the jobs of older versions, which name none). */
  limits(tenant: string): boolean {
    return this.tenantConcurrency > 0 && tenant !== '';
  }

  /** The BullMQ priority of the tenant's next job. */
  async nextTurn(tenant: string): Promise<number> {
    const turn = await this.redis.eval(NEXT_TURN, 2, this.turnKey, this.lastTurnsKey, tenant, PRIORITY_LIMIT);
    return Number(turn);
  }

  /**
   * Takes a slot of the job's tenant for the job (true), or finds none free (false). The job's
   * turn becomes the current turn once it starts.
   */
  async take(tenant: string, jobId: string, turn: number): Promise<boolean> {
    const now = Date.now();
    const limit = this.limits(tenant) ? this.tenantConcurrency : 0;
    const ok = await this.redis.eval(TAKE_SLOT, 2, this.slotsKey(tenant), this.turnKey, jobId, now, now + this.leaseMs, limit, turn, 2 * this.leaseMs);
    return Number(ok) === 1;
  }

  async renew(tenant: string, jobId: string): Promise<void> {
    if (!this.limits(tenant)) return;
    const key = this.slotsKey(tenant);
    await this.redis
      .multi()
      .zadd(key, 'XX', Date.now() + this.leaseMs, jobId)
      .pexpire(key, 2 * this.leaseMs)
      .exec();
  }

  async release(tenant: string, jobId: string): Promise<void> {
    if (!this.limits(tenant)) return;
    await this.redis.zrem(this.slotsKey(tenant), jobId);
  }

  /**
   * Moves a job that found no free slot (or that its handler deferred) back to delayed for `ms`,
   * and throws the error that tells BullMQ's worker it was moved. BullMQ counted the start (`attemptsStarted`, which
   * `maxStartedAttempts` checks); the job never ran, so the same atomic move takes it back.
   * Job.moveToDelayed() does not take the fields to update, hence the backend call.
   */
  async holdBack(job: BullJob, token: string | undefined, ms: number): Promise<never> {
    const backend = (job as unknown as { backend: HoldBackend }).backend;
    await backend.moveToDelayed(job.id!, Date.now(), ms, token, {
      skipAttempt: true,
      fieldsToUpdate: { ats: Math.max(0, job.attemptsStarted - 1) },
    });
    throw new DelayedError();
  }

  /** Starts the turns afresh when nothing waits, so that they never reach BullMQ's priority limit. */
  async resetTurnsIfIdle(isIdle: () => Promise<boolean>): Promise<void> {
    const current = Number((await this.redis.get(this.turnKey)) ?? 0);
    if (current < PRIORITY_LIMIT / 2) return;
    if (await isIdle()) await this.redis.del(this.turnKey, this.lastTurnsKey);
  }

  /** Deletes every key of the scheduler (tests use a throw-away prefix). */
  async obliterate(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.keyBase}:fair:*`, 'COUNT', 500);
      if (keys.length) await this.redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
}

interface HoldBackend {
  moveToDelayed(
    jobId: string,
    timestamp: number,
    delay: number,
    token?: string,
    opts?: { skipAttempt?: boolean; fieldsToUpdate?: Record<string, unknown> },
  ): Promise<unknown>;
}

/** KEYS: current turn, tenant → last turn. ARGV: tenant, the highest priority BullMQ allows. */
const NEXT_TURN = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local turn = math.max(last + 1, current, 1)
local top = tonumber(ARGV[2])
if turn > top then turn = top end
redis.call('HSET', KEYS[2], ARGV[1], turn)
return turn`;

/**
 * KEYS: the tenant's slots, current turn. ARGV: job id, now, lease end, limit (0: none), the
 * job's turn, how long the slots key lives without a renewal.
 */
const TAKE_SLOT = `
local limit = tonumber(ARGV[4])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
  if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
  end
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
local turn = tonumber(ARGV[5])
if turn > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], turn)
end
return 1`;
