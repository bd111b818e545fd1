import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { RecordCache } from '../cache/record-cache.js';
import { publiclyVisible } from '../access/visibility-sql.js';
import { ancestorChain, type LabelRef } from '../labels/hierarchy.js';
import type { RecommendationEngine } from './engine.js';

/**
 * The tenant's label hierarchy as the engine reads it (the LabelDirectory): a media labelled with
 * a label counts as labelled with its ancestors, at a lower weight per level.
 */
export interface LabelHierarchy {
  withAncestors(tenantId: string, labelIds: readonly string[]): Promise<ReadonlyMap<string, LabelRef>>;
  withDescendants(tenantId: string, labelId: string, limit: number): Promise<ReadonlyMap<string, number>>;
}

/**
 * What a label counts for, per level up, on a media labelled with a descendant of it: deer ← animal
 * makes a deer media count as an animal one at half its confidence. Two siblings (deer and whale)
 * share only their parent, each at half weight, so they relate at a quarter of what a shared label
 * of the same rarity gives; media sharing a label share its ancestors too, so they always rank above.
 */
export const ANCESTOR_WEIGHT = 0.5;

/**
 * Most labels one label feature reads (itself and its nearest descendants): a label with more is
 * general enough to say little (its document frequency is high), and its posting list stays one
 * bounded query.
 */
export const MAX_FEATURE_LABELS = 500;

/**
 * A feature of a media: a general label (weighted by its confidence), implied by the label itself
 * or one of its descendants (at ANCESTOR_WEIGHT per level), or a user tag (weight 1).
 */
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
 * Content-based recommendations from shared labels and tags. A label stands for its ancestors too
 * (ANCESTOR_WEIGHT per level), so media labelled with siblings (deer and whale under animal) are
 * related, below media sharing a label.
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
    /** Without one, labels are features of their own only (no hierarchy). */
    private readonly labels?: LabelHierarchy,
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
   * Summed feature weights of some media (labels by their highest confidence over sources, their
   * ancestors at ANCESTOR_WEIGHT per level, tags 1), and how many of them carry each feature.
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
      .select(['al.media_id', 'al.label_id', (eb) => eb.fn.max('al.confidence').as('confidence')])
      .where('al.tenant_id', '=', tenantId)
      .where('al.media_id', 'in', mediaIds)
      .where('l.kind', '=', 'general')
      .groupBy(['al.media_id', 'al.label_id'])
      .execute();
    const nodes = this.labels && labels.length ? await this.labels.withAncestors(tenantId, [...new Set(labels.map((l) => l.label_id))]) : new Map();
    // Per media, each label it is labelled with or implies, at its best weight: a media labelled deer and whale is one animal.
    const implied = new Map<string, Map<string, number>>();
    for (const l of labels) {
      const own = implied.get(l.media_id) ?? new Map<string, number>();
      implied.set(l.media_id, own);
      // An alias (a label named like a bank phrase) is the label it stands for, at the same weight.
      const chain = ancestorChain(l.label_id, nodes).filter((n: LabelRef) => !n.alias_of);
      const ids = chain.length ? chain.map((n: LabelRef) => n.id) : [l.label_id];
      ids.forEach((id, depth) => {
        const w = Number(l.confidence) * ANCESTOR_WEIGHT ** depth;
        if (w > (own.get(id) ?? 0)) own.set(id, w);
      });
    }
    for (const own of implied.values()) for (const [id, w] of own) add(labelKey(id), w);
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

  /** The label and its descendants a label feature stands for, each with its weight factor (ANCESTOR_WEIGHT per level). */
  private async featureLabels(tenantId: string, labelId: string): Promise<Map<string, number>> {
    const depths = this.labels ? await this.labels.withDescendants(tenantId, labelId, MAX_FEATURE_LABELS) : undefined;
    if (!depths?.size) return new Map([[labelId, 1]]);
    return new Map([...depths].map(([id, depth]) => [id, ANCESTOR_WEIGHT ** depth]));
  }

  private documentFrequency(tenantId: string, f: FeatureKey): Promise<number> {
    return this.stats.get(tenantId, `df:${f}`, async () => {
      const r = f.startsWith('l:')
        ? await this.db
            .selectFrom('asset_labels')
            .select((eb) => eb.fn.count<number>('media_id').distinct().as('n'))
            .where('tenant_id', '=', tenantId)
            .where('label_id', 'in', [...(await this.featureLabels(tenantId, f.slice(2))).keys()])
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

  /**
   * The newest media carrying a feature, with their weight for it. A label's list holds the media
   * labelled with it or any descendant (MAX_FEATURE_LABELS at most), each by its best confidence
   * times ANCESTOR_WEIGHT per level between the two, in one query.
   */
  private async readPostings(tenantId: string, f: FeatureKey): Promise<Posting[]> {
    if (f.startsWith('l:')) {
      const factors = await this.featureLabels(tenantId, f.slice(2));
      if (factors.size === 1) {
        // A label without descendants (most are): read in index order, stopping at the cap.
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
      const byFactor = new Map<number, string[]>();
      for (const [id, factor] of factors) byFactor.set(factor, [...(byFactor.get(factor) ?? []), id]);
      // The factors are numbers this module computed (powers of ANCESTOR_WEIGHT), inlined as literals.
      const factor = sql`case ${sql.join(
        [...byFactor].map(([value, ids]) => sql`when al.label_id in (${sql.join(ids)}) then ${sql.lit(value)}`),
        sql` `,
      )} else 0 end`;
      const rows = await sql<{ media_id: string; weight: number }>`
        select al.media_id, max(al.confidence * ${factor}) as weight from asset_labels al
        where al.tenant_id = ${tenantId} and al.label_id in (${sql.join([...factors.keys()])})
        group by al.media_id
        order by al.media_id desc
        limit ${this.opts.postingCap}`.execute(this.db);
      return rows.rows.map((r) => ({ mediaId: r.media_id, weight: Number(r.weight) }));
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
