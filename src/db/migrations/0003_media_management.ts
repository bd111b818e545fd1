import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Columns media management builds on: a title and description next to the caption, and the
 * moderation state (`none` until a moderation label meets a threshold; `held` media is hidden
 * from feeds, search and other users' playback until a moderator approves or rejects it).
 * Status transitions are kept as events, so clients see when each one happened.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const ts = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  await db.schema.alterTable('mediaassets').addColumn('title', 'text').execute();
  await db.schema.alterTable('mediaassets').addColumn('description', 'text').execute();
  await db.schema
    .alterTable('mediaassets')
    .addColumn('moderation_state', 'text', (c) => c.notNull().defaultTo('none').check(sql`moderation_state in ('none', 'held', 'approved', 'rejected')`))
    .execute();
  await db.schema
    .createIndex('mediaassets_tenant_feed_idx')
    .on('mediaassets')
    .columns(['tenant_id', 'status', 'moderation_state', 'created_at', 'id'])
    .execute();

  await db.schema
    .createTable('media_status_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('media_id', 'text', (c) => c.notNull().references('mediaassets.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('error_code', 'text')
    .addColumn('at', ts, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('media_status_events_media_idx').on('media_status_events').columns(['media_id', 'at']).execute();
}
