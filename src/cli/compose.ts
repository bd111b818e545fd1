import { MediaChanges } from '../events/media-changes.js';
import type { ChangeBus } from '../events/change-bus.js';
import { RedisChangeBus } from '../events/redis-change-bus.js';
import { RecordCache } from '../cache/record-cache.js';
import { MediaFactsSource, type MediaFacts } from '../search/media-facts.js';
import { LABEL_DIRECTORY_TENANTS, LabelDirectory } from '../labels/label-directory.js';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { createLogger } from '../shared/logger.js';
import { monotonicClock, type Clock } from '../shared/clock.js';
import { DeliveryService } from '../media/delivery.js';
import { FailedJobService } from '../media/failed-jobs.js';
import { MediaService, type MediaRecord } from '../media/media-service.js';
import { CaptionService } from '../media/captions-service.js';
import { MediaStatusFeed } from '../media/status-stream.js';
import { PlaybackTokens, playbackSecret } from '../media/playback-tokens.js';
import { MediaWorker } from '../processing/media-worker.js';
import { ensureModelBanks } from '../processing/labeling/model-banks.js';
import { LabelRecompute } from '../media/label-recompute.js';
import { openMediaLocks } from '../media/media-lock.js';
import { defaultPipeline } from '../processing/default-pipeline.js';
import { createDiscovery } from '../feeds/discovery.js';
import { EmbeddedQueue } from '../queue/embedded-queue.js';
import { classedQueue } from '../queue/classed-queue.js';
import type { JobQueue } from '../queue/queue.js';
import { isWritableDir } from '../storage/files.js';
import { DiskSpace } from '../storage/disk-space.js';
import { StorageLayout } from '../storage/layout.js';
import { LocalStore } from '../storage/local-store.js';
import type { MediaStore } from '../storage/store.js';
import { TenancyService } from '../tenancy/tenancy-service.js';
import { DbChunkStateStore, RedisChunkStateStore, type ChunkStateStore } from '../uploads/chunk-state.js';
import { IngestService } from '../uploads/ingest.js';
import { TusService } from '../uploads/tus.js';
import { HashThread } from '../uploads/hash-thread.js';
import { UploadService } from '../uploads/upload-service.js';
import { UploadLimits } from '../uploads/upload-limits.js';
import { LabelBankService } from '../labels/label-bank-service.js';
import { MediaLabelService } from '../labels/media-labels.js';
import { ModerationService } from '../moderation/moderation-service.js';
import type { AppContext } from '../http/app-context.js';

export type { AppContext };

export interface ContextOptions {
  log?: Logger;
  migrate?: boolean;
  clock?: Clock;
  /** The media store over the layout's root (default: the local folder itself). */
  store?: (layout: StorageLayout) => MediaStore;
}

