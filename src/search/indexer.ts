import type { Logger } from 'pino';
import type { Db, DatabaseHandle } from '../db/database.js';
import { writeTransaction } from '../db/write-transaction.js';
import type { MediaChange } from '../events/media-changes.js';
import { buildDocuments, type SearchDocument } from './documents.js';
import type { SearchIndex } from './search-index.js';

const BATCH = 1000;

/**
 * Keeps the derived search state (the full-text document and `media_tags`) in step with the
 * media tables. It listens to media changes in every process and rebuilds the documents that
 * label bank writes mark stale; the state lives in the database.
 */
export class SearchIndexer {
  /** Stale-document refreshes of this process run one after another. */
  private refreshing: Promise<unknown> = Promise.resolve();

  /** `indexed` is told, after each commit, the tenant whose documents changed (search caches forget it). */
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly index: SearchIndex,
    private readonly log?: Logger,
    private readonly indexed: (tenantId: string) => void = () => undefined,
  ) {}

  private get db(): Db {
    return this.handle.db;
  }

  /**
   * The media change listener: a write to what a document holds re-indexes the media; a delete
   * removes it. Documents of the tenant still marked stale (by a process that could not rebuild
   * them) follow. Status and moderation changes leave the document as it is: searches filter on
   * them at query time.
   */
  async onChange(change: MediaChange): Promise<void> {
    // Search documents hold no status, moderation state or artifacts (they are read when shown).
    if (change.reason === 'status' || change.reason === 'moderation' || change.reason === 'artifacts') return;
    if (change.reason === 'deleted') await this.removeMedia(change.tenantId, [change.mediaId]);
    else await this.reindexMedia(change.tenantId, change.mediaId);
    const stale = await this.db.selectFrom('search_stale').select('media_id').where('tenant_id', '=', change.tenantId).limit(1).executeTakeFirst();
    if (stale) await this.refreshStale(change.tenantId);
  }

  async reindexMedia(tenantId: string, mediaId: string): Promise<void> {
    await this.reindexMany(tenantId, [mediaId]);
  }

  /**
   * Rebuilds the documents (and tags) of media of one tenant; ids that no longer exist are removed.
   *
   * The documents are read and written in one transaction that first locks the media rows (on
   * SQLite: holds the write lock from its start), so rebuilds of one media (in any process) run
   * one after another and each reads what was committed before it took the lock. Every change is
   * followed by a rebuild that starts after its commit, so the last document written holds the
   * last change: a rebuild that read before a change can no longer overwrite the document of the
   * rebuild that read after it.
   */
  async reindexMany(tenantId: string, mediaIds: string[], opts: { tags: boolean } = { tags: true }): Promise<void> {
    for (let i = 0; i < mediaIds.length; i += BATCH) {
      const ids = [...new Set(mediaIds.slice(i, i + BATCH))].sort();
      await writeTransaction(this.handle, async (trx) => {
        if (this.handle.dialect === 'postgres') await lockMediaRows(trx, tenantId, ids);
        const docs = await buildDocuments(trx, tenantId, ids);
        const found = new Set(docs.map((d) => d.mediaId));
        const gone = ids.filter((id) => !found.has(id));
        await this.index.upsert(trx, docs);
        if (opts.tags) await writeTags(trx, docs);
        if (gone.length) await this.index.remove(trx, tenantId, gone);
      });
      this.indexed(tenantId);
    }
  }

  async removeMedia(tenantId: string, mediaIds: string[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.index.remove(trx, tenantId, mediaIds);
      if (mediaIds.length) await trx.deleteFrom('media_tags').where('tenant_id', '=', tenantId).where('media_id', 'in', mediaIds).execute();
    });
    this.indexed(tenantId);
  }

  /** Rebuilds the documents marked stale, of one tenant or of all, in batches; returns how many. */
  refreshStale(tenantId?: string): Promise<number> {
    const run = this.refreshing.then(() => this.drainStale(tenantId));
    this.refreshing = run.catch(() => undefined);
    return run;
  }

  /**
   * After a label bank write committed: rebuilds what it marked stale. A failure must not fail
   * the write: the marks stay, and the next media change of the tenant (or start-up) rebuilds them.
   */
  async refreshStaleQuietly(tenantId?: string): Promise<void> {
    await this.refreshStale(tenantId).catch((err: unknown) => this.log?.error({ err, tenantId }, 'rebuilding stale search documents failed'));
  }

  private async drainStale(tenantId?: string): Promise<number> {
    let total = 0;
    for (;;) {
      let q = this.db.selectFrom('search_stale').select(['media_id', 'tenant_id', 'version']);
      if (tenantId) q = q.where('tenant_id', '=', tenantId);
      const marks = await q.orderBy('media_id').limit(BATCH).execute();
      if (!marks.length) break;
      const byTenant = new Map<string, string[]>();
      for (const m of marks) byTenant.set(m.tenant_id, [...(byTenant.get(m.tenant_id) ?? []), m.media_id]);
      // Marks come from label words, which tags do not hold.
      for (const [t, ids] of byTenant) await this.reindexMany(t, ids, { tags: false });
      // A mark made again while its document was rebuilt has a new version and stays.
      const byVersion = new Map<number, string[]>();
      for (const m of marks) byVersion.set(Number(m.version), [...(byVersion.get(Number(m.version)) ?? []), m.media_id]);
      for (const [version, ids] of byVersion) {
        await this.db.deleteFrom('search_stale').where('version', '=', version).where('media_id', 'in', ids).execute();
      }
      total += marks.length;
    }
    if (total) this.log?.debug({ media: total }, 'stale search documents rebuilt');
    return total;
  }

  /** Indexes media that have no document yet (those created before search existed), and stale ones. */
  async backfill(): Promise<number> {
    let total = 0;
    for (;;) {
      const missing = await this.index.unindexed(BATCH);
      if (!missing.length) break;
      const byTenant = new Map<string, string[]>();
      for (const m of missing) byTenant.set(m.tenantId, [...(byTenant.get(m.tenantId) ?? []), m.mediaId]);
      for (const [tenantId, ids] of byTenant) await this.reindexMany(tenantId, ids);
      total += missing.length;
      if (missing.length < BATCH) break;
    }
    total += await this.refreshStale();
    if (total) this.log?.info({ media: total }, 'search index backfilled');
    return total;
  }
}

