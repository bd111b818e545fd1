import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { MediaChange, MediaChanges } from './media-changes.js';

/** What other processes learn of a change: enough to forget what they derived from the media. */
export interface RemoteChange {
  tenantId: string;
  mediaId: string;
  reason: MediaChange['reason'];
  /** The change's place in the tenant's media event log, when it has one. */
  seq?: number;
}

export interface ChangeBusHandlers {
  /** A change made by another process (after it committed). */
  change(change: RemoteChange): void;
  /** Another process changed a tenant's label hierarchy (null: every tenant's, a global bank). */
  labels(tenantId: string | null): void;
  /** Changes announced meanwhile may have been missed (the subscription was down): forget everything. */
  reset(): void;
}

/**
 * Tells every other process of the deployment about media changes, so that caches of API
 * processes forget a record as soon as a worker (or another API process) changed it, instead
 * of after their TTL. Delivery is at most once: while the subscription is down `live` is false
 * (caches are not trusted then), and when it comes back `reset` is called, since messages sent
 * meanwhile are gone.
 */
export interface ChangeBus {
  /** True while this process hears every announcement (the subscription stands). */
  readonly live: boolean;
  /** Announces every change of this process's `changes` (emitted after commit). */
  publishFrom(changes: MediaChanges): void;
  /** Tells the others that a tenant's label hierarchy may have changed (null: every tenant's). */
  announceLabels(tenantId: string | null): void;
  /** Starts listening; does not wait for the connection (`reset` is called once it stands). */
  subscribe(handlers: ChangeBusHandlers): void;
  close(): Promise<void>;
}

/**
 * The wire format both backends share: `o` the sending process (its own messages are
 * ignored), then either `l` (a label hierarchy) or `t`/`m`/`r` (a media change), with `s` its
 * event's sequence number when it has one.
 */
export class ChangeMessages {
  readonly origin = randomUUID();

  change(c: MediaChange): string {
    return JSON.stringify({ o: this.origin, t: c.tenantId, m: c.mediaId, r: c.reason, ...(c.seq !== undefined ? { s: c.seq } : {}) });
  }

  labels(tenantId: string | null): string {
    return JSON.stringify({ o: this.origin, l: tenantId });
  }

  /** Hands a received message to its handler; ignores this process's own and anything malformed. */
  dispatch(message: string, handlers: ChangeBusHandlers): void {
    let m: { o?: unknown; t?: unknown; m?: unknown; r?: unknown; s?: unknown; l?: unknown };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    if (!m || typeof m !== 'object' || m.o === this.origin) return;
    if ('l' in m && (m.l === null || typeof m.l === 'string')) {
      handlers.labels(m.l);
      return;
    }
    if (typeof m.t !== 'string' || typeof m.m !== 'string') return;
    handlers.change({ tenantId: m.t, mediaId: m.m, reason: String(m.r) as MediaChange['reason'], ...(typeof m.s === 'number' ? { seq: m.s } : {}) });
  }
}

/** Sends without waiting: a write never waits for the bus, and a lost message is bounded by the receivers' TTL. */
export function publishQuietly(send: Promise<unknown>, log: Logger, what: string): void {
  send.catch((err: unknown) => log.warn({ err }, `could not announce ${what}`));
}

/** How long closing a bus waits for its connection to end before it lets go (e.g. the server is unreachable). */
const CLOSE_WAIT_MS = 1000;

/** Waits for a bus connection to end, at most CLOSE_WAIT_MS; never rejects. */
export async function endWithin(ending: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)));
  await Promise.race([
    ending.then(
      () => undefined,
      () => undefined,
    ),
    late,
  ]);
  clearTimeout(timer);
}
