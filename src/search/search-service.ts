import type { Db } from '../db/database.js';
import type { MediaKind, MediaStatus } from '../db/schema.js';
import { nowIso } from '../db/schema.js';
import { AppError } from '../errors.js';
import { labelIdsMatchingTerm } from '../labels/hierarchy.js';
import type { Principal } from '../tenancy/principal.js';
import { decodeCursor, encodeCursor, fingerprintOf } from './cursor.js';
import type { SearchHit, SearchIndex } from './search-index.js';
import { parseQuery } from './text.js';
import type { Audience } from './visibility.js';

export interface SearchParams {
  q: string;
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
  next_cursor: string | null;
}

function isoOrThrow(value: string | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (!Number.isFinite(t)) throw new AppError('validation-failed', `${field}: expected an ISO-8601 date or date-time`);
  return new Date(t).toISOString();
}

/**
 * Full-text search of a tenant's media, ranked by relevance.
 *
 * Pages are pinned to the first page's instant: media created after it never shift later pages
 * (a new search sees them). The cursor carries that instant, the position and last (score, id)
 * reached, and a fingerprint of the query and filters.
 */
export class SearchService {
  constructor(
    private readonly db: Db,
    private readonly index: SearchIndex,
    private readonly maxQueryLength: number,
  ) {}

  async search(p: Principal, params: SearchParams, audience: Audience): Promise<SearchPage> {
    const query = parseQuery(params.q, this.maxQueryLength);
    const from = isoOrThrow(params.from, 'from');
    const to = isoOrThrow(params.to, 'to');
    if (from && to && from >= to) throw new AppError('validation-failed', 'from: must be before to');
    const status = audience.kind === 'feed' ? 'ready' : (params.status ?? 'ready');
    const label = params.label?.trim();
    const fingerprint = fingerprintOf([query, params.kind, status, label, from, to, audience.kind]);

    let asOf = nowIso();
    let after: { score: number; id: string; offset: number } | undefined;
    if (params.cursor) {
      const [at, offset, score, id] = decodeCursor(params.cursor, fingerprint);
      if (typeof at !== 'string' || !Number.isInteger(offset) || (offset as number) < 1 || typeof score !== 'number' || typeof id !== 'string') {
        throw new AppError('validation-failed', 'cursor is not valid');
      }
      asOf = at;
      after = { score, id, offset: offset as number };
    }
    const labelIds = label ? await labelIdsMatchingTerm(this.db, p.tenantId, label) : undefined;
    const hits = await this.index.search({
      tenantId: p.tenantId,
      query,
      filters: {
        ...(params.kind ? { kind: params.kind } : {}),
        status,
        ...(labelIds ? { labelIds } : {}),
        ...(from ? { createdFrom: from } : {}),
        ...(to ? { createdTo: to } : {}),
      },
      audience,
      asOf,
      ...(after ? { after } : {}),
      limit: params.limit + 1,
    });
    const page = hits.slice(0, params.limit);
    const last = page[page.length - 1];
    return {
      hits: page,
      next_cursor: hits.length > params.limit && last ? encodeCursor(fingerprint, [asOf, (after?.offset ?? 0) + page.length, last.score, last.mediaId]) : null,
    };
  }
}
