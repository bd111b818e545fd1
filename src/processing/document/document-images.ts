import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { PermanentJobError } from '../../shared/errors.js';
import { ToolFailure } from '../../tools/tool-failure.js';

sharp.cache(false);

export const THUMBNAIL_FILE = 'thumbnails/thumb.webp';
export const POSTER_WEBP_FILE = 'posters/poster.webp';
export const POSTER_JPEG_FILE = 'posters/poster.jpg';

export interface PictureOptions {
  thumbnails: boolean;
  posters: boolean;
  thumbnailSize: number;
  posterSize: number;
  maxPixels: number;
  /** A small cover is kept at its size; a rendered page is already at the poster size. */
  enlarge: boolean;
}

export interface PictureFiles {
  thumbnail?: string;
  posterWebp?: string;
  posterJpeg?: string;
}

/**
 * The raster formats an EPUB may carry as core media types, by magic number. SVG is the
 * fourth and is left out on purpose: librsvg resolves references to other files.
 */
export function rasterFormatOf(head: Buffer): 'jpeg' | 'png' | 'gif' | 'webp' | undefined {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 8 && head.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png';
  if (head.length >= 6 && /^GIF8[79]a$/.test(head.subarray(0, 6).toString('latin1'))) return 'gif';
  if (head.length >= 12 && head.subarray(0, 4).toString('latin1') === 'RIFF' && head.subarray(8, 12).toString('latin1') === 'WEBP') return 'webp';
  return undefined;
}

/**
 * Writes the poster (WebP + JPEG on white, longest side ≤ posterSize) and the thumbnail
 * (WebP, longest side ≤ thumbnailSize) of one picture into `workDir`. Only the first frame
 * of an animated picture is used. A picture over `maxPixels` is refused as too large, one
 * sharp cannot decode as unreadable.
 */
export async function writePictures(input: string | Buffer, workDir: string, opts: PictureOptions): Promise<PictureFiles> {
  const files: PictureFiles = {};
  if (!opts.posters && !opts.thumbnails) return files;
  const open = () => sharp(input, { limitInputPixels: opts.maxPixels, pages: 1, failOn: 'error' }).autoOrient();
  try {
    const meta = await open().metadata();
    if (!meta.width || !meta.height) throw new PermanentJobError('the picture has no size', 'unreadable-media');
  } catch (err) {
    throw pictureError(err, opts.maxPixels);
  }
  const fit = (size: number) => ({ width: size, height: size, fit: 'inside' as const, withoutEnlargement: !opts.enlarge });
  try {
    if (opts.posters) {
      await fs.mkdir(path.join(workDir, 'posters'), { recursive: true });
      const poster = open().resize(fit(opts.posterSize)).flatten({ background: '#ffffff' });
      await poster.clone().webp({ quality: 82 }).toFile(path.join(workDir, POSTER_WEBP_FILE));
      await poster.clone().jpeg({ quality: 85, mozjpeg: true }).toFile(path.join(workDir, POSTER_JPEG_FILE));
      files.posterWebp = POSTER_WEBP_FILE;
      files.posterJpeg = POSTER_JPEG_FILE;
    }
    if (opts.thumbnails) {
      await fs.mkdir(path.join(workDir, 'thumbnails'), { recursive: true });
      await open().resize(fit(opts.thumbnailSize)).flatten({ background: '#ffffff' }).webp({ quality: 80 }).toFile(path.join(workDir, THUMBNAIL_FILE));
      files.thumbnail = THUMBNAIL_FILE;
    }
  } catch (err) {
    throw pictureError(err, opts.maxPixels);
  }
  return files;
}

const TRANSIENT = /ENOSPC|ENOMEM|EMFILE|No space left|Cannot allocate memory|Too many open files|out of memory|for writing/i;

function pictureError(err: unknown, maxPixels: number): Error {
  if (err instanceof PermanentJobError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (TRANSIENT.test(message)) return err instanceof Error ? err : new Error(message);
  if (/pixel limit/i.test(message)) return new PermanentJobError(`the picture is over the limit of ${maxPixels} pixels`, 'too-large');
  return new ToolFailure('the picture could not be decoded: it is damaged or not in a format that can be read', 'unreadable-media', message);
}
