/**
 * Image derivation benchmark rows (not a test): runs deriveImage with the default options on one
 * file in a child process and reports its wall time and peak resident memory.
 *
 *   node --import tsx bench/processing/image-rows.ts [<file>]
 *
 * Prints one JSON line. With no file, a 24-megapixel JPEG (6000x4000, photo-like noise) is made
 * with sharp in a temp folder and measured. The child reads its own peak RSS (VmHWM) from
 * /proc/self/status when done; the parent also samples /proc/<pid>/status while it runs and
 * reports the larger figure. `wall_ms` is deriveImage's own time (no Node start-up);
 * `baseline_rss_mb` is the child's RSS before it starts, so the derivation's own share is the
 * difference. A refused input (e.g. too large) reports its error code in `refused`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface ImageBenchRow {
  wall_ms: number;
  peak_rss_mb: number;
  baseline_rss_mb: number;
  refused?: string;
}

const SELF = fileURLToPath(import.meta.url);

/** kB figure of one field of a /proc status text, in MiB; 0 when absent. */
function statusMb(status: string, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) / 1024 : 0;
}

function readStatus(pid: number | 'self'): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

/** Runs deriveImage (default options) on `file` in a child process and measures it. */
export async function benchImage(file: string): Promise<ImageBenchRow> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-image-bench-'));
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', SELF, '--child', path.resolve(file), work], { stdio: ['ignore', 'pipe', 'inherit'] });
    let sampled = 0;
    const timer = setInterval(() => {
      if (child.pid) sampled = Math.max(sampled, statusMb(readStatus(child.pid), 'VmHWM'));
    }, 20);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    clearInterval(timer);
    if (code !== 0) throw new Error(`the benchmark child exited with ${code}`);
    const row = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ImageBenchRow;
    return { ...row, peak_rss_mb: Math.round(Math.max(row.peak_rss_mb, sampled)) };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** A 24-megapixel photo-like JPEG (smoothed noise over a gradient) in `dir`. */
export async function make24MpJpeg(dir: string): Promise<string> {
  const { default: sharp } = await import('sharp');
  const file = path.join(dir, 'photo-6000x4000.jpg');
  const width = 6000;
  const height = 4000;
  const gradient = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      gradient[i] = (x * 255) / width;
      gradient[i + 1] = (y * 255) / height;
      gradient[i + 2] = 128;
    }
  }
  const noise = await sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).blur(0.7).png({ compressionLevel: 1 }).toBuffer();
  await sharp(gradient, { raw: { width, height, channels: 3 } })
    .composite([{ input: noise, blend: 'overlay' }])
    .jpeg({ quality: 90 })
    .toFile(file);
  return file;
}

/** The child: derive, then print the time and this process's own peak RSS. */
async function childMain(file: string, work: string): Promise<void> {
  const baseline = statusMb(readStatus('self'), 'VmRSS');
  const { deriveImage, DEFAULT_IMAGE_OPTIONS } = await import('../../src/processing/image/derive-image.js');
  const { PermanentJobError } = await import('../../src/queue/queue.js');
  const started = performance.now();
  let refused: string | undefined;
  try {
    await deriveImage(file, work, DEFAULT_IMAGE_OPTIONS);
  } catch (err) {
    if (!(err instanceof PermanentJobError)) throw err;
    refused = err.code;
  }
  const wall = performance.now() - started;
  const row: ImageBenchRow = {
    wall_ms: Math.round(wall),
    peak_rss_mb: Math.round(statusMb(readStatus('self'), 'VmHWM')),
    baseline_rss_mb: Math.round(baseline),
    ...(refused ? { refused } : {}),
  };
  process.stdout.write(`${JSON.stringify(row)}\n`);
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    await childMain(args[1]!, args[2]!);
  } else {
    let file = args[0];
    let made: string | undefined;
    if (!file) {
      made = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-image-input-'));
      file = await make24MpJpeg(made);
    }
    try {
      const row = await benchImage(file);
      process.stdout.write(`${JSON.stringify({ file: path.basename(file), ...row })}\n`);
    } finally {
      if (made) await fs.rm(made, { recursive: true, force: true });
    }
  }
}
