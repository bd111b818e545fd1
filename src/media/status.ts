import type { Db } from '../db/database.js';
import { nowIso, type MediaAssetsTable, type MediaStatus } from '../db/schema.js';
import type { MediaChanges } from '../events/media-changes.js';
import { writeWithEvents, type MediaEventInput } from '../events/media-events.js';
import { moveModerationState } from '../moderation/moderation-move.js';

/**
 * The status a media may move to from each status:
 *
 *     queued     → processing, error
 *     processing → processing (a new attempt of its job), ready, error
 *     ready      → queued (reprocess)
 *     error      → queued (reprocess, an admin's retry of its job)
 *
 * A media is created `queued`, `ready` (nothing to derive) or `error` (unreadable) by ingest,
 * which records that first status event in the transaction that creates the row.
 */
const MOVES: Readonly<Record<MediaStatus, readonly MediaStatus[]>> = {
  queued: ['processing', 'error'],
  processing: ['processing', 'ready', 'error'],
  ready: ['queued'],
  error: ['queued'],
};

export function canMove(from: MediaStatus, to: MediaStatus): boolean {
  return MOVES[from].includes(to);
}

/** A move the state machine does not have: a bug in the caller, never the user's doing. */
export class ForbiddenStatusMove extends Error {
  constructor(
    readonly from: MediaStatus,
    readonly to: MediaStatus,
  ) {
    super(`a media's status cannot move from ${from} to ${to}`);
    this.name = 'ForbiddenStatusMove';
  }
}

export interface MediaRef {
  tenantId: string;
  mediaId: string;
}

/** Why a media failed: required when moving to `error`. */
export interface ErrorDetails {
  code: string;
  reason: string;
}

/** The status event of a media (for ingest, which writes the first status with the row). */
export function statusEvent(media: MediaRef, status: MediaStatus, errorCode: string | null): MediaEventInput {
  return { tenantId: media.tenantId, mediaId: media.mediaId, type: 'status', data: { status, error_code: errorCode } };
}

type StatusColumns = Partial<Pick<MediaAssetsTable, 'error_code' | 'error_reason' | 'processing_started_at' | 'ready_at'>>;

/** What else a move writes on the media row. */
function columnsOf(to: MediaStatus, now: string, error: ErrorDetails | undefined): StatusColumns {
  switch (to) {
    case 'processing':
      return { processing_started_at: now, error_code: null, error_reason: null };
    case 'ready':
      return { ready_at: now };
    case 'error':
      return { error_code: error!.code, error_reason: error!.reason };
    case 'queued':
      return { error_code: null, error_reason: null };
  }
}

/**
 * The one way a media's status changes. Moves the media to `to` if its status is still one of
 * `from` (so concurrent movers cannot both win), and records the status event in the same
 * transaction; announces it once committed. Returns whether it moved: false when the media is
 * gone or its status is no longer one of `from`. A move the state machine does not have throws
 * ForbiddenStatusMove, whatever the media's status. With `awaitModeration`, a move to ready
 * also moves moderation state `none` to `pending` (the moderating follow-ups will decide).
 */
export async function transition(
  db: Db,
  changes: MediaChanges | undefined,
  media: MediaRef,
  from: MediaStatus | readonly MediaStatus[],
  to: MediaStatus,
  error?: ErrorDetails,
  opts: { awaitModeration?: boolean } = {},
): Promise<boolean> {
  const froms: readonly MediaStatus[] = typeof from === 'string' ? [from] : from;
  for (const f of froms) if (!canMove(f, to)) throw new ForbiddenStatusMove(f, to);
  if (to === 'error' && !error) throw new Error('a move to error needs its code and reason');
  return writeWithEvents(db, changes, async (tx, record) => {
    const now = nowIso();
    const res = await tx
      .updateTable('mediaassets')
      .set({ status: to, updated_at: now, ...columnsOf(to, now, error) })
      .where('id', '=', media.mediaId)
      .where('tenant_id', '=', media.tenantId)
      .where('status', 'in', froms)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) return false;
    record(statusEvent(media, to, error?.code ?? null));
    if (to === 'ready' && opts.awaitModeration) {
      // Published only once the models have looked at it: nothing unmoderated reaches others.
      await moveModerationState(tx, record, {
        tenantId: media.tenantId,
        mediaId: media.mediaId,
        from: 'none',
        to: 'pending',
        decision: 'await',
        labels: [],
        note: null,
        actor: null,
      });
    }
    return true;
  });
}
