import fs from 'node:fs/promises';
import path from 'node:path';
import { PermanentJobError } from '../../shared/errors.js';
import { ToolFailure } from '../../tools/tool-failure.js';
import { runTool, trimStderr } from '../../tools/run-tool.js';
import type { ImageHeader } from './image-header.js';
import { timeoutError } from './image-errors.js';

/** Errors in a tool's output that say the machine, not the input, is at fault. */
const TRANSIENT = /No space left on device|Cannot allocate memory|Resource temporarily unavailable|Too many open files/i;

/**
 * The only demuxer the BMP conversion may open, forced with `-f` so nothing is probed. The
 * upload allow-list (ffmpeg-hardening) deliberately has no image demuxers: `image2` expands
 * sequence patterns and could read further files. `bmp_pipe` reads exactly one file.
 */
export const BMP_DEMUXERS = ['bmp_pipe'] as const;

/** heif-convert: HEIC → PNG (alpha) or JPEG. It applies irot/imir and writes orientation 1. */
export function heifConvertArgs(source: string, out: string): string[] {
  return ['--quiet', '-q', '92', path.resolve(source), path.resolve(out)];
}

/** ffmpeg: one BMP → one PNG, file protocol only, a single demuxer, the decoder's pixel limit set. */
export function bmpToPngArgs(source: string, out: string, maxPixels: number): string[] {
  return [
    '-hide_banner',
    '-nostdin',
    '-v',
    'error',
    '-protocol_whitelist',
    'file',
    '-format_whitelist',
    BMP_DEMUXERS.join(','),
    '-f',
    'bmp_pipe',
    '-max_pixels',
    String(Math.min(maxPixels, 2 ** 31 - 1)),
    '-i',
    `file:${path.resolve(source)}`,
    '-frames:v',
    '1',
    '-c:v',
    'png',
    '-f',
    'image2',
    '-update',
    '1',
    '-y',
    `file:${path.resolve(out)}`,
  ];
}

/**
 * Turns a format sharp cannot decode into a PNG or JPEG inside `dir` that it can, under the
 * time limit. Returns the intermediate's path.
 */
export async function makeIntermediate(
  header: ImageHeader,
  source: string,
  dir: string,
  opts: { timeoutMs: number; totalTimeoutMs: number; maxPixels: number },
): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  if (header.decoder === 'heif-convert') {
    const out = path.join(dir, header.hasAlpha ? 'decoded.png' : 'decoded.jpg');
    await runConverter('heif-convert', heifConvertArgs(source, out), opts, 'HEIC');
    return firstOutput(out);
  }
  if (header.decoder === 'ffmpeg') {
    const out = path.join(dir, 'decoded.png');
    await runConverter('ffmpeg', bmpToPngArgs(source, out, opts.maxPixels), opts, 'BMP');
    return firstOutput(out);
  }
  return source;
}

async function runConverter(cmd: string, args: string[], opts: { timeoutMs: number; totalTimeoutMs: number }, what: string): Promise<void> {
  if (opts.timeoutMs <= 0) throw timeoutError(opts.totalTimeoutMs);
  const res = await runTool(cmd, args, { timeoutMs: opts.timeoutMs });
  if (res.timedOut) throw timeoutError(opts.totalTimeoutMs);
  if (res.code === 0) return;
  const reason = trimStderr(res.stderr + res.stdout) || `${cmd} exited with ${res.code ?? res.signal}`;
  if (res.signal || TRANSIENT.test(res.stderr)) throw new Error(reason);
  throw new ToolFailure(`the ${what} image could not be decoded: it is damaged or uses features that cannot be read`, 'unreadable-media', reason);
}

/**
 * The file a converter wrote. heif-convert numbers its outputs (`decoded-1.jpg`, …) when a
 * file holds several top-level images; the first is taken.
 */
async function firstOutput(out: string): Promise<string> {
  const ext = path.extname(out);
  for (const candidate of [out, `${out.slice(0, -ext.length)}-1${ext}`]) {
    if (
      await fs.stat(candidate).then(
        (s) => s.isFile() && s.size > 0,
        () => false,
      )
    )
      return candidate;
  }
  throw new PermanentJobError('the image could not be decoded: the converter wrote no picture', 'unreadable-media');
}
