import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Fair scheduling of the embedded queue across tenants.
 *
 * - `queue_jobs.tenant_id`: the tenant whose work a job is (from its payload); jobs queued
 *   before take their media's tenant here, and any without a media share the group ''.
 * - `queue_tenant_turns`: when each tenant last had a job started (a counter per queue, not a
 *   clock), so that the tenant served longest ago goes first among those running as few jobs.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const big = dialect === 'postgres' ? sql`bigint` : sql`integer`;
  await db.schema.alterTable('queue_jobs').addColumn('tenant_id', 'text').execute();
  const mediaId = dialect === 'postgres' ? sql`queue_jobs.data ->> 'media_id'` : sql`json_extract(queue_jobs.data, '$.media_id')`;
  await sql`update queue_jobs set tenant_id = (select m.tenant_id from mediaassets m where m.id = ${mediaId}) where tenant_id is null`.execute(db);
  await db.schema.createIndex('queue_jobs_tenant_idx').on('queue_jobs').columns(['queue', 'state', 'tenant_id']).execute();
  await db.schema
    .createTable('queue_tenant_turns')
    .addColumn('queue', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('turn', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('queue_tenant_turns_pk', ['queue', 'tenant_id'])
    .execute();
}
