import os from 'node:os';
import type { Settings } from '../../config/settings.js';
import { saveFileMetadata, type StepDeps } from './scratch-step.js';
import { fromJson } from '../../db/schema.js';
import type { Job } from '../../queue/queue.js';
import { PermanentJobError } from '../../shared/errors.js';
import { clearLeftovers, makeWorkDir, mediaFolderIn, publishFolders, removeScratch } from '../../storage/scratch.js';
import type { MediaFolder } from '../../storage/layout.js';
import { durationLimitsOf } from '../duration-bound.js';
import type { MediaToProcess } from '../media-to-process.js';
import { makeWebm } from '../video/webm.js';
import { publicReason } from '../public-reason.js';

type WebmSettings = Pick<
  Settings,
  | 'ffmpegThreads'
  | 'ffprobeTimeout'
  | 'ffmpegTimeout'
  | 'maxVideoDuration'
  | 'ffmpegTimeoutFactor'
  | 'ffmpegTimeoutFloor'
  | 'ffmpegDurationTolerance'
  | 'jobAttempts'
>;

/** Reads, changes and writes a media's file_metadata (the job holds the media's lock: no other job writes it meanwhile). */
async function updateMetadata(deps: StepDeps<unknown>, media: MediaToProcess, change: (meta: Record<string, any>) => Record<string, any>): Promise<void> {
  const row = await deps.db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirst();
  if (!row) return;
  await saveFileMetadata(deps, media, change(fromJson<Record<string, any>>(row.file_metadata, {})));
}

/**
 * The WebM rendition (VP9 + Opus), made after the media is ready because VP9 is slow. Until it
 * is published, file_metadata.pending lists "webm"; a broken source, or the last failed attempt,
 * records webm_error and clears the pending entry instead (the media stays ready).
 */
export async function runWebmStep(deps: StepDeps<WebmSettings>, media: MediaToProcess, job: Job, folders: readonly MediaFolder[]): Promise<void> {
  const { db, store, layout, settings } = deps;
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const mediaDir = mediaFolderIn(store, { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  const original = String(meta.original?.path ?? '');
  // The dedupe key keeps one WebM job per media: a WebM scratch folder here is a dead attempt's.
  await clearLeftovers(mediaDir, ['webm']);
  const work = await makeWorkDir(mediaDir, 'webm');
  try {
    const result = await store.withLocalFile(original, (source) =>
      makeWebm(source, `${work}/webm/video.webm`, {
        threads: settings.ffmpegThreads || os.availableParallelism(),
        probeTimeoutMs: settings.ffprobeTimeout,
        ffmpegTimeoutMs: settings.ffmpegTimeout,
        durationLimits: durationLimitsOf(settings),
        maxDurationSeconds: settings.maxVideoDuration / 1000,
        ...(meta.probe ? { facts: meta.probe } : {}),
      }),
    );
    deps.signal?.throwIfAborted();
    const published = await publishFolders(work, mediaDir, folders);
    // Recorded only once really in place: a rendition whose scratch folder went away is not.
    const missing = folders.filter((f) => !published.includes(f));
    if (missing.length) throw new Error(`the WebM rendition was not published: ${missing.join(', ')}/ was no longer in its scratch folder`);
    deps.signal?.throwIfAborted();
    await updateMetadata(deps, media, (m) => ({
      ...m,
      artifacts: { ...m.artifacts, webm: 'webm/video.webm' },
      webm: { width: result.width, height: result.height, bitrate: result.bitrate },
      pending: (m.pending ?? []).filter((p: string) => p !== 'webm'),
      timings: { ...m.timings, webm_ms: result.ms },
    }));
  } catch (err) {
    if (err instanceof PermanentJobError || job.attempt >= settings.jobAttempts) {
      await updateMetadata(deps, media, (m) => ({
        ...m,
        pending: (m.pending ?? []).filter((p: string) => p !== 'webm'),
        webm_error: publicReason(err, job.attempt, layout.root),
      }));
      if (err instanceof PermanentJobError) return;
    }
    throw err;
  } finally {
    await removeScratch(work);
  }
}
