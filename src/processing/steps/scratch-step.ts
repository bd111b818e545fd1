import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import type { MediaChanges } from '../../events/media-changes.js';
import { writeWithEvents, type MediaEventInput } from '../../events/media-events.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import type { StorageLayout } from '../../storage/layout.js';
import { clearLeftovers, makeWorkDir, mediaFolderIn, publishFolders, removeScratch, removeUnpublished } from '../../storage/scratch.js';
import type { MediaStore } from '../../storage/store.js';
import type { MediaToProcess } from '../media-to-process.js';
import type { LocalModels } from '../labeling/vision.js';

/** What every processing step is given: the database, the media store, its settings, and whom to tell of what it wrote. */
export interface StepDeps<S> {
  db: Db;
  /** Where media files are: the original is read and the outputs published through it. */
  store: MediaStore;
  /** Local folders (the storage root, for keeping its paths out of error messages). */
  layout: StorageLayout;
  settings: S;
  /** Told after each write of file_metadata, so readers forget the record they cached. */
  changes?: MediaChanges;
  /** The follow-up steps that will run once the media is ready: file_metadata.pending lists them. */
  pending?: readonly string[];
  /** The local vision models (labeling on): a process of their own, shared by the worker's jobs. */
  models?: LocalModels;
  /** Aborted when the job lost its media's lock: nothing more is published. */
  signal?: AbortSignal;
  /** For what a step gets past without failing (a document's text it could not read). */
  log?: Logger;
}

/** More of a step's results, written in the transaction of its file_metadata (only while the media exists); `record` adds events. */
export type AlsoWrite = (tx: Db, record: (event: MediaEventInput) => void) => Promise<void>;

/**
 * Writes a media's file_metadata with its `artifacts` event, and tells the listeners after commit
 * (readers forget the record they cached). It holds paths, no URLs: API URLs are made when the
 * record is read, and those older versions stored are dropped here. `also` writes the rest of a
 * step's results in the same transaction.
 */
export async function saveFileMetadata(
  deps: Pick<StepDeps<unknown>, 'db' | 'changes'>,
  media: MediaToProcess,
  meta: Record<string, unknown>,
  also?: AlsoWrite,
): Promise<void> {
  const { urls: _stale, ...kept } = meta;
  await writeWithEvents(deps.db, deps.changes, async (tx, record) => {
    const res = await tx
      .updateTable('mediaassets')
      .set({ file_metadata: toJson(kept), updated_at: nowIso() })
      .where('id', '=', media.id)
      .executeTakeFirst();
    // Deleted meanwhile: nothing was written.
    if (Number(res.numUpdatedRows) === 0) return;
    record({ tenantId: media.tenant_id, mediaId: media.id, type: 'artifacts' });
    await also?.(tx, record);
  });
}

export interface ScratchInput {
  /** A local path of the stored original, lent by the store for the run. */
  source: string;
  /** A fresh local scratch folder (see storage/scratch.ts); what it holds of `folders` is published. */
  work: string;
  /** The record's file_metadata as it was. */
  meta: Record<string, any>;
}

export interface ScratchOutput {
  artifacts: ArtifactPaths;
  /** Facts merged into file_metadata (`pending` is the follow-ups to come unless given). */
  metadata: Record<string, unknown>;
  /** Written with file_metadata, in its transaction. */
  also?: AlsoWrite;
}

/**
 * The frame of a kind's rendering step: clear what a dead attempt left, make the outputs in
 * a scratch folder, publish its folders one by one, record the facts and artifacts (paths) in
 * file_metadata, then remove the folders an earlier run filled and this one did not (a
 * setting turned off), once the record no longer points at them.
 */
export async function runInScratch(
  deps: Omit<StepDeps<unknown>, 'settings'>,
  media: MediaToProcess,
  folders: readonly string[],
  make: (input: ScratchInput) => Promise<ScratchOutput>,
): Promise<void> {
  const { db, store } = deps;
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const mediaDir = mediaFolderIn(store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  const original = String(meta.original?.path ?? '');
  await clearLeftovers(mediaDir, ['media']);
  const work = await makeWorkDir(mediaDir, 'media');
  try {
    const { artifacts, metadata, also } = await store.withLocalFile(original, (source) => make({ source, work, meta }));
    deps.signal?.throwIfAborted();
    const published = await publishFolders(work, mediaDir, folders);
    // Lost meanwhile: another holder may be writing the record; this attempt records nothing.
    deps.signal?.throwIfAborted();
    const next = {
      ...meta,
      pending: [...(deps.pending ?? [])],
      ...metadata,
      artifacts,
      processed_at: nowIso(),
    };
    await saveFileMetadata(deps, media, next, also);
    await removeUnpublished(mediaDir, folders, published);
  } finally {
    await removeScratch(work);
  }
}
