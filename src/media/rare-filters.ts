import type { Db } from '../db/database.js';

/**
 * A filter matching at most this many media is read from its own index (the media carrying the
 * label or tag) rather than by walking the library newest first until a page is full: a rare
 * label walked 100,000 media (50 ms on SQLite) to fill a page, while reading this many index
 * entries first costs about a millisecond when the filter is common.
 */
export const RARE_FILTER_MEDIA = 2000;

/** The media carrying one of these labels, or undefined when more than RARE_FILTER_MEDIA do. */
export async function fewMediaWithLabels(db: Db, tenantId: string, labelIds: readonly string[]): Promise<string[] | undefined> {
  if (!labelIds.length) return [];
  const rows = await db
    .selectFrom('asset_labels')
    .select('media_id')
    .where('tenant_id', '=', tenantId)
    .where('label_id', 'in', labelIds)
    .limit(RARE_FILTER_MEDIA * 2 + 1)
    .execute();
  const ids = new Set(rows.map((r) => r.media_id));
  // Rows are links (a media may carry several of the labels, from two sources): counted as media.
  return rows.length <= RARE_FILTER_MEDIA * 2 && ids.size <= RARE_FILTER_MEDIA ? [...ids] : undefined;
}

/** The media carrying this tag (as `media_tags` holds it), or undefined when more than RARE_FILTER_MEDIA do. */
export async function fewMediaWithTag(db: Db, tenantId: string, tag: string): Promise<string[] | undefined> {
  const rows = await db
    .selectFrom('media_tags')
    .select('media_id')
    .where('tenant_id', '=', tenantId)
    .where('tag', '=', tag)
    .limit(RARE_FILTER_MEDIA + 1)
    .execute();
  return rows.length <= RARE_FILTER_MEDIA ? rows.map((r) => r.media_id) : undefined;
}
