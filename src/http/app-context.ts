import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { DatabaseHandle } from '../db/database.js';
import type { ChangeBus } from '../events/change-bus.js';
import type { MediaChanges } from '../events/media-changes.js';
import type { Discovery } from '../feeds/discovery.js';
import type { LabelBankService } from '../labels/label-bank-service.js';
import type { MediaLabelService } from '../labels/media-labels.js';
import type { CaptionService } from '../media/captions-service.js';
import type { DeliveryService } from '../media/delivery.js';
import type { FailedJobService } from '../media/failed-jobs.js';
import type { MediaService } from '../media/media-service.js';
import type { MediaLocks } from '../media/media-lock.js';
import type { MediaStatusFeed } from '../media/status-stream.js';
import type { ModerationService } from '../moderation/moderation-service.js';
import type { MediaWorker } from '../processing/media-worker.js';
import type { LabelRecompute } from '../media/label-recompute.js';
import type { JobQueue } from '../queue/queue.js';
import type { StorageLayout } from '../storage/layout.js';
import type { MediaStore } from '../storage/store.js';
import type { TenancyService } from '../tenancy/tenancy-service.js';
import type { TusService } from '../uploads/tus.js';
import type { UploadService } from '../uploads/upload-service.js';

/** Everything a process needs, wired once from settings by the composition root (`cli/compose.ts`). */
export interface AppContext {
  settings: Settings;
  log: Logger;
  database: DatabaseHandle;
  redis: Redis | undefined;
  queue: JobQueue;
  /** The queue's failed jobs, as each tenant's admin sees and retries them. */
  failedJobs: FailedJobService;
  /** Local folders: upload staging, and the storage root. */
  layout: StorageLayout;
  /** Media files: originals and everything derived from them. */
  store: MediaStore;
  tenancy: TenancyService;
  uploads: UploadService;
  tus: TusService;
  media: MediaService;
  /** The lock every job (and a delete) holds on the media it writes. */
  mediaLocks: MediaLocks;
  /** Listeners of writes to media (search index, event streams). */
  changes: MediaChanges;
  /** How other processes' changes are heard (none on SQLite: the database file tells). */
  changeBus: ChangeBus | undefined;
  delivery: DeliveryService;
  captions: CaptionService;
  statusFeed: MediaStatusFeed;
  /** Search, feeds and recommendations. */
  discovery: Discovery;
  worker: MediaWorker;
  /** Labels of media (user and model), and label banks. */
  labels: MediaLabelService;
  labelBanks: LabelBankService;
  /** Runs the local models on media again. */
  labelRecompute: LabelRecompute;
  moderation: ModerationService;
  readiness(): Promise<Record<'database' | 'queue' | 'storage', { ok: boolean; error?: string }>>;
  close(): Promise<void>;
}
