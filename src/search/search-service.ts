import type { Db } from '../db/database.js';
import { factsMatch, type MediaFacts, type MediaFactsSource } from './media-facts.js';
import type { MediaKind, MediaStatus } from '../db/schema.js';
import { nowIso } from '../db/schema.js';
import { AppError } from '../shared/errors.js';
import { labelFilterIds } from '../labels/hierarchy.js';
import type { Principal } from '../tenancy/principal.js';
import { decodeCursor, encodeCursor, fingerprintOf } from './cursor.js';
import { saveSnapshot, loadSnapshot } from './snapshots.js';
import type { IndexQuery, SearchFilters, SearchHit, SearchIndex } from './search-index.js';
import { SearchResultCache } from '../cache/result-cache.js';
import { parseQuery, type ParsedQuery } from './text.js';
import { newestMatching, type ListPosition } from './filtered-list.js';
import type { Audience } from '../access/visibility.js';

export interface SearchParams {
  /** Words to find. Without them the search lists the media passing its filters, newest first (it needs one filter then). */
  q?: string;
  kind?: MediaKind;
  status?: MediaStatus;
  /** A label name or synonym; media with it or any descendant label match. */
  label?: string;
  /** created_at from (inclusive) and to (exclusive), ISO-8601. */
  from?: string;
  to?: string;
  limit: number;
  cursor?: string;
}

export interface SearchPage {
  hits: SearchHit[];
  /** Whether the hits are ranked by relevance (words were searched for); otherwise newest first, and their scores mean nothing. */
  byRelevance: boolean;
  next_cursor: string | null;
  /** The facts of the hits as re-checked for this request (items are built from them). */
  facts?: ReadonlyMap<string, MediaFacts>;
}

function isoOrThrow(value: string | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (!Number.isFinite(t)) throw new AppError('validation-failed', `${field}: expected an ISO-8601 date or date-time`);
  return new Date(t).toISOString();
}

/** A search pages through at most this many of its best results. */
export const MAX_SEARCH_RESULTS = 500;

type KeysetPosition = { kind: 'keyset'; asOf: string; shown: number; score: number; id: string };
type Position = KeysetPosition | { kind: 'snapshot'; snapshotId: string; position: number };

function parseListPosition(state: unknown[]): ListPosition {
  const [kind, createdAt, id] = state;
  if (kind === 'n' && typeof createdAt === 'string' && typeof id === 'string') return { createdAt, id };
  throw new AppError('validation-failed', 'cursor is not valid');
}

function parsePosition(state: unknown[]): Position {
  const [kind, a, b, c, d] = state;
  if (
    kind === 'k' &&
    typeof a === 'string' &&
    Number.isInteger(b) &&
    (b as number) > 0 &&
    (b as number) < MAX_SEARCH_RESULTS &&
    typeof c === 'number' &&
    typeof d === 'string'
  ) {
    return { kind: 'keyset', asOf: a, shown: b as number, score: c, id: d };
  }
  if (kind === 's' && typeof a === 'string' && Number.isInteger(b) && (b as number) >= 0) return { kind: 'snapshot', snapshotId: a, position: b as number };
  throw new AppError('validation-failed', 'cursor is not valid');
}

/** A first page as ranked: every ranked hit and the snapshot later pages read (engines without stable scores), or the page itself (keyset). */
export type CachedSearch = { ranked: SearchHit[]; snapshotId: string | null } | { page: SearchPage };

/**
 * Full-text search of a tenant's media, ranked by relevance, paged stably: a page never repeats
 * or skips a result of an earlier page of the same search, whatever is written in between.
 *
 * - Engines whose scores depend on the document and query only (PostgreSQL) continue after the
 *   last (score, id), among media created up to the first page's instant.
 * - Otherwise (SQLite's bm25 moves with every write) the first page ranks the best
 *   MAX_SEARCH_RESULTS results once and keeps the ranking in a snapshot that later pages read;
 *   media deleted, hidden or no longer matching the filters since are left out.
 * A first page may come from a ranking made a moment ago (SearchResultCache), re-filtered too.
 * A search with filters but no words has no relevance to rank by: it lists the media passing the
 * filters newest first, by keyset on (created_at, id).
 * The cursor carries the position and a fingerprint of the query and filters.
 */
