import path from 'node:path';
import type { MediaChanges } from '../events/media-changes.js';
import { announce, writeRecording, type MediaEvent } from '../events/media-events.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { nowIso, toJson } from '../db/schema.js';
import { AppError } from '../shared/errors.js';
import { newId } from '../shared/ids.js';
import { formatIdentity } from '../shared/process-identity.js';
import { NO_LEASE } from './completion-lease.js';
import { attachUserLabels, labelsOfMedia } from '../labels/media-label-store.js';
import { claimedKind, detectKind, needsProcessing, type DetectedType } from '../media/detect-kind.js';
import { toMediaView, type MediaView } from '../media/media-service.js';
import { statusEvent } from '../media/status.js';
import { processJobKey, type JobQueue } from '../queue/queue.js';
import { mediaPrefix, originalKey, type MediaRef } from '../storage/layout.js';
import type { MediaStore } from '../storage/store.js';

export interface IngestInput {
  tenantId: string;
  userId: string;
  sessionId: string;
  /** The assembled file, in local staging (it is handed over to the store: moved, not copied). */
  file: string;
  filename: string;
  contentType: string | null;
  size: number;
  sha256: string;
  caption: string | null;
  /** The spoken language the upload declared (BCP 47), or null. */
  language?: string | null;
  tags: string[];
  labels: string[];
  /** What `detect` found in the file, when the caller ran it already (e.g. while hashing). */
  detected?: DetectedType;
  /** The media's id, when the caller recorded it beforehand (to find the files of a completion that died). */
  mediaId?: string;
}

/**
 * The one path every finished upload takes, whatever its protocol: detect the kind from the
 * bytes, hand the file from local staging over to the media store, create the record with its
 * caption, tags and labels, and hand it to the worker (or mark it ready when there is nothing to
 * derive).
 */
export class IngestService {
  constructor(
    private readonly db: Db,
    private readonly store: MediaStore,
    private readonly queue: JobQueue,
    private readonly probeTimeoutMs: number,
    private readonly log: Logger,
    private readonly changes?: MediaChanges,
  ) {}

  /** What a file is, from its bytes. */
  detect(file: string): Promise<DetectedType> {
    return detectKind(file, this.probeTimeoutMs);
  }

  async ingest(input: IngestInput): Promise<MediaView> {
    const detected = input.detected ?? (await this.detect(input.file));
    const mediaId = input.mediaId ?? newId();
    const ref = { tenantId: input.tenantId, userId: input.userId, mediaId };
    const target = originalKey(ref, detected.ext);
    const claimed = claimedKind(input.filename, input.contentType);
    // Sent as media, but not readable as any: a clear error instead of an opaque stored file.
    const unrecognized = detected.kind === 'other' && claimed !== undefined;
    const process = needsProcessing(detected.kind);
    const status = unrecognized ? 'error' : process ? 'queued' : 'ready';
    const now = nowIso();
    const errorCode = unrecognized ? 'unrecognized-content' : null;
    await this.store.putFile(target, input.file, { move: true });
    let events: MediaEvent[];
    try {
      ({ events } = await writeRecording(this.db, async (tx, record) => {
        await tx
          .insertInto('mediaassets')
          .values({
            id: mediaId,
            tenant_id: input.tenantId,
            user_id: input.userId,
            status,
            error_code: errorCode,
            error_reason: unrecognized ? `the file was sent as ${claimed} but its content (${detected.mime}) is not a readable ${claimed} format` : null,
            kind: detected.kind,
            original_filename: input.filename,
            mime_type: detected.mime,
            size: input.size,
            sha256: input.sha256,
            caption: input.caption,
            user_tags: toJson(input.tags),
            file_metadata: toJson({
              original: { path: target, mime_type: detected.mime, size: input.size },
              ...(input.language ? { language: input.language } : {}),
            }),
            upload_session_id: input.sessionId,
            created_at: now,
            updated_at: now,
            processing_started_at: null,
            ready_at: status === 'ready' ? now : null,
            playback_key: randomBytes(16).toString('base64url'),
          })
          .execute();
        await attachUserLabels(tx, ref, input.labels);
        // Only while this process still holds the completion: one taken up by another process
        // (its lease lapsed) must not also become a media here.
        const done = await tx
          .updateTable('upload_sessions')
          .set({ state: 'completed', media_id: mediaId, updated_at: now, ...NO_LEASE })
          .where('id', '=', input.sessionId)
          .where('state', '=', 'completing')
          .where('lease_owner', '=', formatIdentity())
          .executeTakeFirst();
        if (Number(done.numUpdatedRows) === 0) throw new AppError('upload-busy', 'the upload was taken up by another process');
        // The first status is written with the row: the event the state machine starts from.
        record(statusEvent(ref, status, errorCode));
        record({ tenantId: input.tenantId, mediaId, type: 'created', data: { kind: detected.kind } });
      }));
    } catch (err) {
      // The original goes back where the caller handed it over (it may be the only copy of the
      // bytes), then the half-made media folder is removed.
      await this.store.moveToLocal(target, input.file).catch(() => undefined);
      await this.store.deletePrefix(mediaPrefix(ref));
      throw err;
    }
    await announce(this.changes, events);
    if (status === 'queued') {
      try {
        await this.queue.enqueue('process-media', { media_id: mediaId, tenant_id: input.tenantId }, { dedupeKey: processJobKey(mediaId) });
      } catch (err) {
        // The record is safe; the worker's sweep of stale queued media enqueues it again.
        this.log.warn({ err, mediaId }, 'enqueue failed; media stays queued until the next sweep');
      }
    }
    const row = await this.db.selectFrom('mediaassets').selectAll().where('id', '=', mediaId).executeTakeFirstOrThrow();
    const labels = await labelsOfMedia(this.db, input.tenantId, [mediaId]);
    this.log.info({ mediaId, kind: detected.kind, mime: detected.mime, via: detected.via, size: input.size }, 'media ingested');
    return toMediaView(row, labels.get(mediaId));
  }

  /**
   * Undoes what a completion that died half-way left of a media whose record was never written:
   * its original goes back to `restoreTo` in staging (when given), and everything stored for the
   * media is removed. Whether the original was put back.
   */
  async takeBack(ref: MediaRef, restoreTo: string | undefined): Promise<boolean> {
    const prefix = mediaPrefix(ref);
    const original = (await this.store.list(`${prefix}/media`)).find((o) => path.posix.basename(o.key).startsWith('original.'));
    const restored = original && restoreTo ? await this.store.moveToLocal(original.key, restoreTo) : false;
    await this.store.deletePrefix(prefix);
    return restored;
  }
}
