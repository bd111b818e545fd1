import os from 'node:os';
import type { Settings } from '../../config/settings.js';
import type { Db } from '../../db/database.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import { removePath } from '../../storage/files.js';
import { safeJoin, type StorageLayout } from '../../storage/layout.js';
import type { MediaToProcess } from '../media-worker.js';
import { packageVideo } from '../video/package-video.js';
import { artifactApiUrls } from './artifact-urls.js';
import { clearLeftovers, makeWorkDir, publishFolders } from './publish.js';
import { writeCaptionManifests } from '../../media/captions-manifests.js';

type VideoSettings = Pick<
  Settings,
  | 'apiPrefix' | 'enableHls' | 'enableDash' | 'enableThumbnails' | 'enablePosters' | 'enableWebm' | 'thumbnailCount'
  | 'ffmpegThreads' | 'ffprobeTimeout' | 'ffmpegTimeout' | 'maxVideoDuration' | 'maxVideoPixels'
>;

/**
 * The video step: probe, then the ladder (HLS + DASH over one CMAF segment set), thumbnails,
 * sprite and poster in one ffmpeg run inside a scratch folder, published folder by folder,
 * and the facts and artifact paths recorded in file_metadata.
 */
export async function runVideoStep(deps: { db: Db; layout: StorageLayout; settings: VideoSettings }, media: MediaToProcess): Promise<void> {
  const { db, layout, settings } = deps;
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const ref = { tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id };
  const mediaDir = layout.mediaDir(ref);
  const source = safeJoin(layout.root, String(meta.original?.path ?? ''));
  await clearLeftovers(mediaDir);
  const work = await makeWorkDir(mediaDir);
  try {
    const result = await packageVideo(source, work, {
      hls: settings.enableHls,
      dash: settings.enableDash,
      thumbnails: settings.enableThumbnails,
      posters: settings.enablePosters,
      thumbnailCount: settings.thumbnailCount,
      threads: settings.ffmpegThreads || os.availableParallelism(),
      probeTimeoutMs: settings.ffprobeTimeout,
      ffmpegTimeoutMs: settings.ffmpegTimeout,
      maxDurationSeconds: settings.maxVideoDuration / 1000,
      maxPixels: settings.maxVideoPixels,
    });
    // Caption tracks outlive a reprocess: the new manifests offer them before they are published.
    await writeCaptionManifests(db, work, media);
    await publishFolders(work, mediaDir, ['dash', 'hls', 'thumbnails', 'posters']);
    const f = result.files;
    const artifacts: ArtifactPaths = {
      ...(f.hlsMaster ? { hls: f.hlsMaster } : {}),
      ...(f.dashManifest ? { dash: f.dashManifest } : {}),
      ...(f.thumbnails.length ? { thumbnails: f.thumbnails } : {}),
      ...(f.sprite && f.spriteVtt ? { sprite: { image: f.sprite, vtt: f.spriteVtt } } : {}),
      ...(f.posterJpeg || f.posterWebp ? { poster: { ...(f.posterJpeg ? { jpeg: f.posterJpeg } : {}), ...(f.posterWebp ? { webp: f.posterWebp } : {}) } } : {}),
    };
    const v = result.facts.video!;
    const next = {
      ...meta,
      // The seed's names, at the top level.
      duration: result.facts.duration,
      width: v.width,
      height: v.height,
      sar: v.sar,
      dar: v.dar,
      display_width: v.display_width,
      display_height: v.display_height,
      rotation: v.rotation,
      probe: result.facts,
      renditions: result.rungs,
      // A reprocess keeps the published WebM until the new one replaces it.
      artifacts: meta.artifacts?.webm ? { ...artifacts, webm: meta.artifacts.webm } : artifacts,
      urls: artifactApiUrls(settings.apiPrefix, media.id, meta.artifacts?.webm ? { ...artifacts, webm: meta.artifacts.webm } : artifacts),
      pending: settings.enableWebm ? ['webm'] : [],
      processed_at: nowIso(),
      timings: { ffmpeg_ms: result.ffmpegMs },
    };
    await db.updateTable('mediaassets').set({ file_metadata: toJson(next), updated_at: nowIso() }).where('id', '=', media.id).execute();
  } finally {
    await removePath(work);
  }
}