export class SearchService {
  constructor(
    private readonly db: Db,
    private readonly index: SearchIndex,
    private readonly facts: MediaFactsSource,
    private readonly maxQueryLength: number,
    private readonly cache = new SearchResultCache<CachedSearch>(0),
  ) {}

  async search(p: Principal, params: SearchParams, audience: Audience): Promise<SearchPage> {
    const query: ParsedQuery | null = params.q === undefined ? null : parseQuery(params.q, this.maxQueryLength);
    const from = isoOrThrow(params.from, 'from');
    const to = isoOrThrow(params.to, 'to');
    if (from && to && from >= to) throw new AppError('validation-failed', 'from: must be before to');
    const status = audience.kind === 'feed' ? 'ready' : (params.status ?? 'ready');
    const label = params.label?.trim();
    const filtered = params.kind !== undefined || params.label !== undefined || params.status !== undefined || from !== undefined || to !== undefined;
    if (!query && !filtered) throw new AppError('validation-failed', 'q: required unless the search has a filter (kind, label, status, from, to)');
    const fingerprint = fingerprintOf([query, params.kind, status, label, from, to, audience.kind]);

    const labelIds = label !== undefined ? await labelFilterIds(this.db, p.tenantId, label) : undefined;
    const filters: SearchFilters = {
      ...(params.kind ? { kind: params.kind } : {}),
      status,
      ...(labelIds ? { labelIds } : {}),
      ...(from ? { createdFrom: from } : {}),
      ...(to ? { createdTo: to } : {}),
    };
    if (!query) {
      const after = params.cursor ? parseListPosition(decodeCursor(params.cursor, fingerprint)) : undefined;
      return this.newest({ tenantId: p.tenantId, filters, audience }, fingerprint, params.limit, after);
    }
    const position = params.cursor ? parsePosition(decodeCursor(params.cursor, fingerprint)) : undefined;
    const base = { tenantId: p.tenantId, query, filters, audience };

    if (position && (position.kind === 'keyset') !== this.index.stableScores) throw new AppError('validation-failed', 'cursor is not valid');
    if (position?.kind === 'snapshot') return this.fromSnapshot(base, fingerprint, position, params.limit);
    if (position) return this.byKeyset(base, fingerprint, position, params.limit);

    // The first page: ranked now, or read from a ranking made a moment ago (re-filtered).
    const who = audience.kind === 'member' ? [audience.userId, audience.isAdmin] : null;
    const cacheKey = JSON.stringify([fingerprint, labelIds ?? null, who, this.index.stableScores ? params.limit : 0]);
    const cached = await this.cache.get(p.tenantId, cacheKey, async () => {
      if (this.index.stableScores) return { page: await this.byKeyset(base, fingerprint, undefined, params.limit) };
      const ranked = await this.index.search({ ...base, asOf: nowIso(), limit: MAX_SEARCH_RESULTS });
      return { ranked, snapshotId: null };
    });
    // Re-filtered even when just ranked: the ranking may be a moment old, or shared with another caller.
    if ('page' in cached) {
      const matching = await this.stillMatching(base, cached.page.hits);
      return { hits: cached.page.hits.filter((h) => matching.has(h.mediaId)), byRelevance: true, next_cursor: cached.page.next_cursor, facts: matching };
    }
    // Saved once the ranking is longer than a page asked for (whichever caller's page size ranked
    // it), and kept with it: a repeated search hands out cursors into the same snapshot.
    if (cached.snapshotId === null && cached.ranked.length > params.limit) {
      cached.snapshotId = await saveSnapshot(this.db, p.tenantId, fingerprint, cached.ranked);
    }
    return this.walk(base, fingerprint, cached.ranked, cached.snapshotId, 0, params.limit);
  }

