import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { RecordCache } from '../cache/record-cache.js';
import { publiclyVisible } from '../access/visibility-sql.js';
import type { RecommendationEngine } from './engine.js';

/** A feature of a media: a general label (weighted by its confidence) or a user tag (weight 1). */
type FeatureKey = string;
const labelKey = (id: string): FeatureKey => `l:${id}`;
const tagKey = (tag: string): FeatureKey => `t:${tag}`;
/** Features of a seed or a user's profile: summed weight, and how many of its media carry each. */
type Profile = Map<FeatureKey, { w: number; carriers: number }>;

export interface DefaultEngineOptions {
  /** Features of the seed or profile used to find candidates (the most informative first). */
  maxFeatures: number;
  /** Media read per feature's posting list (newest first). */
  postingCap: number;
  /** Half-life of the recency boost, in days. */
  recencyHalfLifeDays: number;
  /** How long document frequencies, the media count and posting lists are cached per process. */
  statsTtlMs: number;
  /** Posting lists kept per process (each up to `postingCap` ids), the least recently used dropped first. */
  postingCacheSize: number;
}

const DEFAULTS: DefaultEngineOptions = { maxFeatures: 8, postingCap: 400, recencyHalfLifeDays: 30, statsTtlMs: 60_000, postingCacheSize: 512 };

const PROFILE_UPLOADS = 50;
const PROFILE_VIEWS = 100;
/** Media counts and document frequencies kept per process. */
const STATS_CACHE_SIZE = 50_000;

interface Posting {
  mediaId: string;
  weight: number;
}

/**
 * Content-based recommendations from shared labels and tags.
 *
 * score(candidate) = Σ over shared features f of w_seed(f) × w_cand(f) × idf(f), idf = ln(N / df),
 * times a recency factor 0.5 + 0.5 × 2^(−age / half-life). Candidates come from the posting lists
 * of the seed's most informative features (highest w × idf), each capped, so the cost is bounded
 * whatever the library size. Document frequencies and posting lists are cached per process for a
 * minute (popular features serve many seeds): media labelled or tagged since may take that long to
 * be recommended, while visibility is always checked fresh, so deleted or held media never are.
 */
export class DefaultRecommendationEngine implements RecommendationEngine {
  readonly name = 'default';
  private readonly opts: DefaultEngineOptions;
  /** The media count and document frequencies, by tenant. */
  private readonly stats: RecordCache<number>;
  private readonly postingLists: RecordCache<readonly Posting[]>;

  constructor(
    private readonly db: Db,
    opts: Partial<DefaultEngineOptions> = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
    this.stats = new RecordCache(this.opts.statsTtlMs, STATS_CACHE_SIZE);
    this.postingLists = new RecordCache(this.opts.statsTtlMs, this.opts.postingCacheSize);
  }

  async related(tenantId: string, mediaId: string, limit: number): Promise<string[]> {
    const profile = await this.featuresOf(tenantId, [mediaId]);
    return this.rank(tenantId, profile, limit, { excludeIds: [mediaId] });
  }

  async forUser(tenantId: string, userId: string, limit: number): Promise<string[]> {
    const own = await this.db
      .selectFrom('mediaassets')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('user_id', '=', userId)
      .orderBy('created_at', 'desc')
      .limit(PROFILE_UPLOADS)
      .execute();
    const viewed = await this.db
      .selectFrom('media_views')
      .select('media_id')
      .where('tenant_id', '=', tenantId)
      .where('user_id', '=', userId)
      .orderBy('last_viewed_at', 'desc')
      .limit(PROFILE_VIEWS)
      .execute();
    const ids = [...new Set([...own.map((r) => r.id), ...viewed.map((r) => r.media_id)])];
    if (!ids.length) return [];
    const profile = await this.featuresOf(tenantId, ids);
    // The profile's own media score highest of all: dropped before ranking, so they cannot crowd out the rest.
    return this.rank(tenantId, profile, limit, { excludeIds: ids, excludeUserId: userId });
  }

  /**
   * Summed feature weights of some media (labels by their highest confidence over sources, tags
   * 1), and how many of them carry each feature.
   */
  private async featuresOf(tenantId: string, mediaIds: string[]): Promise<Profile> {
    const out: Profile = new Map();
    const add = (f: FeatureKey, w: number) => {
      const cur = out.get(f);
      out.set(f, { w: (cur?.w ?? 0) + w, carriers: (cur?.carriers ?? 0) + 1 });
    };
    const labels = await this.db
      .selectFrom('asset_labels as al')
      .innerJoin('labels as l', 'l.id', 'al.label_id')
      .select(['al.label_id', (eb) => eb.fn.max('al.confidence').as('confidence')])
      .where('al.tenant_id', '=', tenantId)
      .where('al.media_id', 'in', mediaIds)
      .where('l.kind', '=', 'general')
      .groupBy(['al.media_id', 'al.label_id'])
      .execute();
    for (const l of labels) add(labelKey(l.label_id), Number(l.confidence));
    const tags = await this.db.selectFrom('media_tags').select('tag').where('tenant_id', '=', tenantId).where('media_id', 'in', mediaIds).execute();
    for (const t of tags) add(tagKey(t.tag), 1);
    return out;
  }

