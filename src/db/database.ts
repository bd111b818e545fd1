import fs from 'node:fs';
import path from 'node:path';
import {
  Kysely,
  PostgresDialect,
  SqliteDialect,
  sql,
  type DatabaseIntrospector,
  type SqliteDatabase as SqliteDialectDatabase,
  type SqliteStatement,
} from 'kysely';
import type { Database as SqliteDatabase } from 'better-sqlite3';
import type pg from 'pg';
import { databaseKind, sqliteFile, type Settings } from '../config/settings.js';
import type { Dialect } from './dialect.js';
import type { Database } from './schema.js';
import { SchemaIntrospector } from './schema-introspector.js';

/** The dialect of each database opened here, for code that holds only its Kysely instance. */
const dialects = new WeakMap<Db, Dialect>();

/** The dialect of a database opened by openDatabase (undefined for a transaction or another instance). */
export function dialectOf(db: Db): Dialect | undefined {
  return dialects.get(db);
}

export type Db = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  dialect: Dialect;
  /** PostgreSQL schema of Qasar's tables (undefined on SQLite). */
  schema?: string;
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * SQLite only: a new watch of writes other connections (other processes) commit to the
   * database file; each call of the watch tells whether one did since its previous call (never
   * this connection's own writes). Backed by `PRAGMA data_version`, looked at most every 20 ms.
   * Caches hold one each, to forget what another process may have changed.
   */
  watchOtherWrites?(): () => boolean;
}

/** SQLite: how stale the view of other processes' writes (data_version) may be. */
const DATA_VERSION_INTERVAL_MS = 20;

/** How often SQLite's query planner statistics are brought up to date. */
const OPTIMIZE_INTERVAL_MS = 60 * 60_000;

const PG_INT8 = 20;
const PG_TIMESTAMPTZ = 1184;

function pgTypes(types: typeof pg.types): pg.CustomTypesConfig {
  // Sizes fit in 2^53; timestamps come back as the same ISO strings SQLite stores.
  return {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
      if (oid === PG_INT8) return (v: string) => Number(v);
      if (oid === PG_TIMESTAMPTZ) return (v: string) => new Date(v).toISOString();
      return types.getTypeParser(oid, format);
    }) as pg.CustomTypesConfig['getTypeParser'],
  };
}

/** Statements kept compiled per SQLite connection (the most recently used). */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely prepares every query anew; compiling a statement costs more than running most of ours.
 * The same SQL text gets the same compiled statement back. Safe because every statement runs to
 * completion synchronously on this one connection (an iterating reader is never shared).
 */
function withStatementCache(sqlite: SqliteDatabase): SqliteDialectDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => sqlite.close(),
    prepare: (text: string) => {
      let stmt = cache.get(text);
      if (stmt) {
        cache.delete(text);
      } else {
        stmt = sqlite.prepare(text) as unknown as SqliteStatement;
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
      }
      cache.set(text, stmt);
      return stmt;
    },
  };
}

export async function openDatabase(
  settings: Pick<Settings, 'databaseUrl' | 'databaseSchema' | 'databasePoolSize' | 'sqliteCacheSize'>,
): Promise<DatabaseHandle> {
  if (databaseKind(settings) === 'sqlite') {
    const file = sqliteFile(settings);
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    // Each driver is loaded only by the processes that use it (memory of a small box).
    const { default: SqliteDatabase } = await import('better-sqlite3');
    const sqlite = new SqliteDatabase(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    // In KiB when negative. The default 2 MB makes a random read of a large library go to the
    // operating system for most pages (get-by-id at 100,000 media: 2,350 → 2,900 req/s with 64 MiB).
    sqlite.pragma(`cache_size = -${Math.max(1, Math.floor(settings.sqliteCacheSize / 1024))}`);
    // SQLite plans queries from table statistics; without any it may scan a tenant's whole index
    // where one media's rows were wanted (seen: 4 ms instead of 0.1 ms at 20,000 media). The
    // statistics are refreshed at open and hourly, each time only where tables changed a lot.
    // They are exact (no analysis_limit): a sampled ANALYZE estimates ~1,000 rows per tenant
    // whatever the truth, which brings the same bad plans back (about 0.3 s per 100,000 media).
    const optimize = () => {
      try {
        sqlite.pragma('optimize = 0x10002');
      } catch {
        // Busy (another process writes): the next round does it.
      }
    };
    optimize();
    const timer = setInterval(optimize, OPTIMIZE_INTERVAL_MS);
    timer.unref();
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
    dialects.set(db, 'sqlite');
    const dataVersionQuery = sqlite.prepare('PRAGMA data_version').pluck();
    let dataVersion = Number(dataVersionQuery.get());
    let dataVersionAt = performance.now();
    const currentDataVersion = () => {
      const now = performance.now();
      if (now - dataVersionAt >= DATA_VERSION_INTERVAL_MS) {
        dataVersion = Number(dataVersionQuery.get());
        dataVersionAt = now;
      }
      return dataVersion;
    };
    return {
      db,
      dialect: 'sqlite',
      // The version is asked at most every DATA_VERSION_INTERVAL_MS: the pragma opens a read
      // transaction (~20 µs), as much as serving a cached record.
      watchOtherWrites: () => {
        let seen = currentDataVersion();
        return () => {
          const v = currentDataVersion();
          if (v === seen) return false;
          seen = v;
          return true;
        };
      },
      ping: async () => {
        await sql`select 1`.execute(db);
      },
      close: async () => {
        clearInterval(timer);
        optimize();
        await db.destroy();
      },
    };
  }

  const schema = settings.databaseSchema;
  const { default: pgModule } = await import('pg');
  const pool = new pgModule.Pool({
    connectionString: settings.databaseUrl,
    max: settings.databasePoolSize,
    types: pgTypes(pgModule.types),
    options: `-c search_path=${schema}`,
  });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it on next use.
  });
  // A client in use has no 'error' listener of the pool's (it removes its own on checkout): a
  // connection lost mid-query would be emitted unheard and end the process. The query itself
  // fails with the same error, which the caller sees (and the API answers 503).
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const client = await pool.connect();
  try {
    await client.query(`create schema if not exists "${schema}"`);
  } finally {
    client.release();
  }
  const db = new Kysely<Database>({ dialect: new OwnSchemaPostgresDialect({ pool }, schema) });
  dialects.set(db, 'postgres');
  return {
    db,
    dialect: 'postgres',
    schema,
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close: () => db.destroy(),
  };
}

/** PostgreSQL whose introspection (the migrator's) sees Qasar's schema only. */
class OwnSchemaPostgresDialect extends PostgresDialect {
  constructor(
    config: ConstructorParameters<typeof PostgresDialect>[0],
    private readonly schema: string,
  ) {
    super(config);
  }

  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SchemaIntrospector(db, this.schema);
  }
}