  private async byKeyset(
    base: Omit<IndexQuery, 'asOf' | 'after' | 'limit'>,
    fingerprint: string,
    at: KeysetPosition | undefined,
    pageSize: number,
  ): Promise<SearchPage> {
    const asOf = at?.asOf ?? nowIso();
    const shown = at?.shown ?? 0;
    const limit = Math.min(pageSize, MAX_SEARCH_RESULTS - shown);
    const hits = await this.index.search({ ...base, asOf, limit: limit + 1, ...(at ? { after: { score: at.score, id: at.id } } : {}) });
    const page = hits.slice(0, limit);
    const last = page[page.length - 1];
    const more = hits.length > limit && shown + page.length < MAX_SEARCH_RESULTS;
    return {
      hits: page,
      byRelevance: true,
      next_cursor: more && last ? encodeCursor(fingerprint, ['k', asOf, shown + page.length, last.score, last.mediaId]) : null,
    };
  }

  private async fromSnapshot(
    base: Pick<IndexQuery, 'tenantId' | 'filters' | 'audience'>,
    fingerprint: string,
    at: { snapshotId: string; position: number },
    limit: number,
  ): Promise<SearchPage> {
    const hits = await loadSnapshot(this.db, base.tenantId, fingerprint, at.snapshotId);
    if (!hits) throw new AppError('validation-failed', 'cursor has expired; search again');
    return this.walk(base, fingerprint, hits, at.snapshotId, at.position, limit);
  }

  /**
   * A search without words: the media passing its filters, newest first, read fresh on every
   * page (a keyset query costs no more than re-checking a cached list would).
   */
  private async newest(
    base: Pick<IndexQuery, 'tenantId' | 'filters' | 'audience'>,
    fingerprint: string,
    limit: number,
    after?: ListPosition,
  ): Promise<SearchPage> {
    const rows = await newestMatching(this.db, base, limit + 1, after);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      hits: page.map((r) => ({ mediaId: r.id, score: 0 })),
      byRelevance: false,
      next_cursor: rows.length > limit && last ? encodeCursor(fingerprint, ['n', last.created_at, last.id]) : null,
    };
  }

  /** A page of a ranking from `position` on, leaving out media deleted, hidden or no longer matching since. */
  private async walk(
    base: Pick<IndexQuery, 'tenantId' | 'filters' | 'audience'>,
    fingerprint: string,
    hits: SearchHit[],
    snapshotId: string | null,
    position: number,
    limit: number,
  ): Promise<SearchPage> {
    const page: SearchHit[] = [];
    const facts = new Map<string, MediaFacts>();
    let next = position;
    while (page.length < limit && next < hits.length) {
      const candidates = hits.slice(next, next + limit - page.length);
      const matching = await this.stillMatching(base, candidates);
      for (const [id, m] of matching) facts.set(id, m);
      page.push(...candidates.filter((h) => matching.has(h.mediaId)));
      next += candidates.length;
    }
    return {
      hits: page,
      byRelevance: true,
      next_cursor: snapshotId && next < hits.length ? encodeCursor(fingerprint, ['s', snapshotId, next]) : null,
      facts,
    };
  }

  /** The facts of those hits that still pass the search's filters and visibility (deleted, hidden or changed media are left out). */
  private async stillMatching(base: Pick<IndexQuery, 'tenantId' | 'filters' | 'audience'>, hits: readonly SearchHit[]): Promise<Map<string, MediaFacts>> {
    const facts = await this.facts.get(
      base.tenantId,
      hits.map((h) => h.mediaId),
    );
    return new Map([...facts].filter(([, m]) => factsMatch(base, m)));
  }
}
