import type { Db } from '../db/database.js';
import { fromJson, type MediaStatus, type ModerationDecisionKind, type ModerationState } from '../db/schema.js';
import { notFound } from '../shared/errors.js';
import { assertModerationVisible, hiddenByModeration } from '../access/visibility.js';
import { isOwnerOrAdmin } from '../access/ownership.js';
import type { Principal } from '../tenancy/principal.js';
import type { MediaChanges } from '../events/media-changes.js';
import { labelingOf } from '../labels/labeling-state.js';
import type { ModerationLabel } from '../moderation/moderation-move.js';

export interface StatusEvent {
  type: 'status';
  /** The media_events id (the SSE event id); null only for media older than the event log. */
  id: string | null;
  status: MediaStatus;
  at: string;
  error_code: string | null;
  error_reason: string | null;
}

/** A moderation decision, told to the media's owner and admin keys only: what was decided, and on which labels. */
export interface ModerationEvent {
  type: 'moderation';
  /** The media_events id (the SSE event id). */
  id: string;
  at: string;
  decision: ModerationDecisionKind;
  previous_state: ModerationState;
  state: ModerationState;
  /**
   * The labels it was decided on, each with its confidence and threshold: for a hold those that
   * met their thresholds, for a clear every moderation label, for a moderator's decision what they
   * saw; none while the media waits for the models (`await`).
   */
  labels: ModerationLabel[];
  /** A moderator's note. */
  note: string | null;
}

export type MediaStreamEvent = StatusEvent | ModerationEvent;

/** An idle stream checks that its media still exists and is visible once per this many polls (changes in this process are seen at once). */
const GONE_CHECK_EVERY = 10;

export const TERMINAL_STATUSES: ReadonlySet<MediaStatus> = new Set(['ready', 'error']);

/** What a subscriber gets on connecting: the events to send now and where to continue from. */
export interface StatusBacklog {
  events: MediaStreamEvent[];
  /** Id of the newest event sent (or known); later events are those after it. */
  cursor: string;
  /** The media's status after the backlog. */
  status: MediaStatus;
  /** Whether the viewer is told of moderation decisions: the media's owner and admin keys. */
  moderation: boolean;
  /**
   * Whether a stream that does not follow has said everything: the status is ready or error and,
   * for a viewer told of moderation, the media no longer waits for the models' decision.
   */
  settled: boolean;
}

export interface StatusWatch {
  stop(): void;
}

/** A media the models are still to look at before moderation decides (a failed labeling waits for people, not for them). */
function awaitsModels(row: { moderation_state: ModerationState; file_metadata: unknown }): boolean {
  return row.moderation_state === 'pending' && labelingOf(fromJson<Record<string, unknown>>(row.file_metadata, {})).state === 'pending';
}

/**
 * Status changes of one media as a feed, with its moderation decisions for the owner and admin
 * keys: the backlog on connecting (the current status and decision, or what happened after a
 * Last-Event-ID), then each new event. Events come from the media_events log, polled, so a worker
 * in another process is seen as well; a change in this process wakes the poll at once.
 */
export class MediaStatusFeed {
  constructor(
    private readonly db: Db,
    private readonly changes: MediaChanges | undefined,
    private readonly pollMs: number,
  ) {}

