import os from 'node:os';
import type { Settings } from '../../config/settings.js';
import type { ArtifactPaths } from '../../media/delivery.js';
import type { MediaFolder } from '../../storage/layout.js';
import { packageAudio } from '../audio/package-audio.js';
import { durationLimitsOf } from '../duration-bound.js';
import type { MediaToProcess } from '../media-to-process.js';
import { imagePair } from './image-pair.js';
import { runInScratch, type StepDeps } from './scratch-step.js';

type AudioSettings = Pick<
  Settings,
  | 'enableHls'
  | 'enableWebm'
  | 'enableThumbnails'
  | 'enablePosters'
  | 'audioHlsMinDuration'
  | 'imageThumbnailSize'
  | 'ffmpegThreads'
  | 'ffprobeTimeout'
  | 'ffmpegTimeout'
  | 'ffmpegTimeoutFactor'
  | 'ffmpegTimeoutFloor'
  | 'ffmpegDurationTolerance'
  | 'maxVideoDuration'
>;

/**
 * The audio step: probe, then WebM/Opus, an HLS (AAC) rendition for long audio, the
 * spectrogram and cover art in one ffmpeg run inside a scratch folder; posters and a thumbnail
 * from them; published folder by folder, with the facts and tags recorded in file_metadata.
 * Folders an earlier run filled and this one does not (a setting turned off) are removed.
 */
export async function runAudioStep(deps: StepDeps<AudioSettings>, media: MediaToProcess, folders: readonly MediaFolder[]): Promise<void> {
  const { settings } = deps;
  await runInScratch(deps, media, folders, async ({ source, work }) => {
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
      durationLimits: durationLimitsOf(settings),
      maxDurationSeconds: settings.maxVideoDuration / 1000,
    });
    const f = result.files;
    const poster = imagePair(f.posterJpeg, f.posterWebp);
    const cover = imagePair(f.coverJpeg, f.coverWebp);
    const artifacts: ArtifactPaths = {
      ...(f.hlsMaster ? { hls: f.hlsMaster } : {}),
      ...(f.webm ? { webm: f.webm } : {}),
      ...(f.thumbnail ? { thumbnails: [f.thumbnail] } : {}),
      ...(poster ? { poster } : {}),
      ...(f.spectrogram ? { spectrogram: f.spectrogram } : {}),
      ...(cover ? { cover } : {}),
    };
    const a = result.facts;
    return {
      artifacts,
      metadata: {
        duration: a.duration,
        audio: a,
        ...(a.tags.title ? { title: a.tags.title } : {}),
        ...(a.tags.artist ? { artist: a.tags.artist } : {}),
        ...(a.tags.album ? { album: a.tags.album } : {}),
        probe: result.probe,
        timings: { ffmpeg_ms: result.ffmpegMs },
      },
    };
  });
}
