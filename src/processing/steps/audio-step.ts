import os from 'node:os';
import type { Settings } from '../../config/settings.js';
import type { Db } from '../../db/database.js';
import { fromJson, nowIso, toJson } from '../../db/schema.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import { removePath } from '../../storage/files.js';
import { safeJoin, type StorageLayout } from '../../storage/layout.js';
import { packageAudio } from '../audio/package-audio.js';
import type { MediaToProcess } from '../media-worker.js';
import { artifactApiUrls } from './artifact-urls.js';
import { clearLeftovers, makeWorkDir, publishFolders, removeUnpublished } from './publish.js';

const FOLDERS = ['webm', 'hls', 'posters', 'thumbnails'] as const;

type AudioSettings = Pick<
  Settings,
  | 'apiPrefix' | 'enableHls' | 'enableWebm' | 'enableThumbnails' | 'enablePosters' | 'audioHlsMinDuration' | 'imageThumbnailSize'
  | 'ffmpegThreads' | 'ffprobeTimeout' | 'ffmpegTimeout' | 'maxVideoDuration'
>;

/**
 * The audio step: probe, then WebM/Opus, an HLS (AAC) rendition for long audio, the
 * spectrogram and cover art in one ffmpeg run inside a scratch folder; posters and a thumbnail
 * from them; published folder by folder, with the facts and tags recorded in file_metadata.
 * Folders an earlier run filled and this one does not (a setting turned off) are removed.
 */
export async function runAudioStep(deps: { db: Db; layout: StorageLayout; settings: AudioSettings }, media: MediaToProcess): Promise<void> {
  const { db, layout, settings } = deps;
  const row = await db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', media.id).executeTakeFirstOrThrow();
  const meta = fromJson<Record<string, any>>(row.file_metadata, {});
  const mediaDir = layout.mediaDir({ tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  const source = safeJoin(layout.root, String(meta.original?.path ?? ''));
  await clearLeftovers(mediaDir);
  const work = await makeWorkDir(mediaDir);
  try {
    const result = await packageAudio(source, work, {
      webm: settings.enableWebm,
      hls: settings.enableHls,
      posters: settings.enablePosters,
      thumbnails: settings.enableThumbnails,
      hlsMinDuration: settings.audioHlsMinDuration / 1000,
      thumbnailSize: settings.imageThumbnailSize,
      threads: settings.ffmpegThreads || os.availableParallelism(),
      probeTimeoutMs: settings.ffprobeTimeout,
      ffmpegTimeoutMs: settings.ffmpegTimeout,
      maxDurationSeconds: settings.maxVideoDuration / 1000,
    });
    const published = await publishFolders(work, mediaDir, FOLDERS);
    const f = result.files;
    const artifacts: ArtifactPaths = {
      ...(f.hlsMaster ? { hls: f.hlsMaster } : {}),
      ...(f.webm ? { webm: f.webm } : {}),
      ...(f.thumbnail ? { thumbnails: [f.thumbnail] } : {}),
      ...(f.posterJpeg || f.posterWebp ? { poster: { ...(f.posterJpeg ? { jpeg: f.posterJpeg } : {}), ...(f.posterWebp ? { webp: f.posterWebp } : {}) } } : {}),
      ...(f.spectrogram ? { spectrogram: f.spectrogram } : {}),
      ...(f.coverJpeg || f.coverWebp ? { cover: { ...(f.coverJpeg ? { jpeg: f.coverJpeg } : {}), ...(f.coverWebp ? { webp: f.coverWebp } : {}) } } : {}),
    };
    const a = result.facts;
    const next = {
      ...meta,
      duration: a.duration,
      audio: a,
      ...(a.tags.title ? { title: a.tags.title } : {}),
      ...(a.tags.artist ? { artist: a.tags.artist } : {}),
      ...(a.tags.album ? { album: a.tags.album } : {}),
      probe: result.probe,
      artifacts,
      urls: artifactApiUrls(settings.apiPrefix, media.id, artifacts),
      pending: [],
      processed_at: nowIso(),
      timings: { ffmpeg_ms: result.ffmpegMs },
    };
    await db.updateTable('mediaassets').set({ file_metadata: toJson(next), updated_at: nowIso() }).where('id', '=', media.id).execute();
    await removeUnpublished(mediaDir, FOLDERS, published);
  } finally {
    await removePath(work);
  }
}
