import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PermanentJobError } from '../../shared/errors.js';
import { hardenedInputArgs } from '../../tools/ffmpeg-hardening.js';
import { assertWithinDeclared, DEFAULT_DURATION_LIMITS, durationBound, durationIsEstimated, shortOutputError, type DurationLimits } from '../duration-bound.js';
import { runFfmpegStep } from '../ffmpeg-step.js';
import { videoSourceFacts } from './source.js';
import type { MediaFacts, VideoFacts } from '../probe-facts.js';
import { runTool } from '../../tools/run-tool.js';
import { outputFps } from './video-command.js';

/**
 * The WebM rendition: one VP9 + Opus file at one rung (720p by the short side, never upscaled),
 * for players that prefer a single progressive file to adaptive streaming.
 */

/** libvpx-vp9 speed settings. */
export interface VpxSpeed {
  deadline: 'good' | 'realtime' | 'best';
  cpuUsed: number;
}

/**
 * Chosen by measurement (bench/processing/webm-speed.ts, docs/decisions.md). `good` at cpu-used
 * 4: cpu-used 5 is no faster with this libvpx and needs 4 % more bits; 2 and 3 cost 1.7x and
 * 1.15x the CPU for 7 % and 2 % fewer bits; `realtime` (5, 6) is 3-4x cheaper but needs 24-32 %
 * more bits for the same PSNR, which gives back most of VP9's saving over the H.264 ladder.
 */
export const WEBM_SPEED: VpxSpeed = { deadline: 'good', cpuUsed: 4 };

/** The rung's short side cap. */
export const WEBM_SHORT_SIDE = 720;
/** VP9 rate cap at 1280x720 (≤ 30 fps); smaller rungs get less, by pixel count. */
export const WEBM_MAX_BITRATE_720P = 2_000_000;
const MIN_BITRATE = 200_000;
/** MAX_VIDEO_DURATION's default, seconds. */
const MAX_DURATION_DEFAULT = 12 * 3600;
const KEYFRAME_SECONDS = 4;

export interface WebmRung {
  width: number;
  height: number;
  /**
   * VP9 constrained quality: the CRF, and the average rate libvpx keeps it under (`-b:v`, bits/s;
   * one-pass rate control, so grain-heavy content lands up to ~13 % above it).
   */
  crf: number;
  maxBitrate: number;
}

export interface WebmPlan {
  input: string;
  /** Where ffmpeg writes (a temporary name; makeWebm renames it when done). */
  output: string;
  facts: MediaFacts & { video: VideoFacts };
  rung: WebmRung;
  /** Output frame rate; the source's when constant, a rounded constant one when it varies. */
  fps: number;
  keyframeSeconds: number;
  threads: number;
  speed: VpxSpeed;
  /** The picture and sound are cut here (seconds): a file's timestamps may run far past what it declares. */
  maxSeconds?: number;
}

function even(n: number): number {
  return Math.max(2, 2 * Math.round(n / 2));
}

/**
 * The rung for a source: its display size with the short side capped at 720 (never upscaled),
 * even dimensions, display aspect kept. The CRF follows Google's VP9 VOD guidance by height
 * (31 at 1080p … 37 at 240p); the cap is 2 Mb/s at 720p, scaled by pixel count to the power
 * 0.75 (small pictures need relatively more bits per pixel), 1.5x above 40 fps.
 */
export function planWebmRung(video: Pick<VideoFacts, 'display_width' | 'display_height'>, fps = 30): WebmRung {
  const w = video.display_width;
  const h = video.display_height;
  const short = Math.min(w, h);
  const target = Math.min(WEBM_SHORT_SIDE, short);
  const longSide = even((Math.max(w, h) * target) / short);
  const shortSide = even(target);
  const size = w >= h ? { width: longSide, height: shortSide } : { width: shortSide, height: longSide };
  const s = Math.min(size.width, size.height);
  const crf = s >= 1080 ? 31 : s >= 720 ? 32 : s >= 480 ? 33 : s >= 360 ? 36 : 37;
  const pixelScale = ((size.width * size.height) / (1280 * 720)) ** 0.75;
  const fpsScale = fps > 40 ? 1.5 : 1;
  const maxBitrate = Math.max(MIN_BITRATE, Math.round((WEBM_MAX_BITRATE_720P * Math.min(1, pixelScale) * fpsScale) / 1000) * 1000);
  return { ...size, crf, maxBitrate };
}

