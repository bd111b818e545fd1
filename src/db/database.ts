import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import type pg from 'pg';
import { databaseKind, sqliteFile, type Settings } from '../config/settings.js';
import type { Dialect } from './dialect.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  dialect: Dialect;
  /** PostgreSQL schema of Qasar's tables (undefined on SQLite). */
  schema?: string;
  ping(): Promise<void>;
  close(): Promise<void>;
}

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

export async function openDatabase(
  settings: Pick<Settings, 'databaseUrl' | 'databaseSchema' | 'databasePoolSize'>,
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
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    return {
      db,
      dialect: 'sqlite',
      ping: async () => {
        await sql`select 1`.execute(db);
      },
      close: () => db.destroy(),
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
  const client = await pool.connect();
  try {
    await client.query(`create schema if not exists "${schema}"`);
  } finally {
    client.release();
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
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