  private mediaCount(tenantId: string): Promise<number> {
    return this.stats.get(tenantId, 'n', async () => {
      const r = await this.db
        .selectFrom('mediaassets')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('tenant_id', '=', tenantId)
        .executeTakeFirst();
      return Number(r?.n ?? 0);
    });
  }

  private documentFrequency(tenantId: string, f: FeatureKey): Promise<number> {
    return this.stats.get(tenantId, `df:${f}`, async () => {
      const r = f.startsWith('l:')
        ? await this.db
            .selectFrom('asset_labels')
            .select((eb) => eb.fn.count<number>('media_id').distinct().as('n'))
            .where('tenant_id', '=', tenantId)
            .where('label_id', '=', f.slice(2))
            .executeTakeFirst()
        : await this.db
            .selectFrom('media_tags')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('tenant_id', '=', tenantId)
            .where('tag', '=', f.slice(2))
            .executeTakeFirst();
      return Number(r?.n ?? 0);
    });
  }

  private postings(tenantId: string, f: FeatureKey): Promise<readonly Posting[]> {
    return this.postingLists.get(tenantId, f, () => this.readPostings(tenantId, f));
  }

  private async readPostings(tenantId: string, f: FeatureKey): Promise<Posting[]> {
    if (f.startsWith('l:')) {
      const rows = await this.db
        .selectFrom('asset_labels')
        .select(['media_id', (eb) => eb.fn.max('confidence').as('confidence')])
        .where('tenant_id', '=', tenantId)
        .where('label_id', '=', f.slice(2))
        .groupBy('media_id')
        .orderBy('media_id', 'desc')
        .limit(this.opts.postingCap)
        .execute();
      return rows.map((r) => ({ mediaId: r.media_id, weight: Number(r.confidence) }));
    }
    const rows = await this.db
      .selectFrom('media_tags')
      .select('media_id')
      .where('tenant_id', '=', tenantId)
      .where('tag', '=', f.slice(2))
      .orderBy('media_id', 'desc')
      .limit(this.opts.postingCap)
      .execute();
    return rows.map((r) => ({ mediaId: r.media_id, weight: 1 }));
  }

  private async rank(tenantId: string, profile: Profile, limit: number, exclude: { excludeIds?: string[]; excludeUserId?: string }): Promise<string[]> {
    if (!profile.size || limit < 1) return [];
    const n = await this.mediaCount(tenantId);
    const weighted: { f: FeatureKey; w: number; idf: number }[] = [];
    for (const [f, { w, carriers }] of profile) {
      const df = await this.documentFrequency(tenantId, f);
      // A feature only the seed (or profile) has cannot find anything; one everything has says nothing.
      if (df <= carriers) continue;
      weighted.push({ f, w, idf: Math.log(Math.max(n, df + 1) / df) });
    }
    weighted.sort((a, b) => b.w * b.idf - a.w * a.idf);
    const scores = new Map<string, number>();
    for (const { f, w, idf } of weighted.slice(0, this.opts.maxFeatures)) {
      if (idf <= 0) continue;
      for (const p of await this.postings(tenantId, f)) scores.set(p.mediaId, (scores.get(p.mediaId) ?? 0) + w * p.weight * idf);
    }
    for (const id of exclude.excludeIds ?? []) scores.delete(id);
    const ordered = [...scores.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : -1));
    const now = Date.now();
    const halfLifeMs = this.opts.recencyHalfLifeDays * 86_400_000;
    const found: { id: string; score: number }[] = [];
    // Visibility is checked a slice at a time, the slices growing, until enough candidates pass.
    let size = Math.max(limit * 3, 50);
    for (let start = 0; start < ordered.length && found.length < limit; start += size, size *= 2) {
      for (const r of await this.visibleCandidates(
        tenantId,
        ordered.slice(start, start + size).map(([id]) => id),
        exclude.excludeUserId,
      )) {
        const age = Math.max(0, now - Date.parse(r.created_at));
        found.push({ id: r.id, score: scores.get(r.id)! * (0.5 + 0.5 * 2 ** (-age / halfLifeMs)) });
      }
    }
    return found
      .sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : -1))
      .slice(0, limit)
      .map((r) => r.id);
  }

  /** The candidates anyone may see, less the user's own media and what they viewed. */
  private async visibleCandidates(tenantId: string, ids: string[], excludeUserId?: string): Promise<{ id: string; created_at: string }[]> {
    let q = this.db
      .selectFrom('mediaassets as m')
      .select(['m.id', 'm.created_at'])
      .where('m.tenant_id', '=', tenantId)
      .where('m.id', 'in', ids)
      .where(publiclyVisible('m'));
    if (excludeUserId) {
      q = q
        .where('m.user_id', '<>', excludeUserId)
        .where(sql<boolean>`not exists (select 1 from media_views v where v.tenant_id = ${tenantId} and v.user_id = ${excludeUserId} and v.media_id = m.id)`);
    }
    return q.execute();
  }
}
