import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * The initial schema, for SQLite and PostgreSQL alike. Column types differ only where the
 * dialects do: timestamps (text vs timestamptz), JSON (text vs jsonb), 64-bit sizes.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const ts = pg ? sql`timestamptz` : sql`text`;
  const json = pg ? sql`jsonb` : sql`text`;
  const big = pg ? sql`bigint` : sql`integer`;
  const real = pg ? sql`double precision` : sql`real`;

  await db.schema
    .createTable('tenants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', ts, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text')
    .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('name', 'text')
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('last_used_at', ts)
    .addColumn('revoked_at', ts)
    .execute();
  await db.schema.createIndex('api_keys_tenant_idx').on('api_keys').column('tenant_id').execute();

  await db.schema
    .createTable('upload_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('protocol', 'text', (c) => c.notNull())
    .addColumn('filename', 'text', (c) => c.notNull())
    .addColumn('content_type', 'text')
    .addColumn('total_size', big, (c) => c.notNull())
    .addColumn('chunk_size', big, (c) => c.notNull())
    .addColumn('chunk_count', 'integer', (c) => c.notNull())
    .addColumn('sha256', 'text')
    .addColumn('caption', 'text')
    .addColumn('user_tags', json, (c) => c.notNull())
    .addColumn('labels', json, (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('media_id', 'text')
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .addColumn('expires_at', ts, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('upload_sessions_tenant_idx').on('upload_sessions').columns(['tenant_id', 'user_id']).execute();
  await db.schema.createIndex('upload_sessions_expiry_idx').on('upload_sessions').columns(['state', 'expires_at']).execute();

  await db.schema
    .createTable('upload_chunks')
    .addColumn('session_id', 'text', (c) => c.notNull().references('upload_sessions.id').onDelete('cascade'))
    .addColumn('chunk_index', 'integer', (c) => c.notNull())
    .addColumn('size', big, (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('received_at', ts, (c) => c.notNull())
    .addPrimaryKeyConstraint('upload_chunks_pk', ['session_id', 'chunk_index'])
    .execute();

  await db.schema
    .createTable('mediaassets')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('queued', 'processing', 'ready', 'error')`))
    .addColumn('error_code', 'text')
    .addColumn('error_reason', 'text')
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('video', 'audio', 'image', 'document', 'other')`))
    .addColumn('original_filename', 'text', (c) => c.notNull())
    .addColumn('mime_type', 'text', (c) => c.notNull())
    .addColumn('size', big, (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('caption', 'text')
    .addColumn('user_tags', json, (c) => c.notNull())
    .addColumn('file_metadata', json, (c) => c.notNull())
    .addColumn('upload_session_id', 'text')
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .addColumn('processing_started_at', ts)
    .addColumn('ready_at', ts)
    .execute();
  await db.schema.createIndex('mediaassets_tenant_created_idx').on('mediaassets').columns(['tenant_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('mediaassets_tenant_user_created_idx').on('mediaassets').columns(['tenant_id', 'user_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('mediaassets_status_idx').on('mediaassets').columns(['status', 'updated_at']).execute();

  await db.schema
    .createTable('labels')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('general', 'moderation')`))
    .addColumn('parent_id', 'text', (c) => c.references('labels.id').onDelete('set null'))
    .addColumn('created_at', ts, (c) => c.notNull())
    .addUniqueConstraint('labels_tenant_name_kind_uq', ['tenant_id', 'name', 'kind'])
    .execute();

  await db.schema
    .createTable('asset_labels')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('media_id', 'text', (c) => c.notNull().references('mediaassets.id').onDelete('cascade'))
    .addColumn('label_id', 'text', (c) => c.notNull().references('labels.id').onDelete('cascade'))
    .addColumn('source', 'text', (c) => c.notNull().check(sql`source in ('user', 'model')`))
    .addColumn('count', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('confidence', real, (c) => c.notNull().defaultTo(1))
    .addColumn('frame_data', json, (c) => c.notNull())
    .addColumn('first_seen_at', ts, (c) => c.notNull())
    .addColumn('last_seen_at', ts, (c) => c.notNull())
    .addUniqueConstraint('asset_labels_media_label_source_uq', ['media_id', 'label_id', 'source'])
    .execute();
  await db.schema.createIndex('asset_labels_label_idx').on('asset_labels').columns(['tenant_id', 'label_id']).execute();

  await db.schema
    .createTable('label_banks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('general', 'moderation')`))
    .addColumn('description', 'text')
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .execute();
  // A bank name is unique per tenant, and among global banks (tenant_id null): NULLs are
  // distinct in unique constraints, so the index is on an expression.
  await sql`create unique index label_banks_tenant_name_uq on label_banks (coalesce(tenant_id, ''), name)`.execute(db);

  await db.schema
    .createTable('label_bank_entries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('bank_id', 'text', (c) => c.notNull().references('label_banks.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('label_id', 'text', (c) => c.references('labels.id').onDelete('set null'))
    .addColumn('parent_id', 'text', (c) => c.references('label_bank_entries.id').onDelete('set null'))
    .addColumn('threshold', real)
    .addColumn('created_at', ts, (c) => c.notNull())
    .addUniqueConstraint('label_bank_entries_bank_name_uq', ['bank_id', 'name'])
    .execute();

  await db.schema
    .createTable('label_bank_phrases')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('entry_id', 'text', (c) => c.notNull().references('label_bank_entries.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('cascade'))
    .addColumn('phrase', 'text', (c) => c.notNull())
    .addUniqueConstraint('label_bank_phrases_entry_phrase_uq', ['entry_id', 'phrase'])
    .execute();

  await db.schema
    .createTable('label_bank_stats')
    .addColumn('entry_id', 'text', (c) => c.primaryKey().references('label_bank_entries.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('cascade'))
    .addColumn('usage_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('match_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('confidence_sum', real, (c) => c.notNull().defaultTo(0))
    .addColumn('max_confidence', real, (c) => c.notNull().defaultTo(0))
    .addColumn('last_matched_at', ts)
    .execute();

  await db.schema
    .createTable('queue_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('queue', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('data', json, (c) => c.notNull())
    .addColumn('dedupe_key', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('run_at', big, (c) => c.notNull())
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', big)
    .addColumn('last_error', 'text')
    .addColumn('created_at', ts, (c) => c.notNull())
    .addColumn('updated_at', ts, (c) => c.notNull())
    .addColumn('finished_at', ts)
    .execute();
  await db.schema.createIndex('queue_jobs_ready_idx').on('queue_jobs').columns(['queue', 'state', 'run_at']).execute();
  await sql`create unique index queue_jobs_dedupe_uq on queue_jobs (queue, dedupe_key) where dedupe_key is not null and state in ('waiting', 'active')`.execute(
    db,
  );
}
