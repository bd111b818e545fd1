import { ancestorChain } from '../labels/hierarchy.js';
import { shownName } from '../labels/label-names.js';
import type { LabelDirectory } from '../labels/label-directory.js';
import type { PlaybackTokens } from '../media/playback-tokens.js';
import { playbackSigningKey, visibleToAudience, type Audience } from '../access/visibility.js';
import type { MediaFacts, MediaFactsSource } from '../search/media-facts.js';
import type { Principal } from '../tenancy/principal.js';

/** The one shape of an item in every feed (new, recommended, search) and in search results. */
export interface FeedItem
  extends Pick<
    MediaFacts,
    'id' | 'kind' | 'status' | 'user_id' | 'title' | 'caption' | 'original_filename' | 'duration' | 'width' | 'height' | 'tags' | 'created_at'
  > {
  poster: { jpeg: string | null; webp: string | null };
  /** General label names with their ancestors, by name (moderation labels are not shown in feeds). */
  labels: string[];
  playback: { hls: string | null; dash: string | null; webm: string | null; expires_at: string };
  /** Search relevance (higher is better); only in search results. */
  score?: number;
}

export interface BuildOptions {
  /** Who the items are for; media this audience may not see (any more) is left out. Default: a feed. */
  audience?: Audience;
  /** Search scores by media id. */
  scores?: Map<string, number>;
  /** Facts of these media already read for this request (a search's re-check): not read again. */
  facts?: ReadonlyMap<string, MediaFacts> | undefined;
}

/**
 * Turns ranked media ids into feed items, in the given order, from the media facts and the
 * tenant's label directory (both cached: a page read again costs no query). Media deleted, held
 * or otherwise made invisible since it was ranked is dropped, so one such media never fails a
 * whole page.
 */
export class FeedItemBuilder {
  constructor(
    private readonly facts: MediaFactsSource,
    private readonly labels: LabelDirectory,
    private readonly tokens: PlaybackTokens,
    private readonly playbackTtlMs: number,
  ) {}

  async build(p: Principal, ids: string[], baseUrl: string, opts: BuildOptions = {}): Promise<FeedItem[]> {
    if (!ids.length) return [];
    const audience = opts.audience ?? { kind: 'feed' };
    const facts = opts.facts ?? (await this.facts.get(p.tenantId, ids));
    const shown = [...new Set(ids)].map((id) => facts.get(id)).filter((m): m is MediaFacts => m !== undefined && visibleToAudience(audience, m));
    const labels = await this.generalLabelNames(p.tenantId, shown);
    const expiresAt = Date.now() + this.playbackTtlMs;
    const expiresAtIso = new Date(Math.floor(expiresAt / 1000) * 1000).toISOString();
    return shown.map((m) => {
      const a = m.artifacts;
      const signKey = playbackSigningKey(m);
      const token = signKey ? this.tokens.sign(m.id, signKey, expiresAt) : undefined;
      const url = (rel: string | undefined) => (rel && token ? `${baseUrl}/play/${token}/${rel}` : null);
      const score = opts.scores?.get(m.id);
      return {
        id: m.id,
        kind: m.kind,
        status: m.status,
        user_id: m.user_id,
        title: m.title,
        caption: m.caption,
        original_filename: m.original_filename,
        duration: m.duration,
        width: m.width,
        height: m.height,
        poster: { jpeg: url(a.poster?.jpeg), webp: url(a.poster?.webp) },
        labels: labels.get(m.id) ?? [],
        tags: m.tags,
        playback: { hls: url(a.hls), dash: url(a.dash), webm: url(a.webm), expires_at: expiresAtIso },
        created_at: m.created_at,
        ...(score !== undefined ? { score } : {}),
      };
    });
  }

  /** Names of each media's general labels and of all their ancestors, sorted. */
  private async generalLabelNames(tenantId: string, media: readonly MediaFacts[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const nodes = await this.labels.withAncestors(tenantId, [...new Set(media.flatMap((m) => m.label_ids))]);
    for (const m of media) {
      // Moderation labels (and what they imply) are not shown in feeds.
      const names = new Set<string>();
      for (const id of m.label_ids) {
        if (nodes.get(id)?.kind !== 'general') continue;
        // An alias is shown as the label it stands for (the next in its chain).
        for (const node of ancestorChain(id, nodes)) if (node.kind === 'general' && !node.alias_of) names.add(shownName(node));
      }
      if (names.size) out.set(m.id, [...names].sort());
    }
    return out;
  }
}
