import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { fewMediaWithLabels } from '../media/rare-filters.js';
import { filterSql, type FilterQuery } from './search-index.js';

/** Where a page of a filtered list ended: continue with the media created before it (or at the same instant, of a lower id). */
export interface ListPosition {
  createdAt: string;
  id: string;
}

/**
 * The newest media passing a search's filters and visibility, with no words to rank by: a keyset
 * on (created_at, id), newest first, like the new feed. Media added after a first page are newer
 * than its last item, so later pages never repeat or skip one. A label carried by few media is
 * read from the label's index first (see RARE_FILTER_MEDIA); otherwise the library is walked
 * newest first.
 */
export async function newestMatching(
  db: Db,
  q: Pick<FilterQuery, 'tenantId' | 'filters' | 'audience'>,
  limit: number,
  after?: ListPosition,
): Promise<{ id: string; created_at: string }[]> {
  const few = q.filters.labelIds ? await fewMediaWithLabels(db, q.tenantId, q.filters.labelIds) : undefined;
  if (few && !few.length) return [];
  // Those ids are the media carrying the labels: the label test on each is left out (with a
  // parent's many descendants it costs an index search per label and media).
  const { labelIds: _read, ...others } = q.filters;
  const where = few ? filterSql({ ...q, filters: others }, false) : filterSql(q, false);
  const among = few ? sql`and m.id in (${sql.join(few)})` : sql``;
  const keyset = after ? sql`and (m.created_at < ${after.createdAt} or (m.created_at = ${after.createdAt} and m.id < ${after.id}))` : sql``;
  const res = await sql<{ id: string; created_at: string }>`
    select m.id, m.created_at from mediaassets as m
    where ${where} ${among} ${keyset}
    order by m.created_at desc, m.id desc
    limit ${limit}`.execute(db);
  return res.rows;
}
