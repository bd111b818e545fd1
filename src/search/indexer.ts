import type { Logger } from 'pino';
import type { Db, DatabaseHandle } from '../db/database.js';
import type { MediaChange } from '../media/media-changes.js';
import { buildDocuments, type SearchDocument } from './documents.js';
import type { SearchIndex } from './search-index.js';

const BATCH = 500;

/**
 * Keeps the derived search state (the full-text document and `media_tags`) in step with the
 * media tables. It listens to media changes in every process; the state lives in the database.
 */
export class SearchIndexer {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly index: SearchIndex,
    private readonly log?: Logger,
  ) {}

  private get db(): Db {
    return this.handle.db;
  }

  /** The media change listener: every write re-indexes the media; a delete removes it. */
  async onChange(change: MediaChange): Promise<void> {
    if (change.reason === 'deleted') await this.removeMedia(change.tenantId, [change.mediaId]);
    else await this.reindexMedia(change.tenantId, change.mediaId);
  }

  async reindexMedia(tenantId: string, mediaId: string): Promise<void> {
    await this.reindexMany(tenantId, [mediaId]);
  }

  /** Rebuilds the documents of media of one tenant; ids that no longer exist are removed. */
  async reindexMany(tenantId: string, mediaIds: string[]): Promise<void> {
    for (let i = 0; i < mediaIds.length; i += BATCH) {
      const ids = [...new Set(mediaIds.slice(i, i + BATCH))];
      const docs = await buildDocuments(this.db, this.handle.dialect, tenantId, ids);
      const found = new Set(docs.map((d) => d.mediaId));
      const gone = ids.filter((id) => !found.has(id));
      await this.db.transaction().execute(async (trx) => {
        await this.index.upsert(trx, docs);
        await writeTags(trx, docs);
        if (gone.length) await this.index.remove(trx, tenantId, gone);
      });
    }
  }

  async removeMedia(tenantId: string, mediaIds: string[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.index.remove(trx, tenantId, mediaIds);
      if (mediaIds.length) await trx.deleteFrom('media_tags').where('tenant_id', '=', tenantId).where('media_id', 'in', mediaIds).execute();
    });
  }

  /**
   * Re-indexes every media carrying a label or one of its descendants: call after a label's
   * name, parent or bank phrases change, since documents hold those words.
   */
  async reindexLabel(tenantId: string, labelId: string): Promise<number> {
    const labelIds = new Set([labelId]);
    let frontier = [labelId];
    for (let depth = 0; frontier.length && depth < 16; depth++) {
      const children = await this.db.selectFrom('labels').select('id').where('tenant_id', '=', tenantId).where('parent_id', 'in', frontier).execute();
      frontier = children.map((c) => c.id).filter((id) => !labelIds.has(id));
      for (const id of frontier) labelIds.add(id);
    }
    const media = await this.db
      .selectFrom('asset_labels')
      .select('media_id')
      .distinct()
      .where('tenant_id', '=', tenantId)
      .where('label_id', 'in', [...labelIds])
      .execute();
    await this.reindexMany(tenantId, media.map((m) => m.media_id));
    return media.length;
  }

  /** Indexes media that have no document yet (those created before search existed). */
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
    if (total) this.log?.info({ media: total }, 'search index backfilled');
    return total;
  }
}

async function writeTags(db: Db, docs: SearchDocument[]): Promise<void> {
  if (!docs.length) return;
  await db.deleteFrom('media_tags').where('media_id', 'in', docs.map((d) => d.mediaId)).execute();
  const rows = docs.flatMap((d) => d.tagList.map((tag) => ({ tenant_id: d.tenantId, media_id: d.mediaId, tag })));
  for (let i = 0; i < rows.length; i += 300) await db.insertInto('media_tags').values(rows.slice(i, i + 300)).execute();
}
