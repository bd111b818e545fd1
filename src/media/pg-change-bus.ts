import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { ChangeMessages, publishQuietly, type ChangeBus, type ChangeBusHandlers } from './change-bus.js';
import type { MediaChanges } from './media-changes.js';

/** Longest PostgreSQL identifier (a channel name is one). */
const MAX_IDENTIFIER = 63;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;
/** How often the listening connection is asked whether it is still there (a dead peer sends nothing). */
const HEARTBEAT_MS = 15_000;
const QUERY_TIMEOUT_MS = 5_000;

/** The notification channel of a deployment: one per schema, since channels are database-wide. */
export function changeChannel(schema: string): string {
  const name = `qasar_changes_${schema}`;
  return name.length <= MAX_IDENTIFIER ? name : `qasar_changes_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
}

/**
 * The change bus over PostgreSQL LISTEN/NOTIFY, for deployments on PostgreSQL without Redis.
 * Announcements go through the pool (`pg_notify`, after the change committed); one connection
 * of its own listens, is checked every HEARTBEAT_MS, and is opened again with backoff when lost.
 * LISTEN needs a session that stays: DATABASE_URL must not point at a pooler in transaction mode.
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
  private heartbeat: NodeJS.Timeout | undefined;

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
    this.handlers = handlers;
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed || !this.handlers) return;
    const handlers = this.handlers;
    const client = new pg.Client({
      connectionString: this.connectionString,
      // Named, so an operator (or a test) can tell it in pg_stat_activity.
      application_name: this.channel,
      keepAlive: true,
      query_timeout: QUERY_TIMEOUT_MS,
      connectionTimeoutMillis: QUERY_TIMEOUT_MS,
    });
    this.client = client;
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    client.on('notification', (n) => {
      if (n.channel === this.channel && n.payload) this.messages.dispatch(n.payload, handlers);
    });
    try {
      await client.connect();
      await client.query(`listen "${this.channel}"`);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.client !== client) return;
    this.listening = true;
    this.retryMs = RETRY_FIRST_MS;
    if (this.connectedBefore) this.log.info('media change subscription is back; forgetting cached records');
    this.connectedBefore = true;
    // Only now: what was announced before the LISTEN stood is lost.
    handlers.reset();
    this.heartbeat = setInterval(() => {
      client.query('select 1').catch((err: unknown) => this.lost(client, err));
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private lost(client: pg.Client, err?: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.listening = false;
    clearInterval(this.heartbeat);
    client.removeAllListeners('notification');
    client.on('error', () => undefined);
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.log.warn({ err }, `media change subscription lost; listening again in ${this.retryMs} ms`);
    this.retryTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => undefined);
  }
}
