import { hostname } from 'node:os';
import type pg from 'pg';
import type { Settings } from '../config/settings.js';
import type { DatabaseHandle, Db } from '../db/database.js';
import { nowIso } from '../db/schema.js';
import { newId } from '../shared/ids.js';

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
    const owner = `${hostname()}:${process.pid}:${newId()}`;
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
      return row?.owner === owner;
    } catch (err) {
      // Another process held SQLite's write lock past busy_timeout: not taken, this time.
      if (/^SQLITE_BUSY/.test(String((err as { code?: unknown }).code ?? ''))) return false;
      throw err;
    }
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
        // Failing that, the lease lapses.
        await this.db
          .deleteFrom('media_locks')
          .where('media_id', '=', mediaId)
          .where('owner', '=', owner)
          .execute()
          .catch(() => undefined);
      },
    };
  }
}

/** SQLSTATE lock_not_available: lock_timeout passed while waiting. */
const LOCK_NOT_AVAILABLE = '55P03';

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
      options: '-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3',
    });
    client.on('error', (err) => onLost(err.message));
    client.on('end', () => onLost('its connection ended'));
    const key = [`${this.schema}:qasar-media`, mediaId];
    try {
      await client.connect();
      let got: boolean;
      if (waitMs <= 0) {
        got = (await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1), hashtext($2)) as ok', key)).rows[0]!.ok;
      } else {
        await client.query(`set lock_timeout = ${Math.ceil(waitMs)}`);
        got = await client.query('select pg_advisory_lock(hashtext($1), hashtext($2))', key).then(
          () => true,
          (err: { code?: string }) => {
            if (err.code === LOCK_NOT_AVAILABLE) return false;
            throw err;
          },
        );
      }
      if (!got) {
        released = true;
        await client.end().catch(() => undefined);
        return undefined;
      }
    } catch (err) {
      released = true;
      await client.end().catch(() => undefined);
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
        // Ending the session lets go of its advisory lock.
        await client.end().catch(() => undefined);
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