function fpsArg(fps: number): string {
  const ntsc: Array<[number, string]> = [
    [23.976, '24000/1001'],
    [29.97, '30000/1001'],
    [59.94, '60000/1001'],
  ];
  return ntsc.find(([r]) => Math.abs(fps - r) < 0.01)?.[1] ?? String(Math.round(fps * 1000) / 1000);
}

/** log2 of the tile columns: as many 256-px-wide tiles as the width allows, at most 4. */
function tileColumns(width: number): number {
  return Math.max(0, Math.min(2, Math.floor(Math.log2(width / 256))));
}

/**
 * One ffmpeg run: decode (ffmpeg's autorotate turns the picture upright), deinterlace when
 * interlaced, constant frame rate when the source's varies, scale to the rung's display size
 * with square pixels, VP9 constrained quality with row multithreading and tiles, a keyframe on
 * the first frame at or after every `keyframeSeconds`; Opus stereo when the source has audio;
 * WebM with its index at the front, no metadata carried over from the upload.
 */
export function buildWebmCommand(plan: WebmPlan): string[] {
  const { facts, rung } = plan;
  const v = facts.video;
  const filters: string[] = [];
  if (v.interlaced) filters.push('bwdif=mode=send_frame:parity=auto:deint=interlaced');
  if (v.variable_frame_rate || (v.fps ?? 0) > 60) filters.push(`fps=${fpsArg(plan.fps)}`);
  // After fps, which would otherwise fill the gap up to a far-off frame with copies.
  if (plan.maxSeconds !== undefined) filters.push(`trim=end=${plan.maxSeconds.toFixed(3)}`);
  filters.push(`scale=${rung.width}:${rung.height}:flags=bicubic`, 'setsar=1', 'format=yuv420p');

  const gop = Math.max(1, Math.round(plan.fps * plan.keyframeSeconds));
  const args: string[] = ['-hide_banner', '-nostdin', '-y', '-loglevel', 'error', ...hardenedInputArgs(), '-i', plan.input];
  args.push('-map', '0:v:0', '-filter:v', filters.join(','));
  args.push(
    '-c:v',
    'libvpx-vp9',
    '-deadline',
    plan.speed.deadline,
    '-cpu-used',
    String(plan.speed.cpuUsed),
    '-crf',
    String(rung.crf),
    '-b:v',
    String(rung.maxBitrate),
    '-row-mt',
    '1',
    '-tile-columns',
    String(tileColumns(rung.width)),
    '-frame-parallel',
    '0',
    // Keyframes by time, so sparse-frame sources (screen recordings) get them too; -g bounds the distance in frames.
    '-force_key_frames',
    `expr:gte(t,n_forced*${plan.keyframeSeconds})`,
    '-g',
    String(gop),
    '-threads',
    String(plan.threads),
  );
  if (facts.audio) {
    const bitrate = (facts.audio.channels ?? 2) >= 2 ? '128k' : '96k';
    args.push('-map', '0:a:0', '-c:a', 'libopus', '-b:a', bitrate, '-ac', '2', '-ar', '48000');
  }
  if (plan.maxSeconds !== undefined) args.push('-t', plan.maxSeconds.toFixed(3));
  args.push('-map_metadata', '-1', '-map_chapters', '-1', '-cues_to_front', '1', '-f', 'webm', plan.output);
  return args;
}

