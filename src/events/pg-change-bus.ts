import { createHash, randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { ChangeMessages, endWithin, publishQuietly, type ChangeBus, type ChangeBusHandlers } from './change-bus.js';
import type { MediaChanges } from './media-changes.js';

/** Longest PostgreSQL identifier (a channel name is one). */
const MAX_IDENTIFIER = 63;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;
/** How often a probe goes round (pool → NOTIFY → this listener): a dead or deaf listener sends nothing. */
const PROBE_INTERVAL_MS = 10_000;
/** How long a probe may take to come back before the listener is taken for lost. */
const PROBE_TIMEOUT_MS = 5_000;

/** A probe under way: its nonce, and how it ends. */
interface Probe {
  nonce: string;
  back(): void;
  fail(err: Error): void;
  timer: NodeJS.Timeout;
}

/** The notification channel of a deployment: one per schema, since channels are database-wide. */
export function changeChannel(schema: string): string {
  const name = `qasar_changes_${schema}`;
  return name.length <= MAX_IDENTIFIER ? name : `qasar_changes_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
}

/**
 * The change bus over PostgreSQL LISTEN/NOTIFY, for deployments on PostgreSQL without Redis.
 * Announcements go through the pool (`pg_notify`, after the change committed); one connection
 * of its own listens and is opened again with backoff when lost.
 *
 * It counts as listening only once a probe sent through the pool came back to it, and again every
 * PROBE_INTERVAL_MS: a LISTEN that succeeds where nothing is ever delivered (a pooler in
 * transaction mode) or a connection that died silently is found out within PROBE_TIMEOUT_MS.
 */
export class PgChangeBus implements ChangeBus {
  private readonly messages = new ChangeMessages();
  readonly channel: string;
  private handlers: ChangeBusHandlers | undefined;
  private client: pg.Client | undefined;
  private listening = false;
  private connectedBefore = false;
  private closed = false;
  private retryMs = RETRY_FIRST_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probe: Probe | undefined;
  private warnedDeaf = false;

  constructor(
    private readonly db: Kysely<any>,
    private readonly connectionString: string,
    schema: string,
    private readonly log: Logger,
  ) {
    this.channel = changeChannel(schema);
  }

  get live(): boolean {
    return this.listening;
  }

  publishFrom(changes: MediaChanges): void {
    changes.on((c) => publishQuietly(this.notify(this.messages.change(c)), this.log, 'a media change'));
  }

  announceLabels(tenantId: string | null): void {
    publishQuietly(this.notify(this.messages.labels(tenantId)), this.log, 'a label change');
  }

  private notify(payload: string): Promise<unknown> {
    return sql`select pg_notify(${this.channel}, ${payload})`.execute(this.db);
  }

  subscribe(handlers: ChangeBusHandlers): void {
    if (this.handlers) throw new Error('the change bus is subscribed already');
    this.handlers = handlers;
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed || !this.handlers) return;
    const handlers = this.handlers;
    const client = new pg.Client({ connectionString: this.connectionString, keepAlive: true, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
    this.client = client;
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    client.on('notification', (n) => {
      if (n.channel !== this.channel || !n.payload) return;
      if (this.probe && n.payload === this.probe.nonce) return this.probe.back();
      this.messages.dispatch(n.payload, handlers);
    });
    try {
      await client.connect();
      // Named, so an operator (or a test) can tell it in pg_stat_activity.
      await client.query(`set application_name = '${this.channel}'`);
      await client.query(`listen "${this.channel}"`);
      await this.roundTrip(client);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.client !== client) return;
    this.listening = true;
    this.retryMs = RETRY_FIRST_MS;
    this.warnedDeaf = false;
    if (this.connectedBefore) this.log.info('media change subscription is back; forgetting cached records');
    this.connectedBefore = true;
    // Only now: what was announced before the probe came back may have been missed.
    try {
      handlers.reset();
    } catch (err) {
      this.log.error({ err }, 'forgetting cached records failed');
    }
    this.scheduleProbe(client);
  }

  /** Sends a probe through the pool and waits for it on the listening connection. */
  private roundTrip(client: pg.Client): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const probe: Probe = {
        nonce: `probe:${randomUUID()}`,
        back: () => settle(),
        fail: (err) => settle(err),
        timer: setTimeout(() => {
          if (!this.warnedDeaf && this.client === client) {
            this.warnedDeaf = true;
            this.log.warn(
              'change notifications do not come back to this process (is DATABASE_URL a pooler in transaction mode? then set REDIS_URL); caches are bypassed meanwhile',
            );
          }
          settle(new Error(`a change notification did not come back within ${PROBE_TIMEOUT_MS} ms`));
        }, PROBE_TIMEOUT_MS),
      };
      const settle = (err?: Error) => {
        clearTimeout(probe.timer);
        if (this.probe === probe) this.probe = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.probe?.fail(new Error('a newer probe was sent'));
      this.probe = probe;
      this.notify(probe.nonce).catch((err: unknown) => settle(err instanceof Error ? err : new Error(String(err))));
    });
  }

  private scheduleProbe(client: pg.Client): void {
    this.probeTimer = setTimeout(() => {
      this.roundTrip(client).then(
        () => {
          if (this.client === client) this.scheduleProbe(client);
        },
        (err: unknown) => this.lost(client, err),
      );
    }, PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  private lost(client: pg.Client, err?: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.listening = false;
    clearTimeout(this.probeTimer);
    this.probe?.fail(new Error('the listening connection was lost'));
    client.removeAllListeners('notification');
    client.on('error', () => undefined);
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.log.warn({ err }, `media change subscription lost; listening again in ${this.retryMs} ms`);
    this.retryTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  /** Stops listening; gives up waiting for the connection to close after a second. */
  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.probeTimer);
    this.probe?.fail(new Error('the change bus was closed'));
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    client.on('error', () => undefined);
    await endWithin(client.end());
  }
}
