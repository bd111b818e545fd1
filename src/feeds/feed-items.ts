import type { Db } from '../db/database.js';
import { fromJson, type MediaKind, type MediaStatus } from '../db/schema.js';
import { ancestorChain, generalLabelLinks, labelWithAncestors } from '../labels/hierarchy.js';
import type { ArtifactPaths } from '../media/delivery.js';
import type { PlaybackTokens } from '../media/playback-tokens.js';
import { playbackSigningKey } from '../moderation/visibility.js';
import { visibleTo, type Audience } from '../search/visibility.js';
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
  /** General label names with their ancestors, by name (moderation labels are not shown in feeds). */
  labels: string[];
  tags: string[];
  playback: { hls: string | null; dash: string | null; webm: string | null; expires_at: string };
  created_at: string;
  /** Search relevance (higher is better); only in search results. */
  score?: number;
}

export interface BuildOptions {
  /** Who the items are for; media this audience may not see (any more) is left out. Default: a feed. */
  audience?: Audience;
  /** Search scores by media id. */
  scores?: Map<string, number>;
}

const numberOrNull = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Turns ranked media ids into feed items, in the given order, in a fixed number of queries per
 * page (records, labels, one per level of label ancestry). Media deleted, held or otherwise
 * made invisible since it was ranked is dropped, so one such media never fails a whole page.
 */
export class FeedItemBuilder {
  constructor(
    private readonly db: Db,
    private readonly tokens: PlaybackTokens,
    private readonly playbackTtlMs: number,
  ) {}

  async build(p: Principal, ids: string[], baseUrl: string, opts: BuildOptions = {}): Promise<FeedItem[]> {
    const wanted = [...new Set(ids)];
    if (!wanted.length) return [];
    const rows = await this.db
      .selectFrom('mediaassets as m')
      .select(['m.id', 'm.kind', 'm.status', 'm.user_id', 'm.title', 'm.caption', 'm.original_filename', 'm.user_tags', 'm.file_metadata', 'm.created_at', 'm.playback_key', 'm.moderation_state'])
      .where('m.tenant_id', '=', p.tenantId)
      .where('m.id', 'in', wanted)
      .where(visibleTo(opts.audience ?? { kind: 'feed' }, 'm'))
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    const labels = await this.generalLabelNames(p.tenantId, rows.map((r) => r.id));
    const expiresAt = Date.now() + this.playbackTtlMs;
    const expiresAtIso = new Date(Math.floor(expiresAt / 1000) * 1000).toISOString();
    const items: FeedItem[] = [];
    for (const id of wanted) {
      const r = byId.get(id);
      if (!r) continue;
      const meta = fromJson<Record<string, unknown> & { artifacts?: ArtifactPaths }>(r.file_metadata, {});
      const a = meta.artifacts ?? {};
      const signKey = playbackSigningKey(r);
      const token = signKey ? this.tokens.sign(r.id, signKey, expiresAt) : undefined;
      const url = (rel: string | undefined) => (rel && token ? `${baseUrl}/play/${token}/${rel}` : null);
      const score = opts.scores?.get(id);
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
        poster: { jpeg: url(a.poster?.jpeg), webp: url(a.poster?.webp) },
        labels: labels.get(id) ?? [],
        tags: fromJson<string[]>(r.user_tags, []),
        playback: { hls: url(a.hls), dash: url(a.dash), webm: url(a.webm), expires_at: expiresAtIso },
        created_at: r.created_at,
        ...(score !== undefined ? { score } : {}),
      });
    }
    return items;
  }

  /** Names of each media's general labels and of all their ancestors, sorted. */
  private async generalLabelNames(tenantId: string, mediaIds: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (!mediaIds.length) return out;
    const links = await generalLabelLinks(this.db, tenantId, mediaIds);
    if (!links.length) return out;
    const nodes = new Map((await labelWithAncestors(this.db, tenantId, links.map((l) => l.label_id))).map((l) => [l.id, l]));
    const names = new Map<string, Set<string>>();
    for (const link of links) {
      const set = names.get(link.media_id) ?? new Set<string>();
      for (const node of ancestorChain(link.label_id, nodes)) if (node.kind === 'general') set.add(node.name);
      names.set(link.media_id, set);
    }
    for (const [mediaId, set] of names) out.set(mediaId, [...set].sort());
    return out;
  }
}