  private async mediaRow(tenantId: string, mediaId: string) {
    return this.db
      .selectFrom('mediaassets')
      .select(['id', 'user_id', 'status', 'error_code', 'error_reason', 'updated_at', 'moderation_state', 'file_metadata'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
  }

  /** Events of the media after `cursor` (ids are time-ordered UUIDv7), oldest first; moderation decisions only when asked. */
  async eventsAfter(tenantId: string, mediaId: string, cursor: string, moderation = false): Promise<MediaStreamEvent[]> {
    const rows = await this.db
      .selectFrom('media_events')
      .select(['id', 'type', 'data', 'at'])
      .where('tenant_id', '=', tenantId)
      .where('media_id', '=', mediaId)
      .where('type', 'in', moderation ? ['status', 'moderation'] : ['status'])
      .where('id', '>', cursor)
      .orderBy('id')
      .limit(100)
      .execute();
    return this.toEvents(tenantId, mediaId, rows);
  }

  /** The newest event of a type, if any. */
  private async newest(tenantId: string, mediaId: string, type: 'status' | 'moderation'): Promise<MediaStreamEvent | undefined> {
    const row = await this.db
      .selectFrom('media_events')
      .select(['id', 'type', 'data', 'at'])
      .where('tenant_id', '=', tenantId)
      .where('media_id', '=', mediaId)
      .where('type', '=', type)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? (await this.toEvents(tenantId, mediaId, [row]))[0] : undefined;
  }

  private async toEvents(tenantId: string, mediaId: string, rows: Array<{ id: string; type: string; data: unknown; at: string }>): Promise<MediaStreamEvent[]> {
    const parsed = rows.map((r) => ({ ...r, data: fromJson<Record<string, unknown>>(r.data, {}) }));
    const statuses = await this.withReasons(
      tenantId,
      mediaId,
      parsed
        .filter((r) => r.type === 'status')
        .map((r) => ({
          type: 'status' as const,
          id: r.id,
          status: r.data.status as MediaStatus,
          at: r.at,
          error_code: (r.data.error_code as string | null) ?? null,
        })),
    );
    const decisions = await this.decisionsOf(
      tenantId,
      mediaId,
      parsed.filter((r) => r.type === 'moderation'),
    );
    const byId = new Map<string, MediaStreamEvent>([...statuses.map((e) => [e.id!, e] as const), ...decisions.map((e) => [e.id, e] as const)]);
    return parsed.flatMap((r) => byId.get(r.id) ?? []);
  }

  /** The error reason is kept on the media row: it belongs to the newest error event only. */
  private async withReasons(tenantId: string, mediaId: string, rows: Array<Omit<StatusEvent, 'error_reason'>>): Promise<StatusEvent[]> {
    const lastError = [...rows].reverse().find((r) => r.status === 'error');
    const media = lastError ? await this.mediaRow(tenantId, mediaId) : undefined;
    return rows.map((r) => ({
      ...r,
      error_reason: r === lastError && media?.status === 'error' && media.error_code === r.error_code ? media.error_reason : null,
    }));
  }

  /**
   * Moderation events with the labels and note of their decisions: named by the event since it
   * names one, else (events written before) the newest decision of that kind made by then.
   */
  private async decisionsOf(
    tenantId: string,
    mediaId: string,
    rows: Array<{ id: string; data: Record<string, unknown>; at: string }>,
  ): Promise<ModerationEvent[]> {
    if (!rows.length) return [];
    const named = rows.map((r) => r.data.decision_id).filter((id): id is string => typeof id === 'string');
    const found = new Map(
      (named.length
        ? await this.db
            .selectFrom('moderation_decisions')
            .select(['id', 'labels', 'note'])
            .where('tenant_id', '=', tenantId)
            .where('media_id', '=', mediaId)
            .where('id', 'in', named)
            .execute()
        : []
      ).map((d) => [d.id, d]),
    );
    const out: ModerationEvent[] = [];
    for (const r of rows) {
      const decision = r.data.decision as ModerationDecisionKind;
      const d =
        typeof r.data.decision_id === 'string'
          ? found.get(r.data.decision_id)
          : await this.db
              .selectFrom('moderation_decisions')
              .select(['id', 'labels', 'note'])
              .where('tenant_id', '=', tenantId)
              .where('media_id', '=', mediaId)
              .where('decision', '=', decision)
              .where('at', '<=', r.at)
              .orderBy('id', 'desc')
              .limit(1)
              .executeTakeFirst();
      out.push({
        type: 'moderation',
        id: r.id,
        at: r.at,
        decision,
        previous_state: r.data.previous_state as ModerationState,
        state: r.data.state as ModerationState,
        labels: fromJson<ModerationLabel[]>(d?.labels, []),
        note: d?.note ?? null,
      });
    }
    return out;
  }

  /**
   * Whether a stream that sent everything up to `cursor` (its status now `status`) has said all
   * it will: see StatusBacklog.settled. When the media no longer waits, the log is looked at once
   * more: a decision committed between the last look and the row read comes back in `late`, to
   * send first (the stream is not settled then).
   */
  private async settledAt(
    tenantId: string,
    mediaId: string,
    at: { cursor: string; status: MediaStatus; moderation: boolean },
  ): Promise<{ settled: boolean; late: MediaStreamEvent[] }> {
    if (!TERMINAL_STATUSES.has(at.status)) return { settled: false, late: [] };
    if (!at.moderation) return { settled: true, late: [] };
    const row = await this.mediaRow(tenantId, mediaId);
    // Gone: the watch says so.
    if (!row || awaitsModels(row)) return { settled: false, late: [] };
    const late = await this.eventsAfter(tenantId, mediaId, at.cursor, true);
    return { settled: late.length === 0, late };
  }

  /**
   * Checks the media is the caller's tenant's (404 otherwise) and visible to them under the
   * moderation rule (`moderation-hidden` otherwise) and returns the backlog: with no
   * `lastEventId`, the current status (the newest status event) and, for the owner and admin keys,
   * the newest moderation decision; with one, every event after it.
   */
  async backlog(p: Principal, mediaId: string, lastEventId?: string): Promise<StatusBacklog> {
    const media = await this.mediaRow(p.tenantId, mediaId);
    if (!media) throw notFound('media');
    assertModerationVisible(p, media);
    const moderation = isOwnerOrAdmin(p, media.user_id);
    let events: MediaStreamEvent[];
    if (lastEventId) {
      events = await this.eventsAfter(p.tenantId, mediaId, lastEventId, moderation);
    } else {
      const status = await this.newest(p.tenantId, mediaId, 'status');
      // A media from before the event log: its row is the only record of its status.
      const current: StatusEvent = status
        ? (status as StatusEvent)
        : { type: 'status', id: null, status: media.status, at: media.updated_at, error_code: media.error_code, error_reason: media.error_reason };
      const decision = moderation ? await this.newest(p.tenantId, mediaId, 'moderation') : undefined;
      events = [current, ...(decision ? [decision] : [])].sort((a, b) => (a.id ?? '').localeCompare(b.id ?? ''));
    }
    let cursor = [...events].reverse().find((e) => e.id)?.id ?? lastEventId ?? '';
    let status = lastStatus(events) ?? media.status;
    let settled = false;
    // A decision may land while the backlog is read: sent with it (a few rounds at most, the watch does the rest).
    for (let round = 0; round < 3; round++) {
      const check = await this.settledAt(p.tenantId, mediaId, { cursor, status, moderation });
      settled = check.settled;
      if (!check.late.length) break;
      events = [...events, ...check.late];
      cursor = check.late.at(-1)!.id!;
      status = lastStatus(check.late) ?? status;
    }
    return { events, cursor, status, moderation, settled };
  }

  /**
   * Calls `onEvents` with each batch of new events after the backlog for `viewer`, `onSettled`
   * once a stream that does not follow has said everything (see StatusBacklog.settled), `onGone`
   * if the media is deleted and `onHidden` if moderation hides it from the viewer, until stopped.
   * Polls at the configured interval; same-process changes poll at once.
   */
  watch(
    viewer: Principal,
    mediaId: string,
    from: Pick<StatusBacklog, 'cursor' | 'status' | 'moderation'>,
    opts: { follow: boolean },
    handlers: { onEvents(events: MediaStreamEvent[]): void; onSettled(): void; onGone(): void; onHidden(): void; onError(err: unknown): void },
  ): StatusWatch {
    const { tenantId } = viewer;
    const { moderation } = from;
    let { cursor, status } = from;
    let stopped = false;
    let running = false;
    let again = false;
    let checkGone = false;
    /** Whether the media is still there and visible to the viewer; tells the handlers and stops if not. */
    const stillVisible = async (): Promise<boolean> => {
      const row = await this.mediaRow(tenantId, mediaId);
      if (stopped) return false;
      if (row && !(hiddenByModeration(row.moderation_state) && !isOwnerOrAdmin(viewer, row.user_id))) return true;
      stopped = true;
      if (row) handlers.onHidden();
      else handlers.onGone();
      return false;
    };
    let idlePolls = 0;
    let timer: NodeJS.Timeout | undefined;
    const poll = async () => {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      clearTimeout(timer);
      try {
        do {
          again = false;
          const events = await this.eventsAfter(tenantId, mediaId, cursor, moderation);
          if (stopped) return;
          // Events are rare: each batch is checked against moderation before it is sent.
          if (events.length) {
            if (!(await stillVisible())) return;
            cursor = events.at(-1)!.id!;
            status = lastStatus(events) ?? status;
            handlers.onEvents(events);
            idlePolls = 0;
          } else if ((checkGone || ++idlePolls % GONE_CHECK_EVERY === 0) && !(await stillVisible())) {
            return;
          }
          checkGone = false;
          if (!opts.follow) {
            const { settled, late } = await this.settledAt(tenantId, mediaId, { cursor, status, moderation });
            if (stopped) return;
            if (late.length) again = true;
            else if (settled) {
              stopped = true;
              handlers.onSettled();
              return;
            }
          }
        } while (again && !stopped);
      } catch (err) {
        handlers.onError(err);
      } finally {
        running = false;
        if (!stopped) timer = setTimeout(() => void poll(), this.pollMs);
      }
    };
    const unsubscribe = this.changes?.on((change) => {
      if (change.mediaId !== mediaId || change.tenantId !== tenantId) return;
      if (change.reason === 'deleted' || change.reason === 'moderation') checkGone = true;
      // The models' labeling recorded (done or failed): a stream waiting for their decision may be done.
      const waking =
        change.reason === 'status' || change.reason === 'deleted' || change.reason === 'moderation' || (moderation && change.reason === 'artifacts');
      if (waking) void poll();
    });
    timer = setTimeout(() => void poll(), this.pollMs);
    return {
      stop() {
        stopped = true;
        clearTimeout(timer);
        unsubscribe?.();
      },
    };
  }
}

/** The status the newest status event among these gives, if any. */
function lastStatus(events: readonly MediaStreamEvent[]): MediaStatus | undefined {
  return [...events].reverse().find((e): e is StatusEvent => e.type === 'status')?.status;
}
