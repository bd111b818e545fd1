import os from 'node:os';
import type { Settings } from '../../config/settings.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import type { MediaFolder } from '../../storage/layout.js';
import { durationLimitsOf } from '../duration-bound.js';
import type { MediaToProcess } from '../media-to-process.js';
import { packageVideo } from '../video/package-video.js';
import { imagePair } from './image-pair.js';
import { runInScratch, type StepDeps } from './scratch-step.js';
import { writeCaptionManifests } from '../../media/captions-manifests.js';

type VideoSettings = Pick<
  Settings,
  | 'enableHls'
  | 'enableDash'
  | 'enableThumbnails'
  | 'enablePosters'
  | 'thumbnailCount'
  | 'ffmpegThreads'
  | 'ffprobeTimeout'
  | 'ffmpegTimeout'
  | 'ffmpegTimeoutFactor'
  | 'ffmpegTimeoutFloor'
  | 'ffmpegDurationTolerance'
  | 'maxVideoDuration'
  | 'maxVideoPixels'
>;

/**
 * The video step: probe, then the ladder (HLS + DASH over one CMAF segment set), thumbnails,
 * sprite and poster in one ffmpeg run inside a scratch folder (see runInScratch).
 */
export async function runVideoStep(deps: StepDeps<VideoSettings>, media: MediaToProcess, folders: readonly MediaFolder[]): Promise<void> {
  const { db, settings } = deps;
  await runInScratch(deps, media, folders, async ({ source, work, meta }) => {
    const result = await packageVideo(source, work, {
      hls: settings.enableHls,
      dash: settings.enableDash,
      thumbnails: settings.enableThumbnails,
      posters: settings.enablePosters,
      thumbnailCount: settings.thumbnailCount,
      threads: settings.ffmpegThreads || os.availableParallelism(),
      probeTimeoutMs: settings.ffprobeTimeout,
      ffmpegTimeoutMs: settings.ffmpegTimeout,
      durationLimits: durationLimitsOf(settings),
      maxDurationSeconds: settings.maxVideoDuration / 1000,
      maxPixels: settings.maxVideoPixels,
    });
    // Caption tracks outlive a reprocess: the new manifests offer them before they are published.
    await writeCaptionManifests(db, work, media);
    const f = result.files;
    const poster = imagePair(f.posterJpeg, f.posterWebp);
    const artifacts: ArtifactPaths = {
      ...(f.hlsMaster ? { hls: f.hlsMaster } : {}),
      ...(f.dashManifest ? { dash: f.dashManifest } : {}),
      ...(f.thumbnails.length ? { thumbnails: f.thumbnails } : {}),
      ...(f.sprite && f.spriteVtt ? { sprite: { image: f.sprite, vtt: f.spriteVtt } } : {}),
      ...(poster ? { poster } : {}),
      // A reprocess keeps the published WebM until the new one replaces it (its own job, its own folder).
      ...(meta.artifacts?.webm ? { webm: meta.artifacts.webm } : {}),
    };
    const v = result.facts.video!;
    return {
      artifacts,
      metadata: {
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
        timings: { ffmpeg_ms: result.ffmpegMs },
      },
    };
  });
}
