import fs from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';
import { PermanentJobError } from '../../shared/errors.js';
import { ToolFailure } from '../../tools/tool-failure.js';
import { BMP_HEADER_BYTES, parseBmpHeader } from './bmp-header.js';
import { exifHasGps, xmpHasGps } from './exif-gps.js';
import { isMachineFault } from './image-errors.js';

/** How the pixels of a format are decoded: by sharp, or first turned into an intermediate file. */
export type ImageDecoder = 'sharp' | 'heif-convert' | 'ffmpeg';

/** What the header of an image says, read without decoding a pixel. */
export interface ImageHeader {
  format: 'jpeg' | 'png' | 'gif' | 'webp' | 'heif' | 'avif' | 'tiff' | 'bmp';
  decoder: ImageDecoder;
  /** One frame (page), as stored. */
  width: number;
  height: number;
  pages: number;
  orientation: number;
  hasAlpha: boolean;
  space?: string;
  bitsPerSample?: number | string;
  density?: number;
  hadExif: boolean;
  hadGps: boolean;
}

/**
 * Reads an image's header: sharp's metadata() for what libvips knows (header only, no pixel
 * limit so that a bomb is measured rather than rejected unread), the BMP headers by hand for
 * BMP, which this libvips cannot load. Anything else is refused as unreadable.
 */
export async function readImageHeader(file: string): Promise<ImageHeader> {
  let meta: Metadata;
  try {
    meta = await sharp(file, { limitInputPixels: false }).metadata();
  } catch (err) {
    if (isMachineFault(err)) throw err;
    const bmp = await readBmp(file);
    if (bmp) return bmp;
    // libvips' message names the file and its own loaders: logs only.
    throw new ToolFailure(
      'the file is not a readable image: it is damaged or not in a format that can be read',
      'unreadable-media',
      err instanceof Error ? err.message : String(err),
    );
  }
  const format = supportedFormat(meta);
  if (!format) throw new PermanentJobError(`images in the ${meta.format} format are not supported`, 'unreadable-media');
  const width = meta.width ?? 0;
  // For multi-page images sharp reports one page's height as pageHeight when it differs.
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (width <= 0 || height <= 0) throw new PermanentJobError('the image header has no size', 'unreadable-media');
  return {
    format,
    decoder: format === 'heif' ? 'heif-convert' : 'sharp',
    width,
    height,
    pages: Math.max(1, meta.pages ?? 1),
    orientation: meta.orientation && meta.orientation >= 1 && meta.orientation <= 8 ? meta.orientation : 1,
    hasAlpha: !!meta.hasAlpha,
    ...(meta.space ? { space: meta.space } : {}),
    ...(bitsOf(meta) !== undefined ? { bitsPerSample: bitsOf(meta) } : {}),
    ...(meta.density ? { density: meta.density } : {}),
    hadExif: !!meta.exif,
    hadGps: exifHasGps(meta.exif) || xmpHasGps(meta.xmp?.toString('utf8')),
  };
}

/** Bits per sample: the header's own figure, else libvips' band format (uchar → 8, …). */
function bitsOf(meta: Metadata): number | string | undefined {
  if (meta.bitsPerSample !== undefined) return meta.bitsPerSample;
  const bits: Record<string, number> = { uchar: 8, char: 8, ushort: 16, short: 16, uint: 32, int: 32, float: 32, double: 64 };
  return meta.depth ? (bits[meta.depth] ?? meta.depth) : undefined;
}

/** The formats Qasar derives images from; SVG, PDF, libvips' own format and the rest are refused. */
function supportedFormat(meta: Metadata): ImageHeader['format'] | undefined {
  switch (meta.format) {
    case 'jpeg':
    case 'png':
    case 'gif':
    case 'webp':
    case 'tiff':
      return meta.format;
    case 'heif':
      // HEIF is a container: AVIF (AV1) decodes in sharp, HEIC (HEVC) needs libde265.
      if (meta.compression === 'av1') return 'avif';
      if (meta.compression === 'hevc') return 'heif';
      return undefined;
    default:
      return undefined;
  }
}

async function readBmp(file: string): Promise<ImageHeader | undefined> {
  const fh = await fs.open(file, 'r');
  let head: Buffer;
  try {
    const buf = Buffer.alloc(BMP_HEADER_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const bmp = parseBmpHeader(head);
  if (!bmp) return undefined;
  return {
    format: 'bmp',
    decoder: 'ffmpeg',
    width: bmp.width,
    height: bmp.height,
    pages: 1,
    orientation: 1,
    hasAlpha: bmp.bitsPerPixel === 32,
    space: 'srgb',
    hadExif: false,
    hadGps: false,
  };
}

/**
 * The pixels a full decode would hold: one frame for stills (multi-page TIFF and HEIF use
 * their first or primary image only), every frame for animations, which the full WebP keeps.
 */
export function decodedPixels(h: Pick<ImageHeader, 'width' | 'height' | 'pages' | 'format'>): number {
  return h.width * h.height * (isAnimated(h) ? h.pages : 1);
}

export function isAnimated(h: Pick<ImageHeader, 'pages' | 'format'>): boolean {
  return (h.format === 'gif' || h.format === 'webp') && h.pages > 1;
}

/** Refuses an image whose decoded size would exceed the limit, before anything is decoded. */
export function assertWithinPixels(h: ImageHeader, maxPixels: number): void {
  const pixels = decodedPixels(h);
  if (pixels <= maxPixels) return;
  const frames = isAnimated(h) ? ` x ${h.pages} frames` : '';
  throw new PermanentJobError(`the image is ${h.width}x${h.height}${frames} (${pixels} pixels), over the limit of ${maxPixels} pixels`, 'too-large');
}
