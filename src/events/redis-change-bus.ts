import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ChangeMessages, endWithin, publishQuietly, type ChangeBus, type ChangeBusHandlers } from './change-bus.js';
import type { MediaChanges } from './media-changes.js';

/** The change bus over Redis publish/subscribe (REDIS_URL set). */
export class RedisChangeBus implements ChangeBus {
  private readonly messages = new ChangeMessages();
  private readonly channel: string;
  private subscriber: Redis | undefined;
  private connectedBefore = false;
  private subscribed = false;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.channel = `${prefix}:media-changes`;
  }

  get live(): boolean {
    return this.subscribed;
  }

  publishFrom(changes: MediaChanges): void {
    // ioredis keeps the order of what one process sends.
    changes.on((c) => publishQuietly(this.redis.publish(this.channel, this.messages.change(c)), this.log, 'a media change'));
  }

  announceLabels(tenantId: string | null): void {
    publishQuietly(this.redis.publish(this.channel, this.messages.labels(tenantId)), this.log, 'a label change');
  }

  subscribe(handlers: ChangeBusHandlers): void {
    if (this.subscriber) throw new Error('the change bus is subscribed already');
    // On a connection of its own (a subscribing connection can do nothing else), named so that
    // an operator (or a test) can tell it in CLIENT LIST. Subscribed again here on every
    // (re)connection, not by ioredis, so that the caches are emptied only once Redis confirmed
    // the subscription: what was sent while it was away is lost.
    const sub = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, connectionName: this.channel, autoResubscribe: false });
    this.subscriber = sub;
    sub.on('error', (err) => this.log.debug({ err }, 'media change subscription error'));
    sub.on('close', () => {
      this.subscribed = false;
    });
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          if (this.closed) return;
          if (this.connectedBefore) this.log.info('media change subscription is back; forgetting cached records');
          this.connectedBefore = true;
          this.subscribed = true;
          try {
            handlers.reset();
          } catch (err) {
            this.log.error({ err }, 'forgetting cached records failed');
          }
        },
        (err: unknown) => this.log.warn({ err }, 'could not subscribe to media changes'),
      );
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.messages.dispatch(message, handlers);
    });
  }

  /**
   * Closes the subscription after what is under way on it (cutting that short rejects a promise
   * nobody holds); gives up waiting after a second, e.g. when Redis is unreachable.
   */
  async close(): Promise<void> {
    this.closed = true;
    const sub = this.subscriber;
    this.subscriber = undefined;
    this.subscribed = false;
    if (!sub) return;
    await endWithin(sub.quit());
    sub.disconnect();
  }
}
