import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * One durable log of what happens to media (`media_events`), written in the transaction of the
 * change it records, numbered per tenant with no gaps (`seq`, from the `media_event_seqs`
 * counter row of the tenant, taken in that same transaction).
 *
 * - `media_id` has no foreign key: a `deleted` event outlives its media.
 * - The status events kept so far move into it (numbered in id order, which is time order), and
 *   `media_status_events` becomes a view of its `status` events: the history and the event
 *   streams read it as before, with the same ids.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const ts = pg ? sql`timestamptz` : sql`text`;
  const json = pg ? sql`jsonb` : sql`text`;
  const big = pg ? sql`bigint` : sql`integer`;

  await db.schema
    .createTable('media_event_seqs')
    .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
    .addColumn('seq', big, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('media_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('seq', big, (c) => c.notNull())
    .addColumn('media_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('data', json, (c) => c.notNull())
    .addColumn('at', ts, (c) => c.notNull())
    .addUniqueConstraint('media_events_tenant_seq_key', ['tenant_id', 'seq'])
    .execute();
  await db.schema.createIndex('media_events_media_idx').on('media_events').columns(['media_id', 'id']).execute();

  const data = pg ? sql`jsonb_build_object('status', status, 'error_code', error_code)` : sql`json_object('status', status, 'error_code', error_code)`;
  await sql`
    insert into media_events (id, tenant_id, seq, media_id, type, data, at)
    select id, tenant_id, row_number() over (partition by tenant_id order by id), media_id, 'status', ${data}, at
    from media_status_events`.execute(db);
  await sql`insert into media_event_seqs (tenant_id, seq) select tenant_id, max(seq) from media_events group by tenant_id`.execute(db);
  await db.schema.dropTable('media_status_events').execute();

  const field = (name: string) => (pg ? sql.raw(`data ->> '${name}'`) : sql.raw(`json_extract(data, '$.${name}')`));
  await sql`
    create view media_status_events as
    select id, tenant_id, media_id, ${field('status')} as status, ${field('error_code')} as error_code, at
    from media_events
    where type = 'status'`.execute(db);
}
