import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MediaKind } from '../../db/schema.js';
import { spawn } from 'node:child_process';
import { PermanentJobError } from '../../shared/errors.js';
import { hardenedInputArgs } from '../../tools/ffmpeg-hardening.js';
import { toolArgv } from '../../tools/run-tool.js';
import { ToolFailure } from '../../tools/tool-failure.js';

/** One picture for the models to look at: a local file and where in the media it is from. */
export interface FrameToLook {
  /** Seconds into the media (0 for a still). */
  t: number;
  file: string;
}

export type LabelingSource = 'poster' | 'thumbnails' | 'frames';

/** The long side frames are decoded at: more than either model's input (300 and 224), small to decode and hand over. */
export const FRAME_LONG_SIDE = 640;
/** A scene change this large (ffmpeg's `scene`, 0-1) adds a frame between the regular ones. */
const SCENE_CHANGE = 0.4;

/**
 * The frames of a video to label, decoded once, small, by one ffmpeg run, handed over as they
 * are decoded (the models look at the first ones while ffmpeg decodes the rest): one every 1/fps
 * seconds and one at each scene change, at most `maxFrames` (the rate is lowered to fit a long
 * video). B-frames and the loop filter are skipped: sampling at 1 fps needs neither, and it
 * decodes about twice as fast. Times come from ffmpeg's showinfo, so scene-change frames have
 * theirs too. Each frame is a JPEG file in `outDir`, removed by the caller with the folder.
 */
