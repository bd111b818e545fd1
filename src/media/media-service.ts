import type { Logger } from 'pino';
import type { MediaChanges } from '../events/media-changes.js';
import { announce, writeRecording, writeWithEvents, type MediaEvent } from '../events/media-events.js';
import type { Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import { preparedQuery } from '../db/prepared.js';
import { fromJson, type MediaAssetsTable } from '../db/schema.js';
import { AppError, notFound } from '../shared/errors.js';
import { labelsOfMedia, type AssetLabelView } from '../labels/media-label-store.js';
import { recomputeEntryStats } from '../labels/asset-labels.js';
import { labelingOf, type LabelingView } from '../labels/labeling-state.js';
import { labelFilterIds } from '../labels/hierarchy.js';
import type { RecordCache } from '../cache/record-cache.js';
import { mediaPrefix } from '../storage/layout.js';
import type { MediaStore } from '../storage/store.js';
import type { Principal } from '../tenancy/principal.js';
import { ownerScope } from '../tenancy/principal.js';
import { processJobKey, type JobQueue } from '../queue/queue.js';
import { nowIso, toJson } from '../db/schema.js';
import { needsProcessing } from './detect-kind.js';
import { transition } from './status.js';
import { normalizeCaption, normalizeTags, tagFilterKey } from './tags.js';
import { fewMediaWithLabels, fewMediaWithTag } from './rare-filters.js';
import { tracksOfMedia, type CaptionTrackView } from './captions-service.js';
import { assertModerationVisible } from '../access/visibility.js';
import { assertOwnerOrAdmin } from '../access/ownership.js';
import type { MediaLocks } from './media-lock.js';
import type { ModerationLabel } from '../moderation/moderation-move.js';

export type MediaRow = Selectable<MediaAssetsTable>;

/** How long a delete waits, once the record is gone, for a job of the media that has just let go. */
const DELETE_LOCK_WAIT_MS = 2000;

const mediaByIdQuery = preparedQuery((db, tenantId: string, mediaId: string) =>
  db.selectFrom('mediaassets').selectAll().where('id', '=', mediaId).where('tenant_id', '=', tenantId),
);

const statusHistoryQuery = preparedQuery((db, tenantId: string, mediaId: string) =>
  db
    .selectFrom('media_status_events')
    .select(['status', 'at', 'error_code'])
    .where('tenant_id', '=', tenantId)
    .where('media_id', '=', mediaId)
    .orderBy('at')
    .orderBy('id'),
);

const lastDecisionQuery = preparedQuery((db, tenantId: string, mediaId: string) =>
  db
    .selectFrom('moderation_decisions')
    .select(['decision', 'state', 'note', 'labels', 'actor_user_id', 'at'])
    .where('tenant_id', '=', tenantId)
    .where('media_id', '=', mediaId)
    .orderBy('id', 'desc')
    .limit(1),
);

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
  title: string | null;
  description: string | null;
  user_tags: string[];
  labels: AssetLabelView[];
  moderation_state: MediaRow['moderation_state'];
  file_metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  processing_started_at: string | null;
  ready_at: string | null;
}

/** file_metadata as the record holds it, less the API URLs older versions stored in it (URLs are made when answering). */
function storedMetadata(raw: unknown): Record<string, unknown> {
  const { urls: _stale, ...meta } = fromJson<Record<string, unknown>>(raw, {});
  return meta;
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
    title: row.title ?? null,
    description: row.description ?? null,
    user_tags: fromJson<string[]>(row.user_tags, []),
    labels,
    moderation_state: row.moderation_state ?? 'none',
    file_metadata: storedMetadata(row.file_metadata),
    created_at: row.created_at,
    updated_at: row.updated_at,
    processing_started_at: row.processing_started_at,
    ready_at: row.ready_at,
  };
}

export interface StatusHistoryEntry {
  status: MediaRow['status'];
  at: string;
  error_code: string | null;
}

