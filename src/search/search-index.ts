import { createHash } from 'node:crypto';
import { sql, type RawBuilder } from 'kysely';
import type { Db, DatabaseHandle } from '../db/database.js';
import type { MediaKind, MediaStatus } from '../db/schema.js';
import { nowIso } from '../db/schema.js';
import type { SearchDocument } from './documents.js';
import { fts5Expression, tsQueryExpression, type ParsedQuery } from './text.js';
import { visibleTo } from '../access/visibility-sql.js';
import type { Audience } from '../access/visibility.js';

export interface SearchFilters {
  kind?: MediaKind;
  status?: MediaStatus;
  /** The media must carry one of these labels (a label and its descendants). */
  labelIds?: string[];
  createdFrom?: string;
  createdTo?: string;
}

export interface IndexQuery {
  tenantId: string;
  query: ParsedQuery;
  filters: SearchFilters;
  audience: Audience;
  /** Only media created up to this instant: later pages of a search ignore media added since its first. */
  asOf: string;
  /** Where the previous page ended (engines with stable scores only): continue after this (score, id). */
  after?: { score: number; id: string };
  limit: number;
}

export interface SearchHit {
  mediaId: string;
  /** Higher is more relevant; only comparable within one query. */
  score: number;
}

/** A full-text index of media documents, kept in the application database. */
export interface SearchIndex {
  /**
   * Whether a media's score depends on its document and the query only, so that a keyset on
   * (score, id) pages stably. Otherwise later pages are read from a snapshot of the ranking.
   */
  readonly stableScores: boolean;
  upsert(db: Db, docs: SearchDocument[]): Promise<void>;
  remove(db: Db, tenantId: string, mediaIds: string[]): Promise<void>;
  search(q: IndexQuery): Promise<SearchHit[]>;
  /** Media of any tenant that have no document yet (created before the index existed). */
  unindexed(limit: number): Promise<{ tenantId: string; mediaId: string }[]>;
}

/** Caption-track text can be long; both engines cap a document's size (a document's body is bounded when it is built). */
const MAX_FIELD = 200_000;
const cap = (s: string) => (s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s);

export type FilterQuery = Pick<IndexQuery, 'tenantId' | 'filters' | 'audience' | 'after'> & { asOf?: string };

/** The tenant, visibility and filters of a list as SQL on `mediaassets as m` (and the keyset on `s`, the ranked matches). */
export function filterSql(q: FilterQuery, keyset: boolean): RawBuilder<boolean> {
  const parts: RawBuilder<unknown>[] = [sql`m.tenant_id = ${q.tenantId}`, visibleTo(q.audience)];
  if (q.asOf) parts.push(sql`m.created_at <= ${q.asOf}`);
  const f = q.filters;
  if (f.kind) parts.push(sql`m.kind = ${f.kind}`);
  if (f.status) parts.push(sql`m.status = ${f.status}`);
  if (f.createdFrom) parts.push(sql`m.created_at >= ${f.createdFrom}`);
  if (f.createdTo) parts.push(sql`m.created_at < ${f.createdTo}`);
  if (f.labelIds) {
    parts.push(
      f.labelIds.length
        ? sql`exists (select 1 from asset_labels al where al.media_id = m.id and al.tenant_id = ${q.tenantId} and al.label_id in (${sql.join(f.labelIds)}))`
        : sql`1 = 0`,
    );
  }
  if (keyset && q.after) parts.push(sql`(s.score < ${q.after.score} or (s.score = ${q.after.score} and s.media_id < ${q.after.id}))`);
  return sql<boolean>`${sql.join(parts, sql` and `)}`;
}

/** A tenant's FTS5 table. Its name comes from a hash of the tenant id, so only hex digits reach the SQL. */
export function ftsTableOf(tenantId: string): string {
  return `media_search_fts_${createHash('sha256').update(tenantId).digest('hex').slice(0, 24)}`;
}

const ROWS_PER_STATEMENT = 250;

/** Best full-text matches ranked before the filters are applied, beyond 1.25 × the results wanted (see Fts5SearchIndex.search). */
const FTS_WINDOW_SLACK = 20;

