import { sql } from 'kysely';
import type { Db } from '../db/database.js';

/**
 * Marks the search documents of the tenant's media that carry any of these labels as stale.
 * Run it in the transaction of the write that changed the labels' words, so the marks are as
 * durable as the change; the indexer rebuilds marked documents in batches.
 */
export async function markMediaOfLabelsStale(db: Db, tenantId: string, labelIds: readonly string[]): Promise<void> {
  for (let i = 0; i < labelIds.length; i += 500) {
    await sql`
      insert into search_stale (media_id, tenant_id, version)
      select distinct al.media_id, al.tenant_id, 0 from asset_labels al
      where al.tenant_id = ${tenantId} and al.label_id in (${sql.join(labelIds.slice(i, i + 500))})
      on conflict (media_id) do update set version = search_stale.version + 1`.execute(db);
  }
}
