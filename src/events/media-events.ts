import { dialectOf, type Db } from '../db/database.js';
import { writeTransaction } from '../db/write-transaction.js';
import { fromJson, nowIso, toJson } from '../db/schema.js';
import { newId } from '../shared/ids.js';
import type { MediaChangeReason, MediaChanges } from './media-changes.js';

/** What happened to a media: the same words as the in-process change reasons. */
export type MediaEventType = MediaChangeReason;

export interface MediaEventInput {
  tenantId: string;
  mediaId: string;
  type: MediaEventType;
  /** Small facts of the change, e.g. `{ status, error_code }`: never file contents, text or secrets. */
  data?: Record<string, unknown>;
}

export interface MediaEvent {
  /** UUIDv7 (time-ordered); a status event's id is its Server-Sent Events id. */
  id: string;
  tenantId: string;
  /** Position in the tenant's log: 1, 2, 3… with no gaps, in commit order. */
  seq: number;
  mediaId: string;
  type: MediaEventType;
  data: Record<string, unknown>;
  at: string;
}

/**
 * Appends events to the media event log, in the caller's transaction: they commit with the
 * change they record, or not at all. Each tenant's events take the next numbers of its sequence
 * from its counter row, which the transaction holds until it ends: on PostgreSQL a concurrent
 * writer of the same tenant waits there, so numbers are given out and committed in the same
 * order, and a rolled-back transaction gives its numbers back. On SQLite the one writer
 * serializes them anyway.
 *
 * Call it once per transaction, as its last statement (`writeWithEvents` does): the counter row
 * is then held only for the commit, and always after any row the change locked, so two writers
 * never wait for each other in a circle.
 */
export async function appendMediaEvents(tx: Db, events: readonly MediaEventInput[]): Promise<MediaEvent[]> {
  if (!events.length) return [];
  const at = nowIso();
  const byTenant = new Map<string, MediaEventInput[]>();
  for (const e of events) byTenant.set(e.tenantId, [...(byTenant.get(e.tenantId) ?? []), e]);
  const appended: MediaEvent[] = [];
  // Tenants in a fixed order: two writers with the same tenants take their rows in the same order.
  for (const tenantId of [...byTenant.keys()].sort()) {
    const list = byTenant.get(tenantId)!;
    const { seq: last } = await tx
      .insertInto('media_event_seqs')
      .values({ tenant_id: tenantId, seq: list.length })
      .onConflict((oc) => oc.column('tenant_id').doUpdateSet((eb) => ({ seq: eb('media_event_seqs.seq', '+', eb.ref('excluded.seq')) })))
      .returning('seq')
      .executeTakeFirstOrThrow();
    let seq = Number(last) - list.length;
    for (const e of list) appended.push({ id: newId(), tenantId, seq: ++seq, mediaId: e.mediaId, type: e.type, data: e.data ?? {}, at });
  }
  await tx
    .insertInto('media_events')
    .values(appended.map((e) => ({ id: e.id, tenant_id: e.tenantId, seq: e.seq, media_id: e.mediaId, type: e.type, data: toJson(e.data), at: e.at })))
    .execute();
  return appended;
}

/** Tells this process's listeners (and through them the change bus) of events that committed. */
export async function announce(changes: MediaChanges | undefined, events: readonly MediaEvent[]): Promise<void> {
  if (!changes) return;
  for (const e of events) {
    await changes.emit({
      tenantId: e.tenantId,
      mediaId: e.mediaId,
      reason: e.type,
      seq: e.seq,
      ...(e.type === 'status' ? { status: e.data.status as never } : {}),
    });
  }
}

/**
 * Runs `write` in a transaction and records the events it names (`record`) in the same one,
 * appended last; announces them once it committed. A write that throws records nothing.
 */
export async function writeWithEvents<T>(
  db: Db,
  changes: MediaChanges | undefined,
  write: (tx: Db, record: (event: MediaEventInput) => void) => Promise<T>,
): Promise<T> {
  const { result, events } = await writeRecording(db, write);
  await announce(changes, events);
  return result;
}

/** As writeWithEvents, but leaves announcing to the caller (who has more to do after the commit first). */
export async function writeRecording<T>(
  db: Db,
  write: (tx: Db, record: (event: MediaEventInput) => void) => Promise<T>,
): Promise<{ result: T; events: MediaEvent[] }> {
  // A write transaction from its first statement (BEGIN IMMEDIATE on SQLite): writers may read
  // before they write, which a plain BEGIN would let another process's commit make unwritable.
  const dialect = dialectOf(db);
  const run = <R>(fn: (tx: Db) => Promise<R>) => (dialect ? writeTransaction({ db, dialect }, fn) : db.transaction().execute(fn));
  return run(async (tx) => {
    const pending: MediaEventInput[] = [];
    const result = await write(tx, (e) => pending.push(e));
    return { result, events: await appendMediaEvents(tx, pending) };
  });
}

/**
 * The tenant's events after `afterSeq`, oldest first, at most `limit`: a consumer keeps the last
 * `seq` it handled and asks again from there. Since numbers are committed in order, a later
 * event is never seen before an earlier one.
 */
export async function mediaEventsSince(db: Db, tenantId: string, afterSeq: number, limit = 100): Promise<MediaEvent[]> {
  const rows = await db
    .selectFrom('media_events')
    .select(['id', 'tenant_id', 'seq', 'media_id', 'type', 'data', 'at'])
    .where('tenant_id', '=', tenantId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    tenantId: r.tenant_id,
    seq: Number(r.seq),
    mediaId: r.media_id,
    type: r.type as MediaEventType,
    data: fromJson<Record<string, unknown>>(r.data, {}),
    at: r.at,
  }));
}