export interface WebmOptions {
  threads: number;
  probeTimeoutMs: number;
  ffmpegTimeoutMs: number;
  /** The source's facts when the caller has probed it already (skips a second ffprobe). */
  facts?: MediaFacts;
  /** MAX_VIDEO_DURATION, seconds: the cut of a source whose duration is only estimated. */
  maxDurationSeconds?: number;
  /** Overrides WEBM_SPEED (the benchmark uses this). */
  speed?: VpxSpeed;
  /** Cut and time limit by the declared duration (defaults: the settings' defaults, ffmpegTimeoutMs as the ceiling). */
  durationLimits?: Omit<DurationLimits, 'timeoutCeilingMs'>;
}

export interface WebmResult {
  /** The finished file (`outFile`). */
  file: string;
  width: number;
  height: number;
  /** Average rate of the whole file, video and audio, bits/s. */
  bitrate: number;
  /** Wall time of the ffmpeg run. */
  ms: number;
}

/**
 * Makes `outFile` (a WebM, VP9 + Opus) from a video. ffmpeg writes to a temporary name beside
 * it, renamed only when the result is whole, so `outFile` either does not exist or is complete.
 * Broken, truncated or too slow input throws a PermanentJobError; resource trouble a plain
 * Error (worth a retry).
 */
export async function makeWebm(source: string, outFile: string, opts: WebmOptions): Promise<WebmResult> {
  const facts = await videoSourceFacts(source, opts.probeTimeoutMs, opts.facts);
  const video = facts.video;

  // An estimated duration (a raw elementary stream) may be far short: the cut is then the limit itself.
  const estimated = durationIsEstimated(facts.container);
  const bound = durationBound(estimated ? (opts.maxDurationSeconds ?? MAX_DURATION_DEFAULT) : facts.duration, {
    ...DEFAULT_DURATION_LIMITS,
    ...opts.durationLimits,
    timeoutCeilingMs: opts.ffmpegTimeoutMs,
  });
  const fps = outputFps(video);
  const rung = planWebmRung(video, fps);
  const tmp = path.join(path.dirname(outFile), `.${path.basename(outFile)}.${randomBytes(6).toString('hex')}.part`);
  const plan: WebmPlan = {
    input: source,
    output: tmp,
    facts: facts as MediaFacts & { video: VideoFacts },
    rung,
    fps,
    keyframeSeconds: KEYFRAME_SECONDS,
    threads: opts.threads,
    speed: opts.speed ?? WEBM_SPEED,
    maxSeconds: bound.cap,
  };
  await fs.mkdir(path.dirname(outFile), { recursive: true });
  try {
    const { ms } = await runFfmpegStep(buildWebmCommand(plan), bound.timeoutMs, 'the WebM encode');
    // ffmpeg decodes what it can of a truncated file and exits 0: compare what came out with
    // what the container promised.
    const written = await outputDuration(tmp, opts.probeTimeoutMs);
    if (!estimated) assertWithinDeclared(written, bound);
    const expected = video.duration ?? facts.duration;
    if (written < expected * 0.9 - 1) {
      const truncated = new PermanentJobError(
        `the file is truncated or damaged: ${written.toFixed(1)} s of its ${expected.toFixed(1)} s could be decoded`,
        'truncated-media',
      );
      throw await shortOutputError(source, bound, 'v', opts.probeTimeoutMs, truncated);
    }
    const size = (await fs.stat(tmp)).size;
    await fs.rename(tmp, outFile);
    return { file: outFile, width: rung.width, height: rung.height, bitrate: written > 0 ? Math.round((size * 8) / written) : 0, ms };
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** The duration of what ffmpeg wrote (seconds); 0 when unreadable. */
async function outputDuration(file: string, timeoutMs: number): Promise<number> {
  const res = await runTool('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'default=nw=1:nk=1', file], { timeoutMs });
  const d = Number(res.stdout.trim());
  return res.code === 0 && Number.isFinite(d) ? d : 0;
}
