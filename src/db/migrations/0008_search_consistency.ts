import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Search documents that follow label banks, stable search pages, exact label statistics.
 *
 * - `search_stale`: media whose search documents must be rebuilt, marked in the same transaction
 *   as the label bank write that changed their label words; the indexer drains it in batches.
 *   `version` grows with each new mark, so a mark made while a document is being rebuilt survives.
 * - SQLite: one FTS5 table per tenant (`media_search_fts_<hash>`, created on first use), so bm25's
 *   statistics (document count, term frequencies, mean lengths) are the tenant's own. The shared
 *   table is dropped and its documents forgotten: start-up indexes every media again.
 * - SQLite: `search_snapshots`, the ranked ids of a search taken with its first page (bm25 moves
 *   with every write, so later pages read the snapshot instead of ranking again).
 * - `asset_labels.confidence_sum`: the sum of the confidences written, so a removed label takes
 *   exactly its share out of the bank statistics (null on older rows: confidence × count).
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const ts = pg ? sql`timestamptz` : sql`text`;
  const real = pg ? sql`double precision` : sql`real`;

  await db.schema
    .createTable('search_stale')
    .addColumn('media_id', 'text', (c) => c.primaryKey().references('mediaassets.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('search_stale_tenant_idx').on('search_stale').columns(['tenant_id', 'media_id']).execute();

  await db.schema.alterTable('asset_labels').addColumn('confidence_sum', real).execute();

  if (!pg) {
    await sql`drop table if exists media_search_fts`.execute(db);
    await sql`delete from media_search_docs`.execute(db);
    await db.schema
      .createTable('search_snapshots')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
      .addColumn('fingerprint', 'text', (c) => c.notNull())
      .addColumn('hits', 'text', (c) => c.notNull())
      .addColumn('expires_at', ts, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('search_snapshots_expires_idx').on('search_snapshots').column('expires_at').execute();
  }
}
