import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * - `upload_sessions.lease_owner` / `lease_until`: the process completing a session and until
 *   when its claim holds (renewed while it works), so a session left `completing` by a dead
 *   process is found and taken up again.
 * - `upload_sessions.pending_media_id`: the media id a completion is creating, so the files of
 *   one that died before its record was written can be found and put back.
 * - `tenants.quota_bytes`: the tenant's storage quota (null: none).
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const ts = pg ? sql`timestamptz` : sql`text`;
  const big = pg ? sql`bigint` : sql`integer`;
  await db.schema.alterTable('upload_sessions').addColumn('lease_owner', 'text').execute();
  await db.schema.alterTable('upload_sessions').addColumn('lease_until', ts).execute();
  await db.schema.alterTable('upload_sessions').addColumn('pending_media_id', 'text').execute();
  await db.schema.alterTable('tenants').addColumn('quota_bytes', big).execute();
  // Open uploads are counted per user and summed per tenant at every upload creation.
  await db.schema.createIndex('upload_sessions_open_idx').on('upload_sessions').columns(['tenant_id', 'state', 'user_id']).execute();
}
