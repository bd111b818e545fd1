import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Documents' own words become searchable.
 *
 * - `document_texts`: the text the document step read from a PDF (its text layer) or an EPUB (its
 *   spine's chapters), normalised and cut at DOCUMENT_TEXT_MAX_CHARS, one row per document; the
 *   search indexer reads it like caption-track text. Kept out of file_metadata, which every
 *   media record and list carries.
 * - Search documents gain the document's title and author (from file_metadata.document) and a
 *   `body` field. SQLite: every tenant's FTS5 table is dropped and its documents forgotten, so
 *   start-up indexes every media again with the new column (as 0008 did). PostgreSQL keeps one
 *   tsvector per media: documents that are already processed are marked stale instead, and
 *   start-up rebuilds them with their title and author. Their text comes with their next
 *   processing (reprocess), since only the document step reads it.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  await db.schema
    .createTable('document_texts')
    .ifNotExists()
    .addColumn('media_id', 'text', (c) => c.primaryKey().references('mediaassets.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('updated_at', pg ? sql`timestamptz` : sql`text`, (c) => c.notNull())
    .execute();

  if (pg) {
    await sql`
      insert into search_stale (media_id, tenant_id, version)
      select id, tenant_id, 0 from mediaassets where kind = 'document'
      on conflict (media_id) do update set version = search_stale.version + 1`.execute(db);
  } else {
    const tables = await sql<{ name: string }>`
      select name from sqlite_master where type = 'table' and name glob 'media_search_fts_[0-9a-f]*'`.execute(db);
    for (const { name } of tables.rows) {
      // Names come from sqlite_master and match the hex pattern of ftsTableOf: no quoting needed beyond this check.
      if (!/^media_search_fts_[0-9a-f]+$/.test(name)) continue;
      await sql`drop table ${sql.raw(name)}`.execute(db);
    }
    await sql`delete from media_search_docs`.execute(db);
  }
}