function chunks<T>(items: T[], size = ROWS_PER_STATEMENT): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * SQLite FTS5, one table per tenant so bm25's statistics are the tenant's own. bm25() weighs the
 * columns (title 10, caption 8, filename 5, description 4, tags 3, labels 3, caption tracks 1,
 * a document's body 1), so a word in the caption outranks the same word as a tag only. The title
 * column also holds a document's own title and author. Those statistics move with every write of
 * the tenant, so scores are not stable across pages.
 */
export class Fts5SearchIndex implements SearchIndex {
  readonly stableScores = false;
  /** Tables seen to exist (they are never dropped). */
  private readonly existing = new Set<string>();

  constructor(
    private readonly db: Db,
    private readonly rankCandidates: number,
  ) {}

  private async exists(db: Db, table: string): Promise<boolean> {
    if (this.existing.has(table)) return true;
    const found = await sql<{ n: number }>`select count(*) as n from sqlite_master where type = 'table' and name = ${table}`.execute(db);
    if (Number(found.rows[0]?.n ?? 0) === 0) return false;
    // Inside a transaction the table may be new and still be rolled back.
    if (db === this.db) this.existing.add(table);
    return true;
  }

  async upsert(db: Db, docs: SearchDocument[]): Promise<void> {
    const at = nowIso();
    const byTenant = new Map<string, SearchDocument[]>();
    for (const d of docs) byTenant.set(d.tenantId, [...(byTenant.get(d.tenantId) ?? []), d]);
    for (const [tenantId, tenantDocs] of byTenant) {
      const t = sql.raw(ftsTableOf(tenantId));
      await sql`create virtual table if not exists ${t} using fts5(
        title, filename, caption, description, tags, labels, tracks, body,
        tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
      )`.execute(db);
      for (const part of chunks(tenantDocs)) {
        const rows = await sql<{ id: number; media_id: string }>`
          insert into media_search_docs (media_id, tenant_id, indexed_at)
          values ${sql.join(part.map((d) => sql`(${d.mediaId}, ${d.tenantId}, ${at})`))}
          on conflict (media_id) do update set indexed_at = excluded.indexed_at
          returning id, media_id`.execute(db);
        const rowids = new Map(rows.rows.map((r) => [r.media_id, Number(r.id)]));
        await sql`delete from ${t} where rowid in (${sql.join([...rowids.values()])})`.execute(db);
        const values = part.map(
          (d) =>
            sql`(${rowids.get(d.mediaId)!}, ${d.title}, ${d.filename}, ${d.caption}, ${d.description}, ${d.tags}, ${d.labels}, ${cap(d.tracks)}, ${d.body})`,
        );
        await sql`insert into ${t} (rowid, title, filename, caption, description, tags, labels, tracks, body) values ${sql.join(values)}`.execute(db);
      }
    }
  }

  async remove(db: Db, tenantId: string, mediaIds: string[]): Promise<void> {
    if (!mediaIds.length) return;
    const rows = await sql<{ id: number }>`select id from media_search_docs where tenant_id = ${tenantId} and media_id in (${sql.join(mediaIds)})`.execute(db);
    if (!rows.rows.length) return;
    const ids = rows.rows.map((r) => r.id);
    const table = ftsTableOf(tenantId);
    if (await this.exists(db, table)) await sql`delete from ${sql.raw(table)} where rowid in (${sql.join(ids)})`.execute(db);
    await sql`delete from media_search_docs where id in (${sql.join(ids)})`.execute(db);
  }

  async search(q: IndexQuery): Promise<SearchHit[]> {
    const table = ftsTableOf(q.tenantId);
    if (!(await this.exists(this.db, table))) return [];
    const t = sql.raw(table);
    const match = fts5Expression(q.query);
    const bm25 = sql`bm25(${t}, 10.0, 5.0, 8.0, 4.0, 3.0, 3.0, 1.0, 1.0)`;
    const hits = (rows: { media_id: string; score: number }[]) => rows.map((r) => ({ mediaId: r.media_id, score: Number(r.score) }));
    // Past rankCandidates matches, only the most recently indexed ones (the highest rowids) are ranked.
    const counted = await sql<{
      n: number;
    }>`select count(*) as n from (select rowid from ${t} where ${t} match ${match} limit ${this.rankCandidates + 1})`.execute(this.db);
    const capped = Number(counted.rows[0]?.n ?? 0) > this.rankCandidates;
    const candidates = Math.min(Number(counted.rows[0]?.n ?? 0), this.rankCandidates);
    if (!candidates) return [];
    const from = capped
      ? (
          await sql<{ rowid: number }>`select rowid from ${t} where ${t} match ${match} order by rowid desc limit 1 offset ${this.rankCandidates - 1}`.execute(
            this.db,
          )
        ).rows[0]?.rowid
      : undefined;
    // The best candidates by relevance alone, inside FTS5 (its own top-N sort), then the filters
    // on those only: a common word matches a large share of the library, and looking each match
    // up to filter it before ranking is what made such searches slow. Most searches keep nearly
    // all of their best matches; when the filters leave too few, more candidates are taken.
    const ranked = async (window: number) =>
      hits(
        (
          await sql<{ media_id: string; score: number }>`
            with top as materialized (
              select rowid, -${bm25} as score from ${t}
              where ${t} match ${match} ${from !== undefined ? sql`and rowid >= ${from}` : sql``}
              order by ${bm25} limit ${window})
            select d.media_id, top.score from top
              cross join media_search_docs d on d.id = top.rowid
              cross join mediaassets m on m.id = d.media_id
            where ${filterSql(q, false)}
            order by top.score desc, d.media_id desc
            limit ${q.limit}`.execute(this.db)
        ).rows,
      );
    let found = await ranked(Math.ceil(q.limit * 1.25) + FTS_WINDOW_SLACK);
    if (found.length < q.limit && Math.ceil(q.limit * 1.25) + FTS_WINDOW_SLACK < candidates) found = await ranked(candidates);
    // Complete when every match was a candidate; good enough when the filters kept at least half
    // of the candidates (the cap, not the filters, is why there are not more). Otherwise the
    // filters are selective: every match is filtered, then ranked.
    if (found.length >= q.limit || !capped || found.length >= candidates / 2) return found;
    // Materialised and CROSS JOIN (SQLite keeps that join order): the full-text matches drive the
    // query and each is looked up by primary key, rather than scanning the tenant's media.
    const res = await sql<{ media_id: string; score: number }>`
      with s as materialized (
        select d.media_id, -${bm25} as score
        from ${t} join media_search_docs d on d.id = ${t}.rowid
        where ${t} match ${match}
      )
      select s.media_id, s.score from s cross join mediaassets m on m.id = s.media_id
      where ${filterSql(q, false)}
      order by s.score desc, s.media_id desc
      limit ${q.limit}`.execute(this.db);
    return hits(res.rows);
  }

  async unindexed(limit: number) {
    const res = await sql<{ tenant_id: string; id: string }>`
      select m.tenant_id, m.id from mediaassets m
      where not exists (select 1 from media_search_docs d where d.media_id = m.id) limit ${limit}`.execute(this.db);
    return res.rows.map((r) => ({ tenantId: r.tenant_id, mediaId: r.id }));
  }
}

/** PostgreSQL's program_limit_exceeded: here, a tsvector over 1 MB. */
const TSVECTOR_TOO_LONG = '54000';

/**
 * Whether a document's tsvector could pass 1 MB: at worst a lexeme per character, each taking
 * its UTF-8 bytes (up to 3 here) and about 10 more, so below 70,000 characters it cannot.
 */
function mayOverflow(d: SearchDocument): boolean {
  const fields = [d.title, d.filename, d.caption, d.description, d.tags, d.labels, cap(d.tracks), d.body];
  return fields.reduce((n, f) => n + f.length, 0) >= 70_000;
}

/** The first half of a field's words. */
function halfOf(field: string): string {
  const words = field.split(' ');
  return words.slice(0, Math.floor(words.length / 2)).join(' ');
}

/** Runs `fn` so that its failure leaves the caller's transaction usable (a savepoint); outside a transaction each statement stands alone. */
async function inSavepoint(db: Db, fn: () => Promise<void>): Promise<void> {
  if (!db.isTransaction) return fn();
  await sql`savepoint search_upsert`.execute(db);
  try {
    await fn();
  } catch (err) {
    await sql`rollback to savepoint search_upsert`.execute(db);
    throw err;
  }
  await sql`release savepoint search_upsert`.execute(db);
}

/**
 * PostgreSQL full-text search with the `simple` configuration (no stemming or stop words, like
 * FTS5's unicode61: no language surprises, and type-ahead prefixes work on the words as typed).
 * Weights: A title (with a document's own title and author) + caption, B filename + description,
 * C tags + labels, D caption tracks + a document's body;
 * ts_rank_cd with weights {D 0.1, C 0.2, B 0.5, A 1.0} and length normalisation 1. The score
 * depends on the document and the query only (no corpus statistics): it is the same whatever
 * other media or tenants hold, so pages continue after the last (score, id).
 */
export class PostgresSearchIndex implements SearchIndex {
  readonly stableScores = true;

  constructor(private readonly db: Db) {}

  /**
   * Writes the documents. One long enough that its tsvector might pass PostgreSQL's 1 MB limit
   * (which fails the statement, and with it the transaction of a whole batch) is written on its
   * own in a savepoint; if it does pass it, its long texts (caption tracks, body) are halved until
   * it fits, and left out after a few tries.
   */
  async upsert(db: Db, docs: SearchDocument[]): Promise<void> {
    const small = docs.filter((d) => !mayOverflow(d));
    if (small.length) await this.write(db, small);
    for (const d of docs.filter(mayOverflow)) {
      let doc = d;
      for (let attempt = 0; ; attempt++) {
        try {
          await inSavepoint(db, () => this.write(db, [doc]));
          break;
        } catch (err) {
          if ((err as { code?: unknown }).code !== TSVECTOR_TOO_LONG || attempt > 3) throw err;
          doc = attempt < 3 ? { ...doc, tracks: halfOf(cap(doc.tracks)), body: halfOf(doc.body) } : { ...doc, tracks: '', body: '' };
        }
      }
    }
  }

  private async write(db: Db, docs: SearchDocument[]): Promise<void> {
    if (!docs.length) return;
    const at = nowIso();
    const values = docs.map(
      (d) => sql`(${d.mediaId}, ${d.tenantId},
        setweight(to_tsvector('simple', ${`${d.title} ${d.caption}`}), 'A') ||
        setweight(to_tsvector('simple', ${`${d.filename} ${d.description}`}), 'B') ||
        setweight(to_tsvector('simple', ${`${d.tags} ${d.labels}`}), 'C') ||
        setweight(to_tsvector('simple', ${`${cap(d.tracks)} ${d.body}`}), 'D'),
        ${at}::timestamptz)`,
    );
    await sql`insert into media_search (media_id, tenant_id, document, indexed_at) values ${sql.join(values)}
      on conflict (media_id) do update set document = excluded.document, indexed_at = excluded.indexed_at`.execute(db);
  }

  async remove(db: Db, tenantId: string, mediaIds: string[]): Promise<void> {
    if (!mediaIds.length) return;
    await sql`delete from media_search where tenant_id = ${tenantId} and media_id in (${sql.join(mediaIds)})`.execute(db);
  }

  async search(q: IndexQuery): Promise<SearchHit[]> {
    // Every match is ranked: PostgreSQL finds them through the GIN index, and a cap on the
    // candidates (as on SQLite) measured no faster here, since reading the matches costs about as
    // much as ranking them.
    const tsq = tsQueryExpression(q.query);
    const res = await sql<{ media_id: string; score: number }>`
      select s.media_id, s.score from (
        select ms.media_id, ts_rank_cd('{0.1, 0.2, 0.5, 1.0}', ms.document, to_tsquery('simple', ${tsq}), 1)::float8 as score
        from media_search ms
        where ms.tenant_id = ${q.tenantId} and ms.document @@ to_tsquery('simple', ${tsq})
      ) s join mediaassets m on m.id = s.media_id
      where ${filterSql(q, true)}
      order by s.score desc, s.media_id desc
      limit ${q.limit}`.execute(this.db);
    return res.rows.map((r) => ({ mediaId: r.media_id, score: Number(r.score) }));
  }

  async unindexed(limit: number) {
    const res = await sql<{ tenant_id: string; id: string }>`
      select m.tenant_id, m.id from mediaassets m
      where not exists (select 1 from media_search s where s.media_id = m.id) limit ${limit}`.execute(this.db);
    return res.rows.map((r) => ({ tenantId: r.tenant_id, mediaId: r.id }));
  }
}

/**
 * @param rankCandidates the most matches one SQLite search ranks: bm25 is computed for every match,
 *   so a word found in a large share of the library would cost time in proportion to the library;
 *   beyond this many matches only the most recent ones are ranked (unless filters leave too few).
 */
export function createSearchIndex(handle: DatabaseHandle, rankCandidates = 5000): SearchIndex {
  return handle.dialect === 'postgres' ? new PostgresSearchIndex(handle.db) : new Fts5SearchIndex(handle.db, rankCandidates);
}
