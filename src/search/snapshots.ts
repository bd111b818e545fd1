import type { Db } from '../db/database.js';
import { nowIso } from '../db/schema.js';
import { newId } from '../ids.js';
import type { SearchHit } from './search-index.js';

/** How long the later pages of a search stay readable after its first. */
export const SNAPSHOT_TTL_MS = 60 * 60 * 1000;

/**
 * Keeps the ranked hits of a search (those after its first page) for its later pages, bound to
 * the tenant and the query's fingerprint. Expired snapshots are removed a few at a time with
 * each new one, so the table stays small without a sweeper.
 */
export async function saveSnapshot(db: Db, tenantId: string, fingerprint: string, hits: SearchHit[]): Promise<string> {
  const id = newId();
  const now = Date.now();
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('search_snapshots')
      .values({
        id,
        tenant_id: tenantId,
        fingerprint,
        hits: JSON.stringify(hits.map((h) => [h.mediaId, h.score])),
        expires_at: new Date(now + SNAPSHOT_TTL_MS).toISOString(),
      })
      .execute();
    await tx
      .deleteFrom('search_snapshots')
      .where('id', 'in', (eb) => eb.selectFrom('search_snapshots').select('id').where('expires_at', '<', new Date(now).toISOString()).limit(20))
      .execute();
  });
  return id;
}

/** The hits of a snapshot, or undefined when it expired or belongs to another tenant or query. */
export async function loadSnapshot(db: Db, tenantId: string, fingerprint: string, id: string): Promise<SearchHit[] | undefined> {
  const row = await db
    .selectFrom('search_snapshots')
    .select('hits')
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .where('fingerprint', '=', fingerprint)
    .where('expires_at', '>', nowIso())
    .executeTakeFirst();
  if (!row) return undefined;
  return (JSON.parse(row.hits) as Array<[string, number]>).map(([mediaId, score]) => ({ mediaId, score }));
}
