import type { ArtifactPaths } from '../../media/delivery.js';
import type { MediaFolder } from '../../storage/layout.js';
import { deriveImage, DEFAULT_IMAGE_OPTIONS, type DerivedImage } from '../image/derive-image.js';
import type { MediaToProcess } from '../media-to-process.js';
import { imagePair } from './image-pair.js';
import { runInScratch, type StepDeps } from './scratch-step.js';

export interface ImageStepSettings {
  enableWebp: boolean;
  enableThumbnails: boolean;
  enablePosters: boolean;
  /** Longest side in px. */
  imageThumbnailSize: number;
  imagePosterSize: number;
  imageMaxPixels: number;
  /** ms, for the whole derivation. */
  imageTimeout: number;
}

function artifactsOf(f: DerivedImage['files']): ArtifactPaths {
  return {
    ...(f.webp ? { webp: f.webp } : {}),
    ...(f.thumbnail ? { thumbnails: [f.thumbnail] } : {}),
    ...(f.posterWebp || f.posterJpeg ? { poster: imagePair(f.posterJpeg, f.posterWebp)! } : {}),
  };
}

/**
 * The image step: the full image as WebP, a thumbnail and a poster, made with sharp inside a
 * scratch folder, published folder by folder, and the facts and artifact paths recorded in
 * file_metadata. Folders an earlier run filled and this one does not (a setting turned off)
 * are removed.
 */
export async function runImageStep(deps: StepDeps<ImageStepSettings>, media: MediaToProcess, folders: readonly MediaFolder[]): Promise<void> {
  const { settings } = deps;
  await runInScratch(deps, media, folders, async ({ source, work }) => {
    const result = await deriveImage(source, work, {
      ...DEFAULT_IMAGE_OPTIONS,
      webp: settings.enableWebp,
      thumbnails: settings.enableThumbnails,
      posters: settings.enablePosters,
      thumbnailSize: settings.imageThumbnailSize,
      posterSize: settings.imagePosterSize,
      maxPixels: settings.imageMaxPixels,
      timeoutMs: settings.imageTimeout,
    });
    return {
      artifacts: artifactsOf(result.files),
      // The seed's names, at the top level: the size as displayed.
      metadata: { width: result.facts.width, height: result.facts.height, image: result.facts, timings: { image_ms: result.ms } },
    };
  });
}
