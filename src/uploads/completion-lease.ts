import fsp from 'node:fs/promises';
import type { Db } from '../db/database.js';
import { isDependencyUnavailable } from '../shared/dependency-errors.js';
import { AppError } from '../shared/errors.js';
import { nowIso, type UploadProtocol } from '../db/schema.js';
import { newId } from '../shared/ids.js';
import { formatIdentity, isCertainlyGone, parseIdentity } from '../shared/process-identity.js';
import { removePath } from '../storage/files.js';
import type { MediaRef } from '../storage/layout.js';

/** What a completion hands its media to (IngestService), asked to undo a media whose record was never written. */
export interface PendingMedia {
  takeBack(ref: MediaRef, restoreTo: string | undefined): Promise<boolean>;
}

/**
 * How long a completion's claim on its session holds without being renewed. The process
 * completing renews it every RENEW_MS, so a slow but live completion keeps it; a dead one
 * loses it within this time (or at once, when it ran on this machine: see process-identity.ts).
 */
export const COMPLETION_LEASE_MS = 30_000;
const RENEW_MS = 10_000;

export interface StrandedSession {
  id: string;
  tenant_id: string;
  user_id: string;
  protocol: UploadProtocol;
  total_size: number;
  lease_owner: string | null;
  pending_media_id: string | null;
}

/** A timestamp column as milliseconds (text on SQLite, a Date from PostgreSQL). */
function timeOf(v: unknown): number {
  return v instanceof Date ? v.getTime() : Date.parse(String(v));
}

function leaseUntil(from = Date.now()): string {
  return new Date(from + COMPLETION_LEASE_MS).toISOString();
}

/**
 * Moves an open session to `completing`, owned by this process, with the id of the media it is
 * about to create. Returns that id, or undefined when the session was not open.
 */
export async function claimCompletion(db: Db, sessionId: string): Promise<string | undefined> {
  const mediaId = newId();
  const res = await db
    .updateTable('upload_sessions')
    .set({ state: 'completing', updated_at: nowIso(), lease_owner: formatIdentity(), lease_until: leaseUntil(), pending_media_id: mediaId })
    .where('id', '=', sessionId)
    .where('state', '=', 'open')
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0 ? mediaId : undefined;
}