/**
 * PostgreSQL: locks media rows against other rebuilds and edits for the rest of the transaction,
 * in id order (two rebuilds of overlapping batches never wait on each other in a circle). FOR NO
 * KEY UPDATE, not FOR UPDATE: inserts of rows that refer to a media (stale marks, labels, views)
 * take a key-share lock on it, which this one lets through, so a label write marking many media
 * stale never deadlocks with a rebuild. SQLite needs none: the transaction holds the database's
 * write lock from its start (writeTransaction).
 */
async function lockMediaRows(trx: Db, tenantId: string, ids: string[]): Promise<void> {
  if (!ids.length) return;
  await trx.selectFrom('mediaassets').select('id').where('tenant_id', '=', tenantId).where('id', 'in', ids).orderBy('id').forNoKeyUpdate().execute();
}

async function writeTags(db: Db, docs: SearchDocument[]): Promise<void> {
  if (!docs.length) return;
  await db
    .deleteFrom('media_tags')
    .where(
      'media_id',
      'in',
      docs.map((d) => d.mediaId),
    )
    .execute();
  const rows = docs.flatMap((d) => d.tagList.map((tag) => ({ tenant_id: d.tenantId, media_id: d.mediaId, tag })));
  for (let i = 0; i < rows.length; i += 300)
    await db
      .insertInto('media_tags')
      .values(rows.slice(i, i + 300))
      .execute();
}
