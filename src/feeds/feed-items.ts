import type { Db } from '../db/database.js';
import { fromJson, type MediaKind, type MediaStatus } from '../db/schema.js';
import { labelsOfMedia } from '../labels/label-service.js';
import type { DeliveryService } from '../media/delivery.js';
import type { Principal } from '../tenancy/principal.js';

/** The one shape of an item in every feed (new, recommended, search) and in search results. */
export interface FeedItem {
  id: string;
  kind: MediaKind;
  status: MediaStatus;
  user_id: string;
  title: string | null;
  caption: string | null;
  original_filename: string;
  /** Seconds; null for media without a duration. */
  duration: number | null;
  /** As displayed (sample aspect and rotation applied); null when not a picture. */
  width: number | null;
  height: number | null;
  poster: { jpeg: string | null; webp: string | null };
  /** General label names (moderation labels are not shown in feeds). */
  labels: string[];
  tags: string[];
  playback: { hls: string | null; dash: string | null; webm: string | null; expires_at: string };
  created_at: string;
  /** Search relevance (higher is better); only in search results. */
  score?: number;
}

const numberOrNull = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Turns ranked media ids into feed items, in the given order; ids not found are dropped. */
export class FeedItemBuilder {
  constructor(
    private readonly db: Db,
    private readonly delivery: DeliveryService,
  ) {}

  async build(p: Principal, ids: string[], baseUrl: string, scores?: Map<string, number>): Promise<FeedItem[]> {
    if (!ids.length) return [];
    const rows = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'kind', 'status', 'user_id', 'title', 'caption', 'original_filename', 'user_tags', 'file_metadata', 'created_at'])
      .where('tenant_id', '=', p.tenantId)
      .where('id', 'in', ids)
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    const labels = await labelsOfMedia(this.db, p.tenantId, ids);
    const items: FeedItem[] = [];
    for (const id of ids) {
      const r = byId.get(id);
      if (!r) continue;
      const meta = fromJson<Record<string, unknown>>(r.file_metadata, {});
      const pkg = await this.delivery.package(p, id, baseUrl);
      const score = scores?.get(id);
      items.push({
        id: r.id,
        kind: r.kind,
        status: r.status,
        user_id: r.user_id,
        title: r.title,
        caption: r.caption,
        original_filename: r.original_filename,
        duration: numberOrNull(meta.duration),
        width: numberOrNull(meta.display_width) ?? numberOrNull(meta.width),
        height: numberOrNull(meta.display_height) ?? numberOrNull(meta.height),
        poster: pkg.poster,
        labels: [...new Set((labels.get(id) ?? []).filter((l) => l.kind === 'general').map((l) => l.name))],
        tags: fromJson<string[]>(r.user_tags, []),
        playback: { hls: pkg.hls, dash: pkg.dash, webm: pkg.webm, expires_at: pkg.expires_at },
        created_at: r.created_at,
        ...(score !== undefined ? { score } : {}),
      });
    }
    return items;
  }
}