/** Renews this process's claim on a completing session until the returned function is called. */
export function keepCompletionAlive(db: Db, sessionId: string): () => void {
  const me = formatIdentity();
  const timer = setInterval(() => {
    db.updateTable('upload_sessions')
      .set({ lease_until: leaseUntil() })
      .where('id', '=', sessionId)
      .where('state', '=', 'completing')
      .where('lease_owner', '=', me)
      .execute()
      .catch(() => undefined);
  }, RENEW_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Whether this process still holds the completion of a session. */
export async function holdsCompletion(db: Db, sessionId: string): Promise<boolean> {
  const row = await db.selectFrom('upload_sessions').select(['state', 'lease_owner']).where('id', '=', sessionId).executeTakeFirst();
  return row?.state === 'completing' && row.lease_owner === formatIdentity();
}

/** The fields that say nobody is completing a session. */
export const NO_LEASE = { lease_owner: null, lease_until: null, pending_media_id: null } as const;

/**
 * Sessions of a protocol left `completing` by a process that is gone: its claim expired, or it
 * ran on this machine and no longer runs. Sessions from before claims were recorded count as
 * stranded once they were not updated for a lease.
 */
export async function findStranded(db: Db, protocol: UploadProtocol, now = Date.now()): Promise<StrandedSession[]> {
  const rows = await db
    .selectFrom('upload_sessions')
    .select(['id', 'tenant_id', 'user_id', 'protocol', 'total_size', 'lease_owner', 'lease_until', 'pending_media_id', 'updated_at'])
    .where('protocol', '=', protocol)
    .where('state', '=', 'completing')
    .limit(1000)
    .execute();
  return rows.filter((r) => isStranded(r, now)).map(strandedSession);
}

type LeaseFields = { lease_owner?: string | null; lease_until?: unknown; updated_at: unknown };

/** Whether the completion of a `completing` session is certainly no longer running. */
export function isStranded(r: LeaseFields, now = Date.now()): boolean {
  const until = r.lease_until ? timeOf(r.lease_until) : timeOf(r.updated_at) + COMPLETION_LEASE_MS;
  if (until < now) return true;
  const owner = r.lease_owner ? parseIdentity(r.lease_owner) : undefined;
  return owner !== undefined && isCertainlyGone(owner);
}

export function strandedSession(
  r: Omit<StrandedSession, 'lease_owner' | 'pending_media_id' | 'total_size'> & {
    total_size: unknown;
    lease_owner?: string | null;
    pending_media_id?: string | null;
  },
): StrandedSession {
  return {
    id: r.id,
    tenant_id: r.tenant_id,
    user_id: r.user_id,
    protocol: r.protocol,
    total_size: Number(r.total_size),
    lease_owner: r.lease_owner ?? null,
    pending_media_id: r.pending_media_id ?? null,
  };
}

/** Takes a stranded session's claim for this process; false when another process took it first. */
export async function takeOver(db: Db, s: StrandedSession): Promise<boolean> {
  let q = db
    .updateTable('upload_sessions')
    .set({ lease_owner: formatIdentity(), lease_until: leaseUntil(), updated_at: nowIso() })
    .where('id', '=', s.id)
    .where('state', '=', 'completing');
  q = s.lease_owner === null ? q.where('lease_owner', 'is', null) : q.where('lease_owner', '=', s.lease_owner);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/**
 * The media a dead completion was creating, when its record was never written (the record and
 * the session's `completed` are one transaction): the original it had handed to the store, if
 * any. What is stored for the media is removed; the original is moved back to `restoreTo` first,
 * unless the bytes are there already.
 */
export async function reclaimPendingMedia(db: Db, media: PendingMedia, s: StrandedSession, restoreTo: string): Promise<'restored' | 'none'> {
  if (!s.pending_media_id) return 'none';
  const exists = await db.selectFrom('mediaassets').select('id').where('id', '=', s.pending_media_id).executeTakeFirst();
  if (exists) return 'none';
  const there = await fsp.stat(restoreTo).catch(() => undefined);
  const restored = await media.takeBack({ tenantId: s.tenant_id, userId: s.user_id, mediaId: s.pending_media_id }, there ? undefined : restoreTo);
  return restored ? 'restored' : 'none';
}

/**
 * Takes up a stranded session for this process and puts its bytes back at `home`: they are
 * still there, or were moved to `staged` (the hand-off) or on into the store for a media whose
 * record was never written, which is removed. `then` finishes the recovery (reopens or
 * completes the session). False when another process took the session over first.
 *
 * When anything fails after the takeover, the claim is let go at once and the error raised:
 * the session stays `completing` with its bytes wherever they got to, and the next sweep or
 * request takes it up again (every step here can be run again).
 */
export async function takeUpStranded(
  db: Db,
  media: PendingMedia,
  s: StrandedSession,
  files: { home: string; staged: string },
  then: () => Promise<void>,
): Promise<boolean> {
  if (!(await takeOver(db, s))) return false;
  try {
    const { home, staged } = files;
    if (!(await fsp.stat(home).catch(() => undefined)) && (await fsp.stat(staged).catch(() => undefined))) await fsp.rename(staged, home);
    await reclaimPendingMedia(db, media, s, home);
    await removePath(staged);
    await then();
  } catch (err) {
    await releaseClaim(db, s.id);
    throw err;
  }
  return true;
}

/** Lets go of this process's claim on a completing session: it counts as stranded again at once. */
export async function releaseClaim(db: Db, sessionId: string): Promise<void> {
  await db
    .updateTable('upload_sessions')
    .set({ lease_until: new Date(Date.now() - 1).toISOString() })
    .where('id', '=', sessionId)
    .where('state', '=', 'completing')
    .where('lease_owner', '=', formatIdentity())
    .execute()
    .catch(() => undefined);
}

/** The answer to a request whose completion another process took over (this one's lease lapsed). */
export function takenOver(): AppError {
  return new AppError('upload-busy', 'another process took over completing this upload; poll its state');
}

/**
 * The answer to a request that found its session stranded and could not recover it: an outage
 * of the database as such (503), anything else as busy, since the next try takes it up again.
 */
export function recoveryFailed(err: unknown): unknown {
  if (isDependencyUnavailable(err)) return err;
  return new AppError('upload-busy', 'the upload is being recovered after a failure; try again shortly');
}
