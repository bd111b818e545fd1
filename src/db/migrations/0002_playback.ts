import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/** Per-media playback keys (signed URLs die with the media) and server-wide secrets. */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const ts = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  await db.schema.alterTable('mediaassets').addColumn('playback_key', 'text').execute();
  await db.schema
    .createTable('server_secrets')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .execute();
}
