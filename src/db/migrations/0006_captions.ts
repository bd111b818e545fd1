import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Caption tracks of a video: one WebVTT file per language under the media's `transcripts/`
 * folder, and this row with the plain text of its cues (for search).
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const ts = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  await db.schema
    .createTable('caption_tracks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('media_id', 'text', (c) => c.notNull().references('mediaassets.id').onDelete('cascade'))
    .addColumn('language', 'text', (c) => c.notNull())
    .addColumn('label', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('subtitles', 'captions')`))
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('cue_count', 'integer', (c) => c.notNull())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .addUniqueConstraint('caption_tracks_media_language_key', ['media_id', 'language'])
    .execute();
  await db.schema.createIndex('caption_tracks_tenant_idx').on('caption_tracks').columns(['tenant_id', 'media_id']).execute();
}