/** The whole record: the list view plus what derived state and history the media has (its API URLs are added by http/urls.ts). */
export interface MediaRecord extends MediaView {
  probe: Record<string, unknown> | null;
  artifacts: Record<string, unknown>;
  pending: string[];
  caption_tracks: CaptionTrackView[];
  status_history: StatusHistoryEntry[];
  /** Where the local models' labeling stands. */
  labeling: LabelingView;
  /** The newest moderation decision, if any was made. */
  moderation: { decision: string; state: string; note: string | null; labels: ModerationLabel[]; actor_user_id: string | null; at: string } | null;
}

/** Title: one line, like a heading; description: free text like the caption. */
export const MAX_TITLE_LENGTH = 200;
export const MAX_DESCRIPTION_LENGTH = 5000;

export interface MediaPatch {
  caption?: string | null;
  title?: string | null;
  description?: string | null;
  /** An array replaces the tags; an object adds and/or removes (matched case-insensitively), or replaces. */
  tags?: string[] | { add?: string[]; remove?: string[]; replace?: string[] };
}

export function normalizeTitle(raw: string | null): string | null {
  if (raw === null) return null;
  const title = raw.normalize('NFC').trim();
  if (title.length > MAX_TITLE_LENGTH || /[\u0000-\u001f\u007f]/.test(title)) {
    throw new AppError('validation-failed', `title: at most ${MAX_TITLE_LENGTH} printable characters on one line`);
  }
  return title.replace(/\s+/g, ' ') || null;
}

export function normalizeDescription(raw: string | null): string | null {
  if (raw === null) return null;
  const text = raw.normalize('NFC').replace(/\r\n?/g, '\n').trim();
  if (text.length > MAX_DESCRIPTION_LENGTH || /[\u0000-\u0008\u000b-\u001f\u007f]/.test(text)) {
    throw new AppError('validation-failed', `description: at most ${MAX_DESCRIPTION_LENGTH} characters, no control characters but line breaks and tabs`);
  }
  return text || null;
}

const foldTag = (t: string) => t.toLocaleLowerCase('en-US');

