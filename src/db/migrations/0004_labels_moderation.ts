import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Label statistics per tenant, moderation thresholds and the moderation history.
 *
 * `label_bank_stats` is rebuilt keyed by (entry, tenant): a global bank's entry is shared by
 * every tenant, and each tenant sees only its own usage of it. The table held nothing yet.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const ts = pg ? sql`timestamptz` : sql`text`;
  const json = pg ? sql`jsonb` : sql`text`;
  const real = pg ? sql`double precision` : sql`real`;

  await db.schema.dropTable('label_bank_stats').execute();
  await db.schema
    .createTable('label_bank_stats')
    .addColumn('entry_id', 'text', (c) => c.notNull().references('label_bank_entries.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('usage_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('match_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('confidence_sum', real, (c) => c.notNull().defaultTo(0))
    .addColumn('max_confidence', real, (c) => c.notNull().defaultTo(0))
    .addColumn('last_matched_at', ts)
    .addPrimaryKeyConstraint('label_bank_stats_pk', ['entry_id', 'tenant_id'])
    .execute();

  await db.schema.createIndex('label_bank_entries_bank_idx').on('label_bank_entries').columns(['bank_id', 'name']).execute();
  await db.schema.createIndex('label_bank_entries_name_idx').on('label_bank_entries').column('name').execute();
  await db.schema.createIndex('label_bank_phrases_phrase_idx').on('label_bank_phrases').column('phrase').execute();
  await db.schema.createIndex('labels_tenant_parent_idx').on('labels').columns(['tenant_id', 'parent_id']).execute();
  await db.schema.createIndex('asset_labels_media_idx').on('asset_labels').columns(['tenant_id', 'media_id']).execute();

  await db.schema
    .createTable('moderation_settings')
    .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
    .addColumn('default_threshold', real)
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('moderation_thresholds')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('label_id', 'text', (c) => c.notNull().references('labels.id').onDelete('cascade'))
    .addColumn('threshold', real, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .addPrimaryKeyConstraint('moderation_thresholds_pk', ['tenant_id', 'label_id'])
    .execute();

  // Every change of a media's moderation state: holds (by the system, with the labels that
  // triggered them) and moderators' approvals and rejections (with who and a note).
  await db.schema
    .createTable('moderation_decisions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('media_id', 'text', (c) => c.notNull().references('mediaassets.id').onDelete('cascade'))
    .addColumn('decision', 'text', (c) => c.notNull().check(sql`decision in ('hold', 'approve', 'reject')`))
    .addColumn('previous_state', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('note', 'text')
    .addColumn('labels', json, (c) => c.notNull())
    .addColumn('actor_key_id', 'text')
    .addColumn('actor_user_id', 'text')
    .addColumn('at', ts, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('moderation_decisions_media_idx').on('moderation_decisions').columns(['tenant_id', 'media_id', 'id']).execute();
}
