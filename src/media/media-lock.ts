import type pg from 'pg';
import type { Settings } from '../config/settings.js';
import type { DatabaseHandle, Db } from '../db/database.js';
import { nowIso } from '../db/schema.js';
import { newId } from '../shared/ids.js';
import { formatIdentity, isCertainlyGone, parseIdentity } from '../shared/process-identity.js';

/** A held media lock. */
export interface MediaLock {
  /**
   * Aborted when the lock was lost while held (its PostgreSQL connection dropped, or its lease
   * could not be renewed in time): another job may hold the media now, so the holder must
   * publish and record nothing more.
   */
  readonly signal: AbortSignal;
  /** Lets go of the lock (at once; never throws). */
  release(): Promise<void>;
}

/**
 * One lock per media, across every process that shares the database: held by every job that
 * writes a media's files or file_metadata (processing, follow-ups, their retries) and by a
 * delete, so that no two of them work on one media at once.
 */
export interface MediaLocks {
  /** Takes the media's lock, waiting up to `waitMs` for its holder to let go; undefined if it did not. */
  acquire(mediaId: string, waitMs: number): Promise<MediaLock | undefined>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Tries to delete a released lock's row before its lease is left to lapse. */
const RELEASE_ATTEMPTS = 3;

/** How often a waiting acquire looks again at a lease row. */
const LEASE_POLL_MS = 100;

/**
 * SQLite: a row per held lock, with an owner and a lease (several processes share the file). The
 * holder renews the lease every third of it; a holder that died stops renewing, and its lock is
 * free once the lease is past (JOB_LEASE, as long as the queue takes to give its job to another
 * worker). Taking is one conditional upsert, so two takers cannot both win.
 */
export class LeaseMediaLocks implements MediaLocks {
  constructor(
    private readonly db: Db,
    private readonly leaseMs: number,
  ) {}

  async acquire(mediaId: string, waitMs: number): Promise<MediaLock | undefined> {
    // The process's identity, so a lock whose holder certainly died is taken over at once (as
    // chunk locks and completion leases are), and an id of this acquisition.
    const owner = `${formatIdentity()}#${newId()}`;
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (await this.take(mediaId, owner)) return this.held(mediaId, owner);
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await sleep(Math.min(LEASE_POLL_MS, left));
    }
  }

  private async take(mediaId: string, owner: string): Promise<boolean> {
    const now = Date.now();
    const lease = { owner, lease_until: now + this.leaseMs, acquired_at: nowIso() };
    try {
      const row = await this.db
        .insertInto('media_locks')
        .values({ media_id: mediaId, ...lease })
        .onConflict((oc) => oc.column('media_id').doUpdateSet(lease).where('media_locks.lease_until', '<', now))
        .returning('owner')
        .executeTakeFirst();
      if (row?.owner === owner) return true;
      return await this.takeFromDead(mediaId, lease);
    } catch (err) {
      // Another process held SQLite's write lock past busy_timeout: not taken, this time.
      if (/^SQLITE_BUSY/.test(String((err as { code?: unknown }).code ?? ''))) return false;
      throw err;
    }
  }

  /** Takes the lock from a holder on this machine whose process is certainly gone, without waiting for its lease. */
  private async takeFromDead(mediaId: string, lease: { owner: string; lease_until: number; acquired_at: string }): Promise<boolean> {
    const current = await this.db.selectFrom('media_locks').select('owner').where('media_id', '=', mediaId).executeTakeFirst();
    const holder = current && parseIdentity(current.owner.split('#')[0] ?? '');
    if (!current || !holder || !isCertainlyGone(holder)) return false;
    const res = await this.db.updateTable('media_locks').set(lease).where('media_id', '=', mediaId).where('owner', '=', current.owner).executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  private held(mediaId: string, owner: string): MediaLock {
    const lost = new AbortController();
    let leaseEnd = Date.now() + this.leaseMs;
    const renew = async () => {
      const until = Date.now() + this.leaseMs;
      try {
        const res = await this.db
          .updateTable('media_locks')
          .set({ lease_until: until })
          .where('media_id', '=', mediaId)
          .where('owner', '=', owner)
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0) lost.abort(new Error(`the lock of media ${mediaId} was taken over`));
        else leaseEnd = until;
      } catch {
        // Busy: the next renewal tries again, unless the lease ran out meanwhile.
        if (Date.now() >= leaseEnd) lost.abort(new Error(`the lock of media ${mediaId} could not be renewed in time`));
      }
    };
    const timer = setInterval(() => void renew(), Math.max(50, Math.floor(this.leaseMs / 3)));
    timer.unref();
    lost.signal.addEventListener('abort', () => clearInterval(timer));
    return {
      signal: lost.signal,
      release: async () => {
        clearInterval(timer);
        // A busy database is asked again a few times; failing that, the lease lapses.
        for (let attempt = 1; attempt <= RELEASE_ATTEMPTS; attempt++) {
          try {
            await this.db.deleteFrom('media_locks').where('media_id', '=', mediaId).where('owner', '=', owner).execute();
            return;
          } catch {
            if (attempt < RELEASE_ATTEMPTS) await sleep(LEASE_POLL_MS * attempt);
          }
        }
      },
    };
  }
}

