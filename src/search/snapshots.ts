import type { Db } from '../db/database.js';
import { nowIso } from '../db/schema.js';
import { newId } from '../shared/ids.js';
import type { SearchHit } from './search-index.js';

/** How long the later pages of a search stay readable after its first. */
export const SNAPSHOT_TTL_MS = 60 * 60 * 1000;

/**
 * Keeps the ranked hits of a search for its later pages, bound to the tenant and the query's
 * fingerprint. Expired snapshots are removed by the API processes' maintenance sweep
 * (sweepSnapshots), not by the searches: a snapshot is tens of KB, and deleting a few inline
 * cost a search about 30 ms on SQLite.
 */
export async function saveSnapshot(db: Db, tenantId: string, fingerprint: string, hits: SearchHit[]): Promise<string> {
  const id = newId();
  await db
    .insertInto('search_snapshots')
    .values({
      id,
      tenant_id: tenantId,
      fingerprint,
      hits: JSON.stringify(hits.map((h) => [h.mediaId, h.score])),
      expires_at: new Date(Date.now() + SNAPSHOT_TTL_MS).toISOString(),
    })
    .execute();
  return id;
}

/** Deletes expired snapshots, a batch per statement so no transaction grows large; returns how many. */
export async function sweepSnapshots(db: Db, now = Date.now(), batch = 200): Promise<number> {
  const cutoff = new Date(now).toISOString();
  let removed = 0;
  for (;;) {
    const res = await db
      .deleteFrom('search_snapshots')
      .where('id', 'in', (eb) => eb.selectFrom('search_snapshots').select('id').where('expires_at', '<', cutoff).limit(batch))
      .executeTakeFirst();
    const n = Number(res.numDeletedRows);
    removed += n;
    if (n < batch) return removed;
  }
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