export async function createContext(settings: Settings, opts: ContextOptions = {}): Promise<AppContext> {
  const log = opts.log ?? createLogger(settings.logLevel);
  // TTLs and expiries read this clock; tests move a manual one instead of sleeping.
  const clock = opts.clock ?? monotonicClock;
  const database = await openDatabase(settings);
  try {
    if (opts.migrate !== false) {
      const applied = await migrateToLatest(database);
      if (applied.length) log.info({ applied }, 'database migrated');
    }
  } catch (err) {
    await database.close();
    throw err;
  }
  const queueSettings = {
    attempts: settings.jobAttempts,
    backoffMs: settings.jobBackoff,
    leaseMs: settings.jobLease,
    tenantConcurrency: settings.workerTenantConcurrency,
  };
  let redis: Redis | undefined;
  let queue: JobQueue;
  let chunkState: ChunkStateStore;
  if (settings.redisUrl) {
    // Loaded only on the scale-up backends: the embedded default never pays for them.
    const [{ Redis }, { BullmqQueue }] = await Promise.all([import('ioredis'), import('../queue/bullmq-queue.js')]);
    redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
    redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
    queue = classedQueue((name) => new BullmqQueue(settings.redisUrl, settings.redisPrefix, queueSettings, name));
    chunkState = new RedisChunkStateStore(redis, settings.redisPrefix);
  } else {
    queue = classedQueue((name) => new EmbeddedQueue(database, queueSettings, name));
    chunkState = new DbChunkStateStore(database.db);
  }
  const changes = new MediaChanges((err, change) => log.error({ err, change }, 'a media change listener failed'));
  // Other processes' changes reach this one's caches through SQLite's data_version, or through a
  // change bus (Redis publish/subscribe, else PostgreSQL LISTEN/NOTIFY).
  let bus: ChangeBus | undefined;
  if (redis) bus = new RedisChangeBus(redis, settings.redisPrefix, log);
  else if (database.dialect === 'postgres') {
    const { PgChangeBus } = await import('../events/pg-change-bus.js');
    bus = new PgChangeBus(database.db, settings.databaseUrl, settings.databaseSchema, log);
  }
  const watchOthers = (): (() => boolean) | undefined => {
    const dataVersion = database.watchOtherWrites?.();
    if (dataVersion) return dataVersion;
    // While the bus is not listening, announcements are missed: nothing cached is trusted.
    if (bus) return () => !bus.live;
    return undefined;
  };
  const records = new RecordCache<MediaRecord>(settings.mediaCacheTtl, settings.mediaCacheSize, watchOthers(), clock);
  // Lists (feeds, search results, related media) read media facts and label names from caches of their own, forgotten with the records.
  const factsCache = new RecordCache<MediaFacts>(settings.mediaCacheTtl, settings.mediaCacheSize, watchOthers(), clock);
  const labelDirectory = new LabelDirectory(database.db, new RecordCache(settings.mediaCacheTtl, LABEL_DIRECTORY_TENANTS, watchOthers(), clock));
  const forget = (c: { tenantId: string; mediaId: string; reason: string }) => {
    records.invalidate(c.tenantId, c.mediaId);
    factsCache.invalidate(c.tenantId, c.mediaId);
    // Labels written to a media may have created labels that moved in the hierarchy.
    if (c.reason === 'labels') labelDirectory.invalidate(c.tenantId);
  };
  // The first listener: a changed record is forgotten before anything slower runs.
  changes.on(forget);
  const layout = new StorageLayout(settings.storageRoot, settings.chunkTmpDirName);
  // Media files (originals and what is derived from them); upload staging stays in the layout's local folders.
  const store = opts.store?.(layout) ?? new LocalStore(layout.root);
  const ingest = new IngestService(database.db, store, queue, settings.ffprobeTimeout, log, changes);
  const hashThread = new HashThread();
  const tenancy = new TenancyService(database.db, settings.apiKeyCacheTtl, clock);
  const disk = new DiskSpace(layout.root, settings.storageMinFree);
  const limits = new UploadLimits(database, tenancy, settings.uploadMaxOpenPerUser, disk);
  const uploads = new UploadService(database.db, layout, chunkState, ingest, settings, log, hashThread, limits);
  const tus = new TusService({ db: database.db, layout, ingest, hashThread, limits, settings, log });
  const mediaLocks = await openMediaLocks(database, settings);
  const media = new MediaService(database.db, store, queue, changes, records, log, mediaLocks);
  const failedJobs = new FailedJobService(database.db, queue, changes);
  const facts = new MediaFactsSource(database.db, factsCache);
  const captions = new CaptionService(database.db, store, changes);
  const statusFeed = new MediaStatusFeed(database.db, changes, settings.mediaEventsPollInterval);
  const tokens = new PlaybackTokens(await playbackSecret(database.db, settings.playbackSecret));
  const delivery = new DeliveryService(database.db, store, tokens, settings.playbackTtl);
  // Started by the first frame a worker labels: an API process never starts it.
  const models =
    settings.enableWorkerLabeling || settings.enableTranscripts
      ? new (await import('../models/model-host.js')).ModelHost({
          maxOldSpaceMb: Math.round(settings.modelMemory / 2 ** 20),
          requestTimeoutMs: settings.modelTimeout,
          log,
        })
      : undefined;
  const pipeline = defaultPipeline();
  const worker = new MediaWorker({
    db: database.db,
    queue,
    log,
    pipeline,
    deps: { store, layout, settings, changes, ...(models ? { models } : {}) },
    locks: mediaLocks,
  });
  const labelStep = pipeline.step('labels');
  const labelRecompute = new LabelRecompute(database.db, queue, changes, labelStep?.enabled?.(settings) ? labelStep.kinds : []);
  const moderation = new ModerationService(database.db, changes, settings.moderationDefaultThreshold);
  const labels = new MediaLabelService(database.db, changes, {
    moderationLabelsChanged: (tenantId, mediaId) => moderation.evaluate(tenantId, mediaId),
  });
  const discovery = await createDiscovery({ database, tokens, changes, settings, log, facts, labelDirectory, watchOthers, clock });
  // Other processes hear of each change after this one's listeners ran (the search index is written by then).
  if (bus) {
    bus.publishFrom(changes);
    bus.subscribe({
      change: (c) => {
        forget(c);
        discovery.searchCache.invalidate(c.tenantId);
      },
      labels: (tenantId) => {
        if (tenantId) {
          labelDirectory.invalidate(tenantId);
          discovery.searchCache.invalidate(tenantId);
        } else {
          labelDirectory.clear();
          discovery.searchCache.clear();
        }
      },
      reset: () => {
        records.clear();
        factsCache.clear();
        labelDirectory.clear();
        discovery.searchCache.clear();
      },
    });
  }
  const labelBanks = new LabelBankService(database.db, settings.labelBankMaxEntries, {
    labelWordsChanged: async (tenantId) => {
      // The hierarchy may have changed (a global bank: every tenant's).
      if (tenantId) labelDirectory.invalidate(tenantId);
      else labelDirectory.clear();
      bus?.announceLabels(tenantId ?? null);
      await discovery.indexer.refreshStaleQuietly(tenantId);
    },
    moderationChanged: async (tenantId) => {
      await moderation.reevaluate(tenantId);
    },
  });

  if (settings.enableWorkerLabeling) await ensureModelBanks(labelBanks);

  // Every probe is bounded: a dependency that hangs (Redis down, commands queued for a reconnect) is not ready.
  const check = async (fn: () => Promise<unknown>): Promise<{ ok: boolean; error?: string }> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${settings.readinessTimeout} ms`)), settings.readinessTimeout);
    });
    try {
      await Promise.race([fn(), timeout]);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    settings,
    log,
    database,
    redis,
    queue,
    failedJobs,
    layout,
    store,
    tenancy,
    uploads,
    tus,
    media,
    mediaLocks,
    changes,
    changeBus: bus,
    delivery,
    captions,
    statusFeed,
    discovery,
    worker,
    labels,
    labelBanks,
    labelRecompute,
    moderation,
    readiness: async () => {
      const [db, q, storage] = await Promise.all([
        check(() => database.ping()),
        check(async () => {
          await queue.ping();
          if (redis) await redis.ping();
        }),
        check(async () => {
          // Upload staging is always local; media files are wherever the store keeps them.
          if (!(await isWritableDir(layout.root))) throw new Error('storage root is not writable');
          await store.probe();
          if (await disk.isFull()) throw new Error('storage is full');
        }),
      ]);
      return { database: db, queue: q, storage };
    },
    close: async () => {
      await queue.close();
      await models?.close();
      await hashThread.close();
      await bus?.close();
      redis?.disconnect();
      await database.close();
    },
  };
}
