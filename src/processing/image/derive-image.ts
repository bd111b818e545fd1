import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { removePath } from '../../storage/files.js';
import { classifyImageError, timeoutError } from './image-errors.js';
import { assertWithinPixels, isAnimated, readImageHeader, type ImageHeader } from './image-header.js';
import { makeIntermediate } from './intermediate.js';

export interface ImageOptions {
  /** The full image as WebP (ENABLE_WEBP). */
  webp: boolean;
  thumbnails: boolean;
  posters: boolean;
  /** Longest side in px. */
  thumbnailSize: number;
  posterSize: number;
  /** Longest side of the full WebP; bigger images are scaled down to it (WebP's own limit is 16383). */
  webpMaxSize: number;
  /** Decompression-bomb guard: width x height (x frames for animations) of the decoded image. */
  maxPixels: number;
  /** Wall limit for the whole derivation. */
  timeoutMs: number;
}

export const DEFAULT_IMAGE_OPTIONS: ImageOptions = {
  webp: true,
  thumbnails: true,
  posters: true,
  thumbnailSize: 320,
  posterSize: 1280,
  webpMaxSize: 16383,
  maxPixels: 100_000_000,
  timeoutMs: 300_000,
};

export interface ImageFacts {
  format: string;
  /** As displayed (after EXIF orientation). */
  width: number;
  height: number;
  stored_width: number;
  stored_height: number;
  /** EXIF orientation 1..8 (1 when absent). */
  orientation: number;
  has_alpha: boolean;
  animated: boolean;
  frames: number;
  color_space?: string;
  bits_per_sample?: number | string;
  density?: number;
  /** Of the original; derived files never carry EXIF, GPS or XMP. */
  had_exif: boolean;
  had_gps: boolean;
}

export interface DerivedImage {
  facts: ImageFacts;
  /** Relative to the work folder. */
  files: { webp?: string; thumbnail?: string; posterWebp?: string; posterJpeg?: string };
  ms: number;
}

export const IMAGE_FILES = {
  webp: 'webp/image.webp',
  thumbnail: 'thumbnails/thumb.webp',
  posterWebp: 'posters/poster.webp',
  posterJpeg: 'posters/poster.jpg',
} as const;

// The worker decodes one image at a time beside other jobs: no libvips operation cache (it
// holds decoded images after the job) and at most two threads per pipeline.
sharp.cache(false);
sharp.concurrency(Math.min(2, os.availableParallelism()));

const WEBP = { quality: 82, alphaQuality: 100, effort: 4 } as const;
const THUMB_WEBP = { quality: 78, effort: 4 } as const;
const POSTER_JPEG = { quality: 85, progressive: true } as const;

/**
 * Makes the derived files of an image inside `workDir` (`webp/`, `thumbnails/`, `posters/`):
 * the full image as WebP (animations stay animated), a thumbnail and a poster (WebP + JPEG),
 * upright, never upscaled, with no metadata. The header is checked against the pixel limit
 * before any pixel is decoded. Broken or out-of-limits input throws a PermanentJobError; a
 * machine fault throws a plain Error (retried).
 */
export async function deriveImage(source: string, workDir: string, opts: ImageOptions): Promise<DerivedImage> {
  const started = Date.now();
  const remainingMs = () => opts.timeoutMs - (Date.now() - started);
  const header = await readImageHeader(source);
  assertWithinPixels(header, opts.maxPixels);

  const scratch = path.join(workDir, `.decode-${randomBytes(4).toString('hex')}`);
  try {
    let input = source;
    if (header.decoder !== 'sharp') {
      input = await makeIntermediate(header, source, scratch, { timeoutMs: remainingMs(), totalTimeoutMs: opts.timeoutMs, maxPixels: opts.maxPixels });
    }
    const decoded = header.decoder === 'sharp' ? header : await readImageHeader(input);
    assertWithinPixels({ ...decoded, format: header.format }, opts.maxPixels);
    // heif-convert and ffmpeg already wrote upright pixels; orienting again would turn them twice.
    const orient = header.decoder === 'sharp' && header.orientation > 1;
    const quarterTurn = orient && header.orientation >= 5;
    const display = { width: quarterTurn ? decoded.height : decoded.width, height: quarterTurn ? decoded.width : decoded.height };
    const animated = isAnimated(header);

    const stage = (animatedInput: boolean): Sharp => {
      const left = remainingMs();
      if (left <= 0) throw timeoutError(opts.timeoutMs);
      const img = sharp(input, {
        limitInputPixels: opts.maxPixels,
        sequentialRead: true,
        failOn: 'warning',
        ...(animatedInput ? { animated: true } : { page: 0 }),
      }).timeout({ seconds: Math.min(3600, Math.max(1, Math.ceil(left / 1000))) });
      return orient ? img.autoOrient() : img;
    };
    const fit = (size: number) => ({ width: size, height: size, fit: 'inside' as const, withoutEnlargement: true });
    const outPath = async (rel: string) => {
      const file = path.join(workDir, rel);
      await fs.mkdir(path.dirname(file), { recursive: true });
      return file;
    };

    const files: DerivedImage['files'] = {};
    if (opts.webp) {
      let img = stage(animated);
      if (Math.max(display.width, display.height) > opts.webpMaxSize) img = img.resize(fit(opts.webpMaxSize));
      await img.webp(WEBP).toFile(await outPath(IMAGE_FILES.webp));
      files.webp = IMAGE_FILES.webp;
    }
    if (opts.thumbnails) {
      await stage(false)
        .resize(fit(opts.thumbnailSize))
        .webp(THUMB_WEBP)
        .toFile(await outPath(IMAGE_FILES.thumbnail));
      files.thumbnail = IMAGE_FILES.thumbnail;
    }
    if (opts.posters) {
      const poster = stage(false).resize(fit(opts.posterSize));
      await Promise.all([
        poster
          .clone()
          .webp(WEBP)
          .toFile(await outPath(IMAGE_FILES.posterWebp)),
        poster
          .clone()
          .flatten({ background: '#ffffff' })
          .jpeg(POSTER_JPEG)
          .toFile(await outPath(IMAGE_FILES.posterJpeg)),
      ]);
      files.posterWebp = IMAGE_FILES.posterWebp;
      files.posterJpeg = IMAGE_FILES.posterJpeg;
    }
    return { facts: factsOf(header, decoded, display, animated), files, ms: Date.now() - started };
  } catch (err) {
    throw classifyImageError(err, opts.timeoutMs);
  } finally {
    await removePath(scratch);
  }
}

function factsOf(header: ImageHeader, decoded: ImageHeader, display: { width: number; height: number }, animated: boolean): ImageFacts {
  return {
    format: header.format,
    width: display.width,
    height: display.height,
    stored_width: header.width,
    stored_height: header.height,
    orientation: header.orientation,
    has_alpha: header.hasAlpha || decoded.hasAlpha,
    animated,
    frames: header.pages,
    ...(header.space ? { color_space: header.space } : {}),
    ...(header.bitsPerSample !== undefined
      ? { bits_per_sample: header.bitsPerSample }
      : decoded.bitsPerSample !== undefined
        ? { bits_per_sample: decoded.bitsPerSample }
        : {}),
    ...(header.density ? { density: header.density } : {}),
    had_exif: header.hadExif,
    had_gps: header.hadGps,
  };
}
