import type { Db, DatabaseHandle } from '../db/database.js';
import { sql } from 'kysely';
import { AppError } from '../shared/errors.js';
import type { RecommendationService } from '../recommendations/recommendation-service.js';
import { decodeCursor, encodeCursor, fingerprintOf } from '../search/cursor.js';
import type { SearchParams, SearchService } from '../search/search-service.js';
import { publiclyVisible } from '../access/visibility-sql.js';
import type { Principal } from '../tenancy/principal.js';
import type { FeedItem, FeedItemBuilder } from './feed-items.js';

export interface FeedPage {
  items: FeedItem[];
  next_cursor: string | null;
}

/** The recommended feed ranks at most this many media; past it, the cursor ends. */
export const MAX_RECOMMENDED = 500;

const NEW_FEED = fingerprintOf('feed:new');

/**
 * Feeds: only `ready` media moderation has not held or rejected, every item in one shape.
 * new — newest first, keyset (created_at, id); search — search results; recommended — the
 * recommendation engine's ranking for the caller, then the newest media new to them (backfill),
 * or the new feed while the engine has nothing to say.
 */
export class FeedService {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly items: FeedItemBuilder,
    private readonly search: SearchService,
    private readonly recommendations: RecommendationService,
  ) {}

  private get db(): Db {
    return this.handle.db;
  }

  async newest(p: Principal, limit: number, baseUrl: string, cursor?: string): Promise<FeedPage> {
    const after = cursor ? parseNewCursor(decodeCursor(cursor, NEW_FEED)) : undefined;
    const ids = await this.newestIds(p.tenantId, limit + 1, after);
    const page = ids.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: await this.items.build(
        p,
        page.map((r) => r.id),
        baseUrl,
      ),
      next_cursor: ids.length > limit && last ? encodeCursor(NEW_FEED, [last.created_at, last.id]) : null,
    };
  }

  /**
   * The newest media anyone may see; with `newTo`, only those that user neither uploaded nor
   * opened, and none of `except` (what their recommended feed already showed).
   */
  private async newestIds(tenantId: string, limit: number, after?: { createdAt: string; id: string }, newTo?: { userId: string; except: readonly string[] }) {
    // SQLite would otherwise pick the (tenant, status, moderation_state, created_at) index and sort.
    const from = this.handle.dialect === 'sqlite' ? sql`mediaassets as m indexed by mediaassets_tenant_status_created_idx` : sql`mediaassets as m`;
    const keyset = after ? sql`and (m.created_at < ${after.createdAt} or (m.created_at = ${after.createdAt} and m.id < ${after.id}))` : sql``;
    const unseen = newTo
      ? sql`and m.user_id <> ${newTo.userId}
          and not exists (select 1 from media_views v where v.tenant_id = ${tenantId} and v.user_id = ${newTo.userId} and v.media_id = m.id)
          ${newTo.except.length ? sql`and m.id not in (${sql.join(newTo.except)})` : sql``}`
      : sql``;
    const res = await sql<{ id: string; created_at: string }>`
      select m.id, m.created_at from ${from}
      where m.tenant_id = ${tenantId} and ${publiclyVisible('m')} ${keyset} ${unseen}
      order by m.created_at desc, m.id desc
      limit ${limit}`.execute(this.db);
    return res.rows;
  }

  async searchFeed(p: Principal, params: SearchParams, baseUrl: string): Promise<FeedPage> {
    const page = await this.search.search(p, params, { kind: 'feed' });
    return {
      items: await this.items.build(
        p,
        page.hits.map((h) => h.mediaId),
        baseUrl,
        { facts: page.facts },
      ),
      next_cursor: page.next_cursor,
    };
  }

  /** Search results (a member's view: their own media that is not ready or held too) as items with a score (none when no words were searched). */
  async searchResults(p: Principal, params: SearchParams, baseUrl: string): Promise<FeedPage> {
    const page = await this.search.search(p, params, { kind: 'member', userId: p.userId, isAdmin: p.isAdmin });
    const audience = { kind: 'member', userId: p.userId, isAdmin: p.isAdmin } as const;
    // A search without words lists newest first: its items have no score.
    const scores = page.byRelevance ? new Map(page.hits.map((h) => [h.mediaId, h.score])) : undefined;
    return {
      items: await this.items.build(
        p,
        page.hits.map((h) => h.mediaId),
        baseUrl,
        { audience, facts: page.facts, ...(scores ? { scores } : {}) },
      ),
      next_cursor: page.next_cursor,
    };
  }

  async related(p: Principal, mediaId: string, limit: number, baseUrl: string): Promise<FeedPage> {
    const ids = await this.recommendations.related(p, mediaId, limit);
    return { items: await this.items.build(p, ids, baseUrl), next_cursor: null };
  }

  /**
   * The caller's recommendations, paged by position in the ranking (recomputed per page, so a
   * view in between may reorder what is left). A ranking that ends before MAX_RECOMMENDED is
   * followed by the newest media the user neither uploaded nor opened (backfill), so a short
   * ranking never makes a short feed. While the engine has nothing for the user it is the new
   * feed, and its cursor stays a new-feed cursor.
   */
  async recommended(p: Principal, limit: number, baseUrl: string, cursor?: string): Promise<FeedPage> {
    const fp = fingerprintOf(['feed:recommended', p.tenantId, p.userId]);
    let offset = 0;
    if (cursor) {
      const [mode, ...rest] = decodeCursor(cursor, fp);
      if (mode === 'new') return this.recommendedFallback(p, limit, baseUrl, fp, parseNewCursor(rest));
      if (mode === 'fill') {
        const at = parseFillCursor(rest);
        // The ranking again, to leave out what its pages showed (as costly as a ranked page).
        const ranked = at.ranked ? await this.recommendations.forUser(p, at.ranked) : [];
        return this.backfilled(p, limit, baseUrl, fp, ranked, [], at.after);
      }
      if (mode !== 'rank' || !Number.isInteger(rest[0]) || (rest[0] as number) < 0) throw new AppError('validation-failed', 'cursor is not valid');
      offset = rest[0] as number;
    }
    const want = Math.min(offset + limit + 1, MAX_RECOMMENDED);
    const ranked = offset < MAX_RECOMMENDED ? await this.recommendations.forUser(p, want) : [];
    if (!cursor && !ranked.length) return this.recommendedFallback(p, limit, baseUrl, fp);
    const page = ranked.slice(offset, offset + limit);
    if (ranked.length > offset + limit) {
      return { items: await this.items.build(p, page, baseUrl), next_cursor: encodeCursor(fp, ['rank', offset + page.length]) };
    }
    // The ranking ends here. A ranking that reached MAX_RECOMMENDED is a feed long enough.
    if (ranked.length >= MAX_RECOMMENDED) return { items: await this.items.build(p, page, baseUrl), next_cursor: null };
    return this.backfilled(p, limit, baseUrl, fp, ranked, page);
  }

  /**
   * A page of the recommended feed after its ranking ended: `head` (the ranking's last items, if
   * any), then the newest media the user neither uploaded nor opened and the ranking does not
   * hold, continuing after `after`.
   */
  private async backfilled(
    p: Principal,
    limit: number,
    baseUrl: string,
    fp: string,
    ranked: readonly string[],
    head: readonly string[],
    after?: { createdAt: string; id: string },
  ): Promise<FeedPage> {
    const need = limit - head.length;
    // One more than needed tells whether a page follows (when the head fills this one: whether the backfill has anything).
    const rows = await this.newestIds(p.tenantId, need + 1, after, { userId: p.userId, except: ranked });
    const fill = rows.slice(0, need);
    const last = fill[fill.length - 1];
    return {
      items: await this.items.build(p, [...head, ...fill.map((r) => r.id)], baseUrl),
      next_cursor: rows.length > need ? encodeCursor(fp, ['fill', ranked.length, ...(last ? [last.created_at, last.id] : [])]) : null,
    };
  }

  private async recommendedFallback(p: Principal, limit: number, baseUrl: string, fp: string, after?: { createdAt: string; id: string }): Promise<FeedPage> {
    const ids = await this.newestIds(p.tenantId, limit + 1, after);
    const page = ids.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: await this.items.build(
        p,
        page.map((r) => r.id),
        baseUrl,
      ),
      next_cursor: ids.length > limit && last ? encodeCursor(fp, ['new', last.created_at, last.id]) : null,
    };
  }
}

/** A backfill position: how long the ranking before it was, and the last media shown (none: from the newest). */
function parseFillCursor(state: unknown[]): { ranked: number; after?: { createdAt: string; id: string } } {
  const [ranked, ...position] = state;
  if (!Number.isInteger(ranked) || (ranked as number) < 0 || (ranked as number) >= MAX_RECOMMENDED)
    throw new AppError('validation-failed', 'cursor is not valid');
  return { ranked: ranked as number, ...(position.length ? { after: parseNewCursor(position) } : {}) };
}

function parseNewCursor(state: unknown[]): { createdAt: string; id: string } {
  const [createdAt, id] = state;
  if (typeof createdAt !== 'string' || typeof id !== 'string') throw new AppError('validation-failed', 'cursor is not valid');
  return { createdAt, id };
}
