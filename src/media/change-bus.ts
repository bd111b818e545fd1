import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { MediaChange, MediaChanges } from './media-changes.js';

/** What other processes learn of a change: enough to forget what they derived from the media. */
export interface RemoteChange {
  tenantId: string;
  mediaId: string;
  reason: MediaChange['reason'];
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
 * Tells every other process of the deployment about media changes, over Redis publish/subscribe,
 * so that caches of API processes forget a record as soon as a worker (or another API process)
 * changed it, instead of after their TTL. Delivery is at most once: when the subscription
 * comes back after a loss, `reset` is called, since messages sent meanwhile are gone.
 */
export class RedisChangeBus {
  private readonly origin = randomUUID();
  private readonly channel: string;
  private subscriber: Redis | undefined;
  private connectedBefore = false;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.channel = `${prefix}:media-changes`;
  }

  /** Publishes every change of this process's `changes` (emitted after commit). */
  publishFrom(changes: MediaChanges): void {
    changes.on((c) => {
      const message = JSON.stringify({ o: this.origin, t: c.tenantId, m: c.mediaId, r: c.reason });
      // Not awaited: a write never waits for Redis (ioredis keeps the order of what one process
      // sends). A lost message is bounded by the receivers' TTL.
      this.redis.publish(this.channel, message).catch((err: unknown) => this.log.warn({ err }, 'could not announce a media change'));
    });
  }

  /** Tells the others that a tenant's label hierarchy may have changed (null: every tenant's). */
  announceLabels(tenantId: string | null): void {
    const message = JSON.stringify({ o: this.origin, l: tenantId });
    this.redis.publish(this.channel, message).catch((err: unknown) => this.log.warn({ err }, 'could not announce a label change'));
  }

  /**
   * Subscribes on a connection of its own (a subscribing connection can do nothing else). Does
   * not wait for Redis: until the subscription stands, `ttlMs` bounds what is missed, and
   * `reset` is called once it does.
   */
  subscribe(handlers: ChangeBusHandlers): void {
    // Named, so an operator (or a test) can tell it in CLIENT LIST.
    // Subscribed again here on every (re)connection, not by ioredis, so that the caches are
    // emptied only once Redis confirmed the subscription: what was sent while it was away is lost.
    const sub = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, connectionName: this.channel, autoResubscribe: false });
    this.subscriber = sub;
    sub.on('error', (err) => this.log.debug({ err }, 'media change subscription error'));
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          if (this.connectedBefore) this.log.info('media change subscription is back; forgetting cached records');
          this.connectedBefore = true;
          handlers.reset();
        },
        (err: unknown) => this.log.warn({ err }, 'could not subscribe to media changes'),
      );
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      try {
        const m = JSON.parse(message) as { o?: unknown; t?: unknown; m?: unknown; r?: unknown; l?: unknown };
        if (m.o === this.origin) return;
        if ('l' in m && (m.l === null || typeof m.l === 'string')) return handlers.labels(m.l);
        if (typeof m.t !== 'string' || typeof m.m !== 'string') return;
        handlers.change({ tenantId: m.t, mediaId: m.m, reason: String(m.r) as MediaChange['reason'] });
      } catch {
        // not ours
      }
    });
  }

  /**
   * Closes the subscription after what is under way on it (ioredis subscribes again by itself
   * after a reconnect, and cutting that short rejects a promise nobody holds); gives up waiting
   * after a second, e.g. when Redis is unreachable.
   */
  async close(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (!sub) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)));
    await Promise.race([sub.quit().then(() => undefined, () => undefined), late]);
    clearTimeout(timer);
    sub.disconnect();
  }
}