/** How often a waiting acquire asks again. */
const LOCK_POLL_MS = 50;
/** Connecting, and ending a session, take at most this long. */
const CONNECT_TIMEOUT_MS = 5000;

/** Ends a client's session, waiting at most `ms` (then its socket is dropped). */
async function endWithin(client: pg.Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = client.end().catch(() => undefined);
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
  });
  if ((await Promise.race([ended, late])) === 'late') {
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
  clearTimeout(timer);
}

/**
 * PostgreSQL: a session-level advisory lock (`pg_advisory_lock(<schema>:qasar-media, <media>)`),
 * each on a connection of its own outside the pool. Outside the pool, so that held locks never
 * take the connections the jobs themselves query with (a worker whose slots all held pooled
 * connections would wait on itself); one per lock, because a session's advisory locks are
 * re-entrant (two jobs of one process on one session would both get it). The lock goes with its
 * connection: released when the holder ends it, and by PostgreSQL when the process dies (TCP
 * keepalives, set short on these connections, find a vanished machine). A query on the
 * connection every third of JOB_LEASE notices a connection that was lost.
 */
export class PgMediaLocks implements MediaLocks {
  constructor(
    private readonly pgModule: typeof pg,
    private readonly connectionString: string,
    private readonly schema: string,
    private readonly heartbeatMs: number,
  ) {}

  async acquire(mediaId: string, waitMs: number): Promise<MediaLock | undefined> {
    const lost = new AbortController();
    let released = false;
    const onLost = (why: string) => {
      if (!released && !lost.signal.aborted) lost.abort(new Error(`the lock of media ${mediaId} was lost: ${why}`));
    };
    const client = new this.pgModule.Client({
      connectionString: this.connectionString,
      application_name: 'qasar media lock',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // A lock whose server does not answer is as good as lost: connect and every query are bounded.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: Math.max(CONNECT_TIMEOUT_MS, this.heartbeatMs),
      options: '-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3',
    });
    client.on('error', (err) => onLost(err.message));
    client.on('end', () => onLost('its connection ended'));
    const key = [`${this.schema}:qasar-media`, mediaId];
    try {
      await client.connect();
      // Polled rather than waited for with lock_timeout: nothing is left set on the session.
      const deadline = Date.now() + Math.max(0, waitMs);
      let got = false;
      for (;;) {
        got = (await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1), hashtext($2)) as ok', key)).rows[0]!.ok;
        if (got || Date.now() >= deadline) break;
        await sleep(Math.min(LOCK_POLL_MS, Math.max(1, deadline - Date.now())));
      }
      if (!got) {
        released = true;
        await endWithin(client, CONNECT_TIMEOUT_MS);
        return undefined;
      }
    } catch (err) {
      released = true;
      await endWithin(client, CONNECT_TIMEOUT_MS);
      throw err;
    }
    const heartbeat = setInterval(() => {
      client.query('select 1').catch((err: Error) => onLost(err.message));
    }, this.heartbeatMs);
    heartbeat.unref();
    return {
      signal: lost.signal,
      release: async () => {
        released = true;
        clearInterval(heartbeat);
        // Ending the session lets go of its advisory lock; a server that does not answer has lost
        // the session (and the lock) by its keepalives anyway.
        await endWithin(client, CONNECT_TIMEOUT_MS);
      },
    };
  }
}

/** The media locks of this database: advisory locks on PostgreSQL, lease rows on SQLite. */
export async function openMediaLocks(
  database: Pick<DatabaseHandle, 'db' | 'dialect' | 'schema'>,
  settings: Pick<Settings, 'databaseUrl' | 'jobLease'>,
): Promise<MediaLocks> {
  if (database.dialect === 'postgres') {
    const { default: pgModule } = await import('pg');
    return new PgMediaLocks(pgModule, settings.databaseUrl, database.schema ?? 'public', Math.max(1000, Math.floor(settings.jobLease / 3)));
  }
  return new LeaseMediaLocks(database.db, settings.jobLease);
}
