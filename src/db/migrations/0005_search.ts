import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Search, tags as features, and views.
 *
 * - SQLite: an FTS5 table (its own copy of each media's search document; rowid = the integer id of
 *   the media's row in `media_search_docs`, since media ids are text) with one column per field so
 *   bm25() can weigh them.
 * - PostgreSQL: `media_search` with a weighted tsvector (A title/caption, B filename/description,
 *   C tags/labels, D caption-track text) under a GIN index.
 * - `media_tags`: user tags normalised (lower-cased, one row per tag) for recommendations.
 * - `media_views`: one row per (user, media) a user opened, for the recommended feed.
 * Documents are (re)built by the search indexer on every media change; media that have none yet
 * (created before this migration) are indexed at start-up.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const ts = pg ? sql`timestamptz` : sql`text`;

  if (pg) {
    await db.schema
      .createTable('media_search')
      .addColumn('media_id', 'text', (c) => c.primaryKey().references('mediaassets.id').onDelete('cascade'))
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('document', sql`tsvector`, (c) => c.notNull())
      .addColumn('indexed_at', ts, (c) => c.notNull())
      .execute();
    await sql`create index media_search_document_idx on media_search using gin (document)`.execute(db);
    await db.schema.createIndex('media_search_tenant_idx').on('media_search').column('tenant_id').execute();
  } else {
    // No foreign key: the FTS row is found through this row, so it is removed explicitly.
    await db.schema
      .createTable('media_search_docs')
      .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
      .addColumn('media_id', 'text', (c) => c.notNull().unique())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('indexed_at', ts, (c) => c.notNull())
      .execute();
    await sql`create virtual table media_search_fts using fts5(
      title, filename, caption, description, tags, labels, tracks,
      tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
    )`.execute(db);
  }

  await db.schema
    .createTable('media_tags')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('media_id', 'text', (c) => c.notNull().references('mediaassets.id').onDelete('cascade'))
    .addColumn('tag', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('media_tags_pk', ['media_id', 'tag'])
    .execute();
  // Posting lists of a tag or a label, newest media first (ids are time-ordered UUIDv7), so the
  // recommender's capped candidate lists hold recent media.
  await db.schema.createIndex('media_tags_tenant_tag_idx').on('media_tags').columns(['tenant_id', 'tag', 'media_id']).execute();
  await db.schema.createIndex('asset_labels_tenant_label_media_idx').on('asset_labels').columns(['tenant_id', 'label_id', 'media_id']).execute();

  await db.schema
    .createTable('media_views')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('media_id', 'text', (c) => c.notNull().references('mediaassets.id').onDelete('cascade'))
    .addColumn('view_count', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('first_viewed_at', ts, (c) => c.notNull())
    .addColumn('last_viewed_at', ts, (c) => c.notNull())
    .addPrimaryKeyConstraint('media_views_pk', ['tenant_id', 'user_id', 'media_id'])
    .execute();
  await db.schema.createIndex('media_views_user_recent_idx').on('media_views').columns(['tenant_id', 'user_id', 'last_viewed_at']).execute();
  await db.schema.createIndex('media_views_media_idx').on('media_views').column('media_id').execute();

  // The feeds read ready media newest first; moderation is a residual filter on this index
  // (most media are not held), so the order comes from the index instead of a sort.
  await db.schema.createIndex('mediaassets_tenant_status_created_idx').on('mediaassets').columns(['tenant_id', 'status', 'created_at', 'id']).execute();
}
