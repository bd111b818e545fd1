import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * `media_locks`: the per-media lock of jobs on SQLite, a row with a lease (several processes
 * share the database file). PostgreSQL takes advisory locks instead and leaves it empty.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  await db.schema
    .createTable('media_locks')
    .addColumn('media_id', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('lease_until', pg ? sql`bigint` : sql`integer`, (c) => c.notNull())
    .addColumn('acquired_at', pg ? sql`timestamptz` : sql`text`, (c) => c.notNull())
    .execute();
}
