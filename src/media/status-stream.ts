import type { Db } from '../db/database.js';
import type { MediaStatus } from '../db/schema.js';
import { notFound } from '../shared/errors.js';
import { assertModerationVisible, hiddenByModeration } from '../access/visibility.js';
import { isOwnerOrAdmin } from '../access/ownership.js';
import type { Principal } from '../tenancy/principal.js';
import type { MediaChanges } from '../events/media-changes.js';

export interface StatusEvent {
  /** The media_status_events id (the SSE event id); null only for media older than the event log. */
  id: string | null;
  status: MediaStatus;
  at: string;
  error_code: string | null;
  error_reason: string | null;
}

/** An idle stream checks that its media still exists and is visible once per this many polls (changes in this process are seen at once). */
const GONE_CHECK_EVERY = 10;

export const TERMINAL_STATUSES: ReadonlySet<MediaStatus> = new Set(['ready', 'error']);

/** What a subscriber gets on connecting: the events to send now and where to continue from. */
export interface StatusBacklog {
  events: StatusEvent[];
  /** Id of the newest event sent (or known); later events are those after it. */
  cursor: string;
  /** The media's status after the backlog. */
  status: MediaStatus;
}

export interface StatusWatch {
  stop(): void;
}

/**
 * Status changes of one media as a feed: the backlog on connecting (the current status, or
 * what happened after a Last-Event-ID), then each new event. Events come from the
 * media_status_events log, polled, so a worker in another process is seen as well; a change
 * in this process wakes the poll at once.
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
      .select(['id', 'user_id', 'status', 'error_code', 'error_reason', 'updated_at', 'moderation_state'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
  }

  /** Events of the media after `cursor` (ids are time-ordered UUIDv7), oldest first. */
  async eventsAfter(tenantId: string, mediaId: string, cursor: string): Promise<StatusEvent[]> {
    const rows = await this.db
      .selectFrom('media_status_events')
      .select(['id', 'status', 'at', 'error_code'])
      .where('tenant_id', '=', tenantId)
      .where('media_id', '=', mediaId)
      .where('id', '>', cursor)
      .orderBy('id')
      .limit(100)
      .execute();
    return this.withReasons(tenantId, mediaId, rows);
  }

  /** The error reason is kept on the media row: it belongs to the newest error event only. */
  private async withReasons(tenantId: string, mediaId: string, rows: Array<Omit<StatusEvent, 'error_reason'> & { id: string }>): Promise<StatusEvent[]> {
    const lastError = [...rows].reverse().find((r) => r.status === 'error');
    const media = lastError ? await this.mediaRow(tenantId, mediaId) : undefined;
    return rows.map((r) => ({
      ...r,
      error_reason: r === lastError && media?.status === 'error' && media.error_code === r.error_code ? media.error_reason : null,
    }));
  }

  /**
   * Checks the media is the caller's tenant's (404 otherwise) and visible to them under the
   * moderation rule (`moderation-hidden` otherwise) and returns the backlog: with no
   * `lastEventId`, the current status (the newest event); with one, every event after it.
   */
  async backlog(p: Principal, mediaId: string, lastEventId?: string): Promise<StatusBacklog> {
    const media = await this.mediaRow(p.tenantId, mediaId);
    if (!media) throw notFound('media');
    assertModerationVisible(p, media);
    if (lastEventId) {
      const events = await this.eventsAfter(p.tenantId, mediaId, lastEventId);
      return { events, cursor: events.at(-1)?.id ?? lastEventId, status: events.at(-1)?.status ?? media.status };
    }
    const newest = await this.db
      .selectFrom('media_status_events')
      .select(['id', 'status', 'at', 'error_code'])
      .where('tenant_id', '=', p.tenantId)
      .where('media_id', '=', mediaId)
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (newest) {
      const [event] = await this.withReasons(p.tenantId, mediaId, [newest]);
      return { events: [event!], cursor: newest.id, status: newest.status };
    }
    // A media from before the event log: its row is the only record of its status.
    const event: StatusEvent = { id: null, status: media.status, at: media.updated_at, error_code: media.error_code, error_reason: media.error_reason };
    return { events: [event], cursor: '', status: media.status };
  }

  /**
   * Calls `onEvents` with each batch of new events after `cursor` for `viewer`, `onGone` if the
   * media is deleted and `onHidden` if moderation hides it from the viewer, until stopped.
   * Polls at the configured interval; same-process changes poll at once.
   */
  watch(
    viewer: Principal,
    mediaId: string,
    cursor: string,
    handlers: { onEvents(events: StatusEvent[]): void; onGone(): void; onHidden(): void; onError(err: unknown): void },
  ): StatusWatch {
    const { tenantId } = viewer;
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
          const events = await this.eventsAfter(tenantId, mediaId, cursor);
          if (stopped) return;
          // Events are rare: each batch is checked against moderation before it is sent.
          if (events.length) {
            if (!(await stillVisible())) return;
            cursor = events.at(-1)!.id!;
            handlers.onEvents(events);
            idlePolls = 0;
          } else if ((checkGone || ++idlePolls % GONE_CHECK_EVERY === 0) && !(await stillVisible())) {
            return;
          }
          checkGone = false;
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
      if (change.reason === 'status' || change.reason === 'deleted' || change.reason === 'moderation') void poll();
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
