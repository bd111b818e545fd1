import { statusChanged, type MediaChanges } from './media-changes.js';
import type { Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import { fromJson, type MediaAssetsTable } from '../db/schema.js';
import { AppError, notFound } from '../errors.js';
import { labelsOfMedia, type AssetLabelView } from '../labels/label-service.js';
import { removePath } from '../storage/files.js';
import type { StorageLayout } from '../storage/layout.js';
import type { Principal } from '../tenancy/principal.js';
import { ownerScope } from '../tenancy/principal.js';
import { processJobKey, type JobQueue } from '../queue/queue.js';
import { nowIso } from '../db/schema.js';
import { needsProcessing } from './detect-kind.js';

export type MediaRow = Selectable<MediaAssetsTable>;

export interface MediaView {
  id: string;
  tenant_id: string;
  user_id: string;
  status: MediaRow['status'];
  error: { code: string; reason: string } | null;
  kind: MediaRow['kind'];
  original_filename: string;
  mime_type: string;
  size: number;
  sha256: string;
  caption: string | null;
  user_tags: string[];
  labels: AssetLabelView[];
  file_metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  processing_started_at: string | null;
  ready_at: string | null;
}

export function toMediaView(row: MediaRow, labels: AssetLabelView[] = []): MediaView {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    user_id: row.user_id,
    status: row.status,
    error: row.status === 'error' ? { code: row.error_code ?? 'error', reason: row.error_reason ?? '' } : null,
    kind: row.kind,
    original_filename: row.original_filename,
    mime_type: row.mime_type,
    size: Number(row.size),
    sha256: row.sha256,
    caption: row.caption,
    user_tags: fromJson<string[]>(row.user_tags, []),
    labels,
    file_metadata: fromJson<Record<string, unknown>>(row.file_metadata, {}),
    created_at: row.created_at,
    updated_at: row.updated_at,
    processing_started_at: row.processing_started_at,
    ready_at: row.ready_at,
  };
}

interface Cursor {
  createdAt: string;
  id: string;
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
}

function decodeCursor(raw: string): Cursor {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof createdAt === 'string' && typeof id === 'string') return { createdAt, id };
  } catch {
    // fall through
  }
  throw new AppError('validation-failed', 'cursor is not valid');
}

export interface MediaPage {
  items: MediaView[];
  next_cursor: string | null;
}

export class MediaService {
  constructor(
    private readonly db: Db,
    private readonly layout: StorageLayout,
    private readonly queue: JobQueue,
    private readonly changes?: MediaChanges,
  ) {}

  /**
   * Reading is tenant-wide (a team shares its library); every query is scoped by tenant, so
   * another tenant's id answers exactly like an id that does not exist.
   */
  async get(p: Principal, mediaId: string): Promise<MediaView> {
    const row = await this.db
      .selectFrom('mediaassets')
      .selectAll()
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    const labels = await labelsOfMedia(this.db, p.tenantId, [row.id]);
    return toMediaView(row, labels.get(row.id));
  }

  /** The caller's own media (an admin's: the whole tenant, or one user's), newest first. */
  async list(p: Principal, opts: { limit: number; cursor?: string; userId?: string; status?: MediaRow['status'] }): Promise<MediaPage> {
    const scope = ownerScope(p);
    let q = this.db.selectFrom('mediaassets').selectAll().where('tenant_id', '=', scope.tenantId);
    const userId = scope.userId ?? opts.userId;
    if (scope.userId && opts.userId && opts.userId !== scope.userId) throw new AppError('forbidden', 'only an admin key may list another user');
    if (userId) q = q.where('user_id', '=', userId);
    if (opts.status) q = q.where('status', '=', opts.status);
    if (opts.cursor) {
      const c = decodeCursor(opts.cursor);
      q = q.where((eb) => eb.or([eb('created_at', '<', c.createdAt), eb.and([eb('created_at', '=', c.createdAt), eb('id', '<', c.id)])]));
    }
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(opts.limit + 1)
      .execute();
    const page = rows.slice(0, opts.limit);
    const labels = await labelsOfMedia(this.db, p.tenantId, page.map((r) => r.id));
    const last = page[page.length - 1];
    return {
      items: page.map((r) => toMediaView(r, labels.get(r.id))),
      next_cursor: rows.length > opts.limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
    };
  }

  /**
   * Runs the pipeline again with the current settings (owner or admin). The media stays
   * playable meanwhile: each output folder is swapped in atomically when the new one is whole.
   */
  async reprocess(p: Principal, mediaId: string): Promise<MediaView> {
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'user_id', 'kind', 'status'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    if (!p.isAdmin && row.user_id !== p.userId) throw new AppError('forbidden', 'only the owner or an admin key may reprocess this media');
    if (!needsProcessing(row.kind)) throw new AppError('conflict', `media of kind ${row.kind} has nothing to process`);
    if (row.status === 'queued' || row.status === 'processing') throw new AppError('conflict', `the media is already ${row.status}`);
    await this.db
      .updateTable('mediaassets')
      .set({ status: 'queued', error_code: null, error_reason: null, updated_at: nowIso() })
      .where('id', '=', row.id)
      .execute();
    await statusChanged(this.db, this.changes, { tenantId: p.tenantId, mediaId: row.id, status: 'queued' });
    await this.queue.enqueue('process-media', { media_id: row.id }, { dedupeKey: processJobKey(row.id) });
    return this.get(p, row.id);
  }

  /** Removes the row (labels cascade) and every stored file of the media. Owner or admin only. */
  async delete(p: Principal, mediaId: string): Promise<void> {
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    if (!p.isAdmin && row.user_id !== p.userId) throw new AppError('forbidden', 'only the owner or an admin key may delete this media');
    await this.db.deleteFrom('mediaassets').where('id', '=', row.id).where('tenant_id', '=', p.tenantId).execute();
    await removePath(this.layout.mediaDir({ tenantId: row.tenant_id, userId: row.user_id, mediaId: row.id }));
    await this.changes?.emit({ tenantId: row.tenant_id, mediaId: row.id, reason: 'deleted' });
  }
}
