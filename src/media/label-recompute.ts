import type { Db } from '../db/database.js';
import { fromJson, nowIso, toJson, type MediaKind } from '../db/schema.js';
import type { MediaChanges } from '../events/media-changes.js';
import { writeWithEvents } from '../events/media-events.js';
import { assertOwnerOrAdmin } from '../access/ownership.js';
import { labelingOf, type LabelingView } from '../labels/labeling-state.js';
import { followUpJobKey, type JobQueue } from '../queue/queue.js';
import { AppError, notFound } from '../shared/errors.js';
import type { Principal } from '../tenancy/principal.js';

/** The labeling follow-up's step name (see default-pipeline.ts). */
const STEP = 'labels';

/**
 * Runs the local models on media again: after a failure, a new model or new settings. The
 * media's `model` labels are replaced when they are done; it stays visible as it is meanwhile.
 */
export class LabelRecompute {
  constructor(
    private readonly db: Db,
    private readonly queue: JobQueue,
    private readonly changes: MediaChanges | undefined,
    /** The kinds the labeling step looks at; empty when labeling is off. */
    private readonly kinds: readonly MediaKind[],
  ) {}

  /** One media (its owner or an admin key). */
  async forMedia(p: Principal, mediaId: string): Promise<LabelingView> {
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'kind', 'status'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    assertOwnerOrAdmin(p, row.user_id, 'recompute the labels of this media');
    if (!this.kinds.length) throw new AppError('labeling-off', 'labeling is off on this server (ENABLE_WORKER_LABELING=false)');
    if (!this.kinds.includes(row.kind)) throw new AppError('labeling-off', `the models have nothing to look at in media of kind ${row.kind}`);
    if (row.status !== 'ready') throw new AppError('conflict', `the media is ${row.status}; its labels are made once it is ready`);
    return this.queueOne(row);
  }

  /** Every ready media of a tenant that the models look at; returns how many were queued. */
  async forTenant(tenantId: string): Promise<number> {
    if (!this.kinds.length) throw new AppError('labeling-off', 'labeling is off on this server (ENABLE_WORKER_LABELING=false)');
    let queued = 0;
    let after = '';
    for (;;) {
      const page = await this.db
        .selectFrom('mediaassets')
        .select(['id', 'tenant_id'])
        .where('tenant_id', '=', tenantId)
        .where('status', '=', 'ready')
        .where('kind', 'in', [...this.kinds])
        .where('id', '>', after)
        .orderBy('id')
        .limit(500)
        .execute();
      for (const row of page) {
        await this.queueOne(row);
        queued++;
      }
      if (page.length < 500) return queued;
      after = page[page.length - 1]!.id;
    }
  }

  /**
   * Lists the step as pending and counts the request, then queues it. A labeling job already
   * running may have read the media before this request: one more job is queued behind it (it
   * waits for the media's lock), and the media reads `pending` until a run that started after
   * the request is done (file_metadata.labeling_request against labeling.request).
   */
  private async queueOne(row: { id: string; tenant_id: string }): Promise<LabelingView> {
    const meta = await this.markPending(row, true);
    const key = followUpJobKey(STEP, row.id);
    const data = { media_id: row.id, tenant_id: row.tenant_id, step: STEP };
    try {
      const busy = await this.queue.hasPending(key);
      await this.queue.enqueue('follow-up', data, { dedupeKey: key });
      if (busy) await this.queue.enqueue('follow-up', data, { dedupeKey: `${key}:again` });
    } catch (err) {
      await this.markPending(row, false).catch(() => undefined);
      throw err;
    }
    return labelingOf(meta);
  }

  private async markPending(row: { id: string; tenant_id: string }, pending: boolean): Promise<Record<string, unknown>> {
    return writeWithEvents(this.db, this.changes, async (tx, record) => {
      const current = await tx.selectFrom('mediaassets').select('file_metadata').where('id', '=', row.id).executeTakeFirst();
      if (!current) throw notFound('media');
      const meta = fromJson<Record<string, unknown>>(current.file_metadata, {});
      const list = (Array.isArray(meta.pending) ? meta.pending : []).filter((p) => p !== STEP);
      const request = Number(meta.labeling_request ?? 0);
      const next = { ...meta, pending: pending ? [...list, STEP] : list, labeling_request: pending ? request + 1 : request };
      await tx
        .updateTable('mediaassets')
        .set({ file_metadata: toJson(next), updated_at: nowIso() })
        .where('id', '=', row.id)
        .execute();
      record({ tenantId: row.tenant_id, mediaId: row.id, type: 'artifacts' });
      return next;
    });
  }
}
