import type { Settings } from '../../src/config/settings.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { BullmqQueue } from '../../src/queue/bullmq-queue.js';
import { EmbeddedQueue } from '../../src/queue/embedded-queue.js';
import { classedQueue } from '../../src/queue/classed-queue.js';
import type { JobQueue } from '../../src/queue/queue.js';

export interface OpenQueue {
  queue: JobQueue;
  /** The app database behind an embedded queue (undefined for BullMQ). */
  database: DatabaseHandle | undefined;
  /** Closes the queue (waiting for its workers) and whatever it opened. */
  close(): Promise<void>;
}

/**
 * Builds the job queue the way src/cli/compose.ts does: BullMQ when REDIS_URL is set, otherwise
 * the embedded queue on the (migrated) app database; one backend queue (`media`), or with
 * `classed` one per job class as the application has. Nothing else of the context is opened.
 */
export async function openQueue(settings: Settings, opts: { classed?: boolean } = {}): Promise<OpenQueue> {
  const queueSettings = {
    attempts: settings.jobAttempts,
    backoffMs: settings.jobBackoff,
    leaseMs: settings.jobLease,
    tenantConcurrency: settings.workerTenantConcurrency,
  };
  if (settings.redisUrl) {
    const open = (name?: string) => new BullmqQueue(settings.redisUrl, settings.redisPrefix, queueSettings, name);
    const queue = opts.classed ? classedQueue(open) : open();
    return { queue, database: undefined, close: once(() => queue.close()) };
  }
  const database = await openDatabase(settings);
  try {
    await migrateToLatest(database);
  } catch (err) {
    await database.close();
    throw err;
  }
  const open = (name?: string) => new EmbeddedQueue(database, queueSettings, name);
  const queue = opts.classed ? classedQueue(open) : open();
  return {
    queue,
    database,
    close: once(async () => {
      await queue.close();
      await database.close();
    }),
  };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