/** The tags after a patch: replace, or remove then add (case-insensitive matching, first spelling kept). */
export function patchedTags(current: string[], patch: NonNullable<MediaPatch['tags']>): string[] {
  if (Array.isArray(patch)) return normalizeTags(patch);
  if (patch.replace !== undefined) {
    if (patch.add !== undefined || patch.remove !== undefined) throw new AppError('validation-failed', 'tags: replace cannot be combined with add or remove');
    return normalizeTags(patch.replace);
  }
  const removed = new Set(normalizeTags(patch.remove ?? [], 'tags.remove').map(foldTag));
  const kept = current.filter((t) => !removed.has(foldTag(t)));
  return normalizeTags([...kept, ...normalizeTags(patch.add ?? [], 'tags.add')]);
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

export interface MediaListOptions {
  limit: number;
  cursor?: string;
  /** Admin keys only: one user's media. */
  userId?: string;
  status?: MediaRow['status'];
  kind?: MediaRow['kind'];
  /** A label name or bank phrase; media labelled with it or any of its descendants. */
  label?: string;
  /** A user tag, matched case-insensitively. */
  tag?: string;
}

export interface MediaPage {
  items: MediaView[];
  next_cursor: string | null;
}

export class MediaService {
  constructor(
    private readonly db: Db,
    private readonly store: MediaStore,
    private readonly queue: JobQueue,
    private readonly changes?: MediaChanges,
    private readonly records?: RecordCache<MediaRecord>,
    private readonly log?: Logger,
    /** Held while removing a media's files, so that no job writes them meanwhile. */
    private readonly locks?: MediaLocks,
  ) {}

  /**
   * Reading is tenant-wide (a team shares its library); every query is scoped by tenant, so
   * another tenant's id answers exactly like an id that does not exist. Media held or rejected
   * by moderation is readable by its owner and admin keys only (`moderation-hidden`, as playback).
   */
  async get(p: Principal, mediaId: string): Promise<MediaView> {
    const row = await mediaByIdQuery.first(this.db, p.tenantId, mediaId);
    if (!row) throw notFound('media');
    assertModerationVisible(p, row);
    const labels = await labelsOfMedia(this.db, p.tenantId, [row.id]);
    return toMediaView(row, labels.get(row.id));
  }

  /**
   * The whole record of one media: the view, probe facts, artifacts, caption tracks and status
   * history. Read through the record cache when there is one (the returned object is then frozen
   * and shared).
   */
  async record(p: Principal, mediaId: string): Promise<MediaRecord> {
    if (!this.records) return this.visible(p, await this.loadRecord(p.tenantId, mediaId));
    return this.visible(p, await this.records.get(p.tenantId, mediaId, () => this.loadRecord(p.tenantId, mediaId)));
  }

  private visible(p: Principal, record: MediaRecord): MediaRecord {
    assertModerationVisible(p, record);
    return record;
  }

  private async loadRecord(tenantId: string, mediaId: string): Promise<MediaRecord> {
    const row = await mediaByIdQuery.first(this.db, tenantId, mediaId);
    if (!row) throw notFound('media');
    const [labels, tracks, history, decision] = await Promise.all([
      labelsOfMedia(this.db, tenantId, [row.id]),
      tracksOfMedia(this.db, tenantId, [row.id]),
      statusHistoryQuery.all(this.db, tenantId, row.id),
      lastDecisionQuery.first(this.db, tenantId, row.id),
    ]);
    const view = toMediaView(row, labels.get(row.id));
    const fm = view.file_metadata as { probe?: Record<string, unknown>; artifacts?: Record<string, unknown>; pending?: string[] };
    return {
      ...view,
      probe: fm.probe ?? null,
      artifacts: fm.artifacts ?? {},
      pending: fm.pending ?? [],
      labeling: labelingOf(view.file_metadata),
      caption_tracks: tracks.get(view.id) ?? [],
      status_history: history.map((h) => ({ status: h.status, at: h.at, error_code: h.error_code })),
      moderation: decision ? { ...decision, labels: fromJson<ModerationLabel[]>(decision.labels, []) } : null,
    };
  }

  /**
   * Changes the caption, title, description and tags (owner or admin). The row is locked for
   * the read-modify-write of the tags, so concurrent add/remove calls apply one after another
   * and never lose each other's changes. Returns the whole record.
   */
  async update(p: Principal, mediaId: string, patch: MediaPatch): Promise<MediaRecord> {
    const set: { caption?: string | null; title?: string | null; description?: string | null } = {};
    if (patch.caption !== undefined) set.caption = normalizeCaption(patch.caption);
    if (patch.title !== undefined) set.title = normalizeTitle(patch.title);
    if (patch.description !== undefined) set.description = normalizeDescription(patch.description);
    await writeWithEvents(this.db, this.changes, async (tx, record) => {
      // A no-op update takes the row's write lock on PostgreSQL; SQLite runs one transaction at a time.
      const locked = await tx
        .updateTable('mediaassets')
        .set((eb) => ({ updated_at: eb.ref('updated_at') }))
        .where('id', '=', mediaId)
        .where('tenant_id', '=', p.tenantId)
        .executeTakeFirst();
      if (Number(locked.numUpdatedRows) === 0) throw notFound('media');
      const row = await tx
        .selectFrom('mediaassets')
        .select(['id', 'user_id', 'user_tags', 'updated_at'])
        .where('id', '=', mediaId)
        .where('tenant_id', '=', p.tenantId)
        .executeTakeFirstOrThrow();
      assertOwnerOrAdmin(p, row.user_id, 'edit this media');
      const tags = patch.tags === undefined ? undefined : patchedTags(fromJson<string[]>(row.user_tags, []), patch.tags);
      if (tags === undefined && !Object.keys(set).length) return;
      let now = nowIso();
      if (now <= row.updated_at) now = new Date(Date.parse(row.updated_at) + 1).toISOString();
      await tx
        .updateTable('mediaassets')
        .set({ ...set, ...(tags ? { user_tags: toJson(tags) } : {}), updated_at: now })
        .where('id', '=', row.id)
        .where('tenant_id', '=', p.tenantId)
        .execute();
      record({ tenantId: p.tenantId, mediaId, type: 'metadata', data: { fields: [...Object.keys(set), ...(tags ? ['tags'] : [])] } });
    });
    return this.record(p, mediaId);
  }

  /**
   * The caller's own media (an admin's: the whole tenant, or one user's), newest first, of every
   * status and moderation state. Filters combine with AND: `label` is a label name or bank phrase
   * and matches its descendants too (as search's label filter), `tag` a user tag, case-insensitively.
   */
  async list(p: Principal, opts: MediaListOptions): Promise<MediaPage> {
    const scope = ownerScope(p);
    let q = this.db.selectFrom('mediaassets').selectAll().where('tenant_id', '=', scope.tenantId);
    const userId = scope.userId ?? opts.userId;
    if (scope.userId && opts.userId && opts.userId !== scope.userId) throw new AppError('forbidden', 'only an admin key may list another user');
    const tag = opts.tag === undefined ? undefined : tagFilterKey(opts.tag);
    const after = opts.cursor ? decodeCursor(opts.cursor) : undefined;
    if (userId) q = q.where('user_id', '=', userId);
    if (opts.status) q = q.where('status', '=', opts.status);
    if (opts.kind) q = q.where('kind', '=', opts.kind);
    // A rare label or tag is read from its own index first (RARE_FILTER_MEDIA), and its media
    // listed by id; a common one is tested on each media while the library is walked newest first.
    let among: string[] | undefined;
    const narrow = (few: string[]) => {
      const ids = among ? new Set(among) : undefined;
      among = ids ? few.filter((id) => ids.has(id)) : few;
    };
    if (opts.label !== undefined) {
      const labelIds = await labelFilterIds(this.db, scope.tenantId, opts.label);
      const few = await fewMediaWithLabels(this.db, scope.tenantId, labelIds);
      if (few) narrow(few);
      else {
        q = q.where(({ exists, selectFrom }) =>
          exists(
            selectFrom('asset_labels as al')
              .select('al.media_id')
              .whereRef('al.media_id', '=', 'mediaassets.id')
              .where('al.tenant_id', '=', scope.tenantId)
              .where('al.label_id', 'in', labelIds),
          ),
        );
      }
    }
    if (tag !== undefined) {
      // media_tags holds each media's tags as tagKey folds them (written with its search document).
      const few = await fewMediaWithTag(this.db, scope.tenantId, tag);
      if (few) narrow(few);
      else {
        q = q.where(({ exists, selectFrom }) =>
          exists(
            selectFrom('media_tags as mt')
              .select('mt.media_id')
              .whereRef('mt.media_id', '=', 'mediaassets.id')
              .where('mt.tenant_id', '=', scope.tenantId)
              .where('mt.tag', '=', tag),
          ),
        );
      }
    }
    if (among) {
      if (!among.length) return { items: [], next_cursor: null };
      q = q.where('id', 'in', among);
    }
    if (after) {
      q = q.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    }
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(opts.limit + 1)
      .execute();
    const page = rows.slice(0, opts.limit);
    const labels = await labelsOfMedia(
      this.db,
      p.tenantId,
      page.map((r) => r.id),
    );
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
    assertOwnerOrAdmin(p, row.user_id, 'reprocess this media');
    if (!needsProcessing(row.kind)) throw new AppError('conflict', `media of kind ${row.kind} has nothing to process`);
    if (row.status === 'queued' || row.status === 'processing') throw new AppError('conflict', `the media is already ${row.status}`);
    if (!(await transition(this.db, this.changes, { tenantId: p.tenantId, mediaId: row.id }, ['ready', 'error'], 'queued'))) {
      throw new AppError('conflict', 'the media changed meanwhile; read it and try again');
    }
    try {
      await this.queue.enqueue('process-media', { media_id: row.id, tenant_id: p.tenantId }, { dedupeKey: processJobKey(row.id) });
    } catch (err) {
      // As at ingest: the media is saved `queued`; the worker's sweep of stale queued media enqueues it.
      this.log?.warn({ err, mediaId: row.id }, 'enqueue failed; media stays queued until the next sweep');
    }
    return this.get(p, row.id);
  }

  /**
   * Removes the row (labels cascade) and every stored file of the media. Owner or admin only.
   *
   * The files are removed holding the media's lock, so that no job writes them meanwhile. When a
   * job holds the media (processing, a WebM encode), the row goes at once and the files are left
   * to that job, which removes them once it lets go and finds the media gone.
   */
  async delete(p: Principal, mediaId: string): Promise<void> {
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    assertOwnerOrAdmin(p, row.user_id, 'delete this media');
    const files = mediaPrefix({ tenantId: row.tenant_id, userId: row.user_id, mediaId: row.id });
    // The lock itself may not be writable (SQLite's lease row on a full disk): then the files go
    // first all the same, since removing them is what makes room, and the lock is asked again below.
    let lockUnknown = false;
    let lock = await this.locks?.acquire(row.id, 0).catch((err: unknown) => {
      lockUnknown = true;
      this.log?.warn({ err, mediaId: row.id }, 'could not take the media lock to delete it; removing its files first anyway');
      return undefined;
    });
    let events: MediaEvent[] | undefined;
    try {
      // Files first: on a full disk, removing them is what makes room for the database's write
      // (SQLite's WAL on the same file system). A failure after this leaves a record without files,
      // which a repeated DELETE removes.
      if (lock || !this.locks || lockUnknown) await this.store.deletePrefix(files);
      events = await this.deleteRecord(p, row);
      // The job that held the media may have let go just before the record went, and seen it still there.
      lock ??= await this.locks?.acquire(row.id, DELETE_LOCK_WAIT_MS).catch(() => undefined);
      // Again: a worker may have written a derived file meanwhile.
      if (lock || !this.locks || lockUnknown) await this.store.deletePrefix(files);
    } finally {
      await lock?.release();
      // The row is gone whatever happened to its files: readers must not keep it.
      if (events) await announce(this.changes, events);
    }
  }

  /** Deletes the media's row with its `deleted` event, and recounts the bank entry statistics of its labels. */
  private async deleteRecord(p: Principal, row: { id: string; tenant_id: string }): Promise<MediaEvent[]> {
    const mediaId = row.id;
    const { events } = await writeRecording(this.db, async (tx, record) => {
      const labels = await tx
        .selectFrom('asset_labels as al')
        .innerJoin('labels as l', 'l.id', 'al.label_id')
        .select(['l.kind', 'l.name'])
        .distinct()
        .where('al.media_id', '=', mediaId)
        .where('al.tenant_id', '=', p.tenantId)
        .execute();
      const res = await tx.deleteFrom('mediaassets').where('id', '=', mediaId).where('tenant_id', '=', p.tenantId).executeTakeFirst();
      // A concurrent DELETE removed it first: that one records the event.
      if (Number(res.numDeletedRows) === 0) return;
      // Bank entry statistics count what is labelled now: a deleted media no longer is. In the
      // same transaction, so no crash or concurrent label write leaves them counting it.
      for (const l of labels) await recomputeEntryStats(tx, p.tenantId, l.kind, l.name);
      record({ tenantId: row.tenant_id, mediaId: row.id, type: 'deleted' });
    });
    return events;
  }
}
