import type { Db } from '../../db/database.js';
import type { MediaChanges } from '../../events/media-changes.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import { removePath } from '../../storage/files.js';
import { safeJoin, type StorageLayout } from '../../storage/layout.js';
import type { MediaToProcess } from '../media-worker.js';
import { artifactApiUrls } from './artifact-urls.js';
import { clearLeftovers, makeWorkDir, publishFolders, removeUnpublished } from './publish.js';

/** What every processing step is given: the database, the storage layout, its settings, and whom to tell of what it wrote. */
export interface StepDeps<S> {
  db: Db;
  layout: StorageLayout;
  settings: S;
  /** Told after each write of file_metadata, so readers forget the record they cached. */
  changes?: MediaChanges;
  /** The follow-up steps that will run once the media is ready: file_metadata.pending lists them. */
  pending?: readonly string[];
  /** Aborted when the job lost its media's lock: nothing more is published. */
  signal?: AbortSignal;
}

/** Writes a media's file_metadata and tells the listeners (readers forget the record they cached). */
export async function saveFileMetadata(deps: Pick<StepDeps<unknown>, 'db' | 'changes'>, media: MediaToProcess, meta: Record<string, unknown>): Promise<void> {
  await deps.db.updateTable('mediaassets').set({ file_metadata: toJson(meta), updated_at: nowIso() }).where('id', '=', media.id).execute();
  await deps.changes?.emit({ tenantId: media.tenant_id, mediaId: media.id, reason: 'artifacts' });
}

export interface ScratchInput {
  /** The stored original, checked to be under the storage root. */
  source: string;
  /** A fresh scratch folder inside the media folder; what it holds of `folders` is published. */
  work: string;
  /** The record's file_metadata as it was. */
  meta: Record<string, any>;
}

export interface ScratchOutput {
  artifacts: ArtifactPaths;
  /** Facts merged into file_metadata (`pending` is the follow-ups to come unless given). */
  metadata: Record<string, unknown>;
}

/**
 * The frame of a kind's rendering step: clear what a dead attempt left, make the outputs in
 * a scratch folder, publish its folders one by one, record the facts, artifacts and their API
 * URLs in file_metadata, then remove the folders an earlier run filled and this one did not (a
 * setting turned off), once the record no longer points at them.
 */
export async function runInScratch(
  deps: Omit<StepDeps<unknown>, 'settings'> & { apiPrefix: string },
  media: MediaToProcess,
  folders: readonly string[],
  make: (input: ScratchInput) => Promise<ScratchOutput>,
): Promise<void> {
  const { db, layout } = deps;
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const mediaDir = layout.mediaDir({ tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  const source = safeJoin(layout.root, String(meta.original?.path ?? ''));
  await clearLeftovers(mediaDir, ['media']);
  const work = await makeWorkDir(mediaDir, 'media');
  try {
    const { artifacts, metadata } = await make({ source, work, meta });
    deps.signal?.throwIfAborted();
    const published = await publishFolders(work, mediaDir, folders);
    const next = {
      ...meta,
      pending: [...(deps.pending ?? [])],
      ...metadata,
      artifacts,
      urls: artifactApiUrls(deps.apiPrefix, media.id, artifacts),
      processed_at: nowIso(),
    };
    await saveFileMetadata(deps, media, next);
    await removeUnpublished(mediaDir, folders, published);
  } finally {
    await removePath(work);
  }
}