export async function* streamVideoFrames(
  source: string,
  outDir: string,
  o: { fps: number; duration: number | null; maxFrames: number; timeoutMs: number; signal?: AbortSignal },
): AsyncGenerator<FrameToLook> {
  await fs.mkdir(outDir, { recursive: true });
  // A scene change adds a frame only half a gap after the last one, so a flickering video gives at
  // most twice the regular frames: the rate is lowered so that even then they reach its end.
  const fps = o.duration && o.duration * o.fps * 2 > o.maxFrames ? o.maxFrames / (2 * o.duration) : o.fps;
  const gap = 1 / fps;
  const select = `select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,${gap.toFixed(6)})+gt(scene\\,${SCENE_CHANGE})*gte(t-prev_selected_t\\,${(gap / 2).toFixed(6)})'`;
  const scale = `scale=w=${FRAME_LONG_SIDE}:h=${FRAME_LONG_SIDE}:force_original_aspect_ratio=decrease`;
  const args = [
    ...['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'info'],
    ...['-skip_frame', 'bidir', '-skip_loop_filter', 'all'],
    ...hardenedInputArgs(),
    ...['-i', source, '-map', '0:v:0', '-an', '-sn', '-dn'],
    ...['-vf', `${select},${scale},showinfo`, '-fps_mode', 'vfr', '-frames:v', String(o.maxFrames)],
    // Near-lossless: each JPEG generation moves COCO-SSD's borderline calls (a dog becomes a cat).
    ...['-c:v', 'mjpeg', '-q:v', '2', '-f', 'image2pipe', 'pipe:1'],
  ];
  const argv = toolArgv('ffmpeg', args);
  const child = spawn(argv.file, argv.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Labeling is follow-up work: a new upload's encode gets the CPU first (as the model processes do).
  if (child.pid) {
    try {
      os.setPriority(child.pid, FOLLOW_UP_NICENESS);
    } catch {
      // Not allowed here: it runs at the worker's priority.
    }
  }
  const times: number[] = [];
  const images: Buffer[] = [];
  let stderr = '';
  let pending: Buffer = Buffer.alloc(0);
  const tail: string[] = [];
  let wake: (() => void) | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  let timedOut = false;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  child.stdout.on('data', (b: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, b]) : b;
    // mjpeg frames end at EOI (FF D9); entropy-coded data stuffs every FF with 00, so it is not found inside one.
    for (let end = pending.indexOf(EOI); end >= 0; end = pending.indexOf(EOI)) {
      images.push(pending.subarray(0, end + 2));
      pending = pending.subarray(end + 2);
    }
    // The models are slower than the decoder: ffmpeg waits rather than frames piling up in memory.
    if (images.length >= MAX_FRAMES_AHEAD) child.stdout.pause();
    poke();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-1_000_000);
    const lines = stderr.split('\n');
    stderr = lines.pop() ?? '';
    for (const line of lines) {
      const m = SHOWINFO.exec(line);
      if (m) times.push(Math.max(0, Math.round(Number(m[1]) * 1000) / 1000));
      else tail.push(line);
    }
    if (tail.length > 40) tail.splice(0, tail.length - 40);
    poke();
  });
  child.on('error', (err) => {
    spawnError = err;
    poke();
  });
  child.on('close', (code, signal) => {
    exit = { code, signal };
    // The limit is ffmpeg's: the models' time on the last frames is not its.
    clearTimeout(timer);
    poke();
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, o.timeoutMs);
  const onAbort = () => child.kill('SIGKILL');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let n = 0;
    let last = 0;
    for (;;) {
      if (spawnError) throw spawnError;
      if (images.length && times.length) {
        const file = path.join(outDir, `f_${String(++n).padStart(6, '0')}.jpg`);
        await fs.writeFile(file, images.shift()!);
        if (images.length < MAX_FRAMES_AHEAD / 2) child.stdout.resume();
        last = times[0]!;
        yield { t: times.shift()!, file };
        continue;
      }
      if (exit) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    o.signal?.throwIfAborted();
    if (timedOut) throw new PermanentJobError(`decoding frames for labeling took longer than ${Math.round(o.timeoutMs / 1000)} s`, 'timeout');
    if (exit.code !== 0) {
      const reason = tail.join('\n').trim().split('\n').slice(-8).join('\n') || `ffmpeg exited with ${exit.code ?? exit.signal}`;
      if (exit.signal) throw new Error(reason);
      throw new ToolFailure('the video could not be decoded: the file is damaged or encoded in a way that cannot be read', 'transcode-failed', reason);
    }
    // showinfo reports every frame written, in order; a mismatch would put labels at wrong times.
    if (images.length || times.length) throw new Error(`ffmpeg wrote ${n + images.length} frames but reported the times of ${n + times.length}`);
    // Frames that stop well before the end (cut at maxFrames) would leave the rest unseen: nothing is published on them.
    if (o.duration && n >= o.maxFrames && last < o.duration - 2 * gap - 1) {
      throw new PermanentJobError(`only the first ${Math.round(last)} s of the video could be looked at within LABELING_MAX_FRAMES`, 'labeling-incomplete');
    }
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
    if (!exit) child.kill('SIGKILL');
  }
}

const EOI = Buffer.from([0xff, 0xd9]);
const FOLLOW_UP_NICENESS = 10;
/** Frames decoded ahead of the models before ffmpeg is made to wait. */
const MAX_FRAMES_AHEAD = 16;
const SHOWINFO = /\[Parsed_showinfo[^\]]*\]\s+n:\s*\d+\s+pts:\s*-?\d+\s+pts_time:\s*(-?[\d.]+)/;

/** Where in a video its evenly spaced thumbnails are from (see evenlySpaced in video-command.ts). */
export function thumbnailTimes(count: number, duration: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.round(((i + 0.5) * duration * 1000) / count) / 1000);
}

/** Image formats the model process decodes itself (with sharp); others are looked at through their poster. */
const DECODABLE_IMAGES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif']);

/**
 * What the labeler looks at: a video by the setting; an image in its original (the poster is one
 * more JPEG generation, enough to turn a dog into a cat for COCO-SSD: seen), unless it is a
 * format only the image step decodes (HEIC); a document by its poster (the first page).
 */
export function sourceFor(kind: MediaKind, setting: LabelingSource, mime: string): LabelingSource | 'original' {
  if (kind === 'video') return setting;
  if (kind === 'image' && DECODABLE_IMAGES.has(mime)) return 'original';
  return 'poster';
}
