import { hardenedInputArgs } from '../../tools/ffmpeg-hardening.js';
import type { Rung } from '../ladder.js';
import type { MediaFacts } from '../probe-facts.js';
import { reduceRatio } from '../probe-facts.js';

/** Everything one video job's single ffmpeg run produces, as plain data. */
export interface VideoCommandPlan {
  input: string;
  /** Work folder: the run writes dash/, thumbnails/ and posters/ inside it. */
  outDir: string;
  facts: MediaFacts & { video: NonNullable<MediaFacts['video']> };
  rungs: Rung[];
  /** Output frame rate; the source's when constant, a rounded constant one when it varies. */
  fps: number;
  segmentSeconds: number;
  keyframeSeconds: number;
  threads: number;
  thumbnails?: { count: number; longSide: number };
  sprite?: { count: number; cols: number; longSide: number };
  poster?: { at: number; longSide: number };
  /** The picture is cut here (seconds): a file's timestamps may run far past what it declares. */
  maxSeconds?: number;
}

const STANDARD_RATES = [23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60];

/** The constant output rate for a source: its own when constant; the nearest standard one (≤ 60) otherwise. */
export function outputFps(video: { fps: number | null; variable_frame_rate: boolean }): number {
  const fps = video.fps && video.fps > 0 ? video.fps : 30;
  if (!video.variable_frame_rate && fps <= 60) return fps;
  const capped = Math.min(fps, 60);
  return STANDARD_RATES.reduce((best, r) => (Math.abs(r - capped) < Math.abs(best - capped) ? r : best), 30);
}

function even(n: number): number {
  return Math.max(2, 2 * Math.round(n / 2));
}

/** A size with the given long side at the display aspect ratio. */
export function fitLongSide(displayW: number, displayH: number, longSide: number): { width: number; height: number } {
  const scale = Math.min(1, longSide / Math.max(displayW, displayH));
  return { width: even(displayW * scale), height: even(displayH * scale) };
}

/**
 * Filters that turn a stream into exactly `n` frames evenly spaced over `duration`, one at the
 * centre of each slice: the fps filter resamples (repeating frames where the source is sparse,
 * as screen recordings are), and tpad clones the last frame if the stream ends a little early.
 */
export function evenlySpaced(n: number, duration: number): string {
  const rate = (n / duration).toFixed(6);
  const start = (duration / n / 2).toFixed(6);
  return `fps=fps=${rate}:start_time=${start}:eof_action=pass,tpad=stop_mode=clone:stop=${n}`;
}

function fpsArg(fps: number): string {
  const ntsc: Array<[number, string]> = [
    [23.976, '24000/1001'],
    [29.97, '30000/1001'],
    [59.94, '60000/1001'],
  ];
  return ntsc.find(([r]) => Math.abs(fps - r) < 0.01)?.[1] ?? String(Math.round(fps * 1000) / 1000);
}

/**
 * One ffmpeg process: decode once, then split the picture into every rung of the ladder (H.264,
 * closed GOPs every `keyframeSeconds`, aligned across rungs since every rung sees the same
 * frames), AAC stereo once, written as CMAF segments by the DASH muxer; from the same decode,
 * evenly spaced thumbnails, a scrubbing sprite and a poster (JPEG and WebP).
 */
export function buildVideoCommand(plan: VideoCommandPlan): string[] {
  const { facts, rungs, outDir } = plan;
  const v = facts.video;
  const duration = facts.duration ?? 0;
  const dar = reduceRatio(v.display_width, v.display_height);
  const [darW, darH] = dar.split(':').map(Number) as [number, number];

  const pre: string[] = [];
  if (v.interlaced) pre.push('bwdif=mode=send_frame:parity=auto:deint=interlaced');
  if (v.variable_frame_rate || (v.fps ?? 0) > 60) pre.push(`fps=${fpsArg(plan.fps)}`);
  // After fps: a trim ends its stream at the timestamp of the first frame past the cut, and fps
  // would fill the gap up to it with copies.
  if (plan.maxSeconds !== undefined) pre.push(`trim=end=${plan.maxSeconds.toFixed(3)}`);

  const branches: string[] = [];
  const labels: string[] = [];
  rungs.forEach((r, i) => {
    // Each rung's sample aspect ratio makes its display aspect exactly the source's, even when
    // rounding to even sizes cannot (854x480 for 16:9): DASH needs one aspect per adaptation set.
    const sar = reduceRatio(darW * r.height, darH * r.width).replace(':', '/');
    labels.push(`s${i}`);
    branches.push(`[s${i}]scale=${r.width}:${r.height}:flags=bicubic,setsar=${sar},format=yuv420p[v${i}]`);
  });
  if (plan.thumbnails) {
    const size = fitLongSide(v.display_width, v.display_height, plan.thumbnails.longSide);
    labels.push('st');
    branches.push(`[st]${evenlySpaced(plan.thumbnails.count, duration)},scale=${size.width}:${size.height},setsar=1[thumbs]`);
  }
  if (plan.sprite) {
    const size = fitLongSide(v.display_width, v.display_height, plan.sprite.longSide);
    const rows = Math.ceil(plan.sprite.count / plan.sprite.cols);
    labels.push('ss');
    branches.push(`[ss]${evenlySpaced(plan.sprite.count, duration)},scale=${size.width}:${size.height},setsar=1,tile=${plan.sprite.cols}x${rows}[sprite]`);
  }
  if (plan.poster) {
    const size = fitLongSide(v.display_width, v.display_height, plan.poster.longSide);
    // The most representative frame (by colour histogram) of the 2 s from `at`: not a black or blurred one.
    const window = Math.max(1, Math.round(plan.fps * 2));
    labels.push('sp');
    branches.push(
      `[sp]select='gte(t\\,${plan.poster.at.toFixed(3)})',thumbnail=n=${window},scale=${size.width}:${size.height},setsar=1,split=2[posterj][posterw]`,
    );
  }
  const head = `[0:v:0]${pre.length ? `${pre.join(',')},` : ''}split=${labels.length}${labels.map((l) => `[${l}]`).join('')}`;
  const filter = [head, ...branches].join(';');

  const gop = Math.max(1, Math.round(plan.fps * plan.keyframeSeconds));
  const args: string[] = ['-hide_banner', '-nostdin', '-y', '-loglevel', 'error', ...hardenedInputArgs(), '-i', plan.input];
  args.push('-filter_complex', filter, '-filter_complex_threads', String(plan.threads));

  // Output 1: the ladder, as CMAF segments plus a DASH manifest.
  rungs.forEach((_r, i) => {
    args.push('-map', `[v${i}]`);
  });
  if (facts.audio) args.push('-map', '0:a:0');
  args.push(
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-profile:v',
    'high',
    '-crf',
    '22',
    '-g',
    String(gop),
    '-keyint_min',
    String(gop),
    '-sc_threshold',
    '0',
    '-flags',
    '+cgop',
    '-force_key_frames',
    `expr:gte(t,n_forced*${plan.keyframeSeconds})`,
    '-threads',
    String(plan.threads),
    '-aspect',
    dar,
  );
  rungs.forEach((r, i) => {
    args.push(`-maxrate:v:${i}`, String(r.maxrate), `-bufsize:v:${i}`, String(r.bufsize));
  });
  if (facts.audio) args.push('-c:a', 'aac', '-b:a', '128k', '-ac', '2', '-ar', '48000');
  args.push(
    '-map_metadata',
    '-1',
    '-map_chapters',
    '-1',
    // The audio is mapped untrimmed: the cut bounds it too.
    ...(plan.maxSeconds !== undefined ? ['-t', plan.maxSeconds.toFixed(3)] : []),
    '-f',
    'dash',
    '-seg_duration',
    String(plan.segmentSeconds),
    '-use_template',
    '1',
    '-use_timeline',
    '1',
    '-adaptation_sets',
    facts.audio ? 'id=0,streams=v id=1,streams=a' : 'id=0,streams=v',
    '-init_seg_name',
    'init-$RepresentationID$.m4s',
    '-media_seg_name',
    'seg-$RepresentationID$-$Number%05d$.m4s',
    `${outDir}/dash/manifest.mpd`,
  );
  if (plan.thumbnails) {
    args.push('-map', '[thumbs]', '-fps_mode', 'vfr', '-frames:v', String(plan.thumbnails.count), '-q:v', '3', `${outDir}/thumbnails/thumb_%02d.jpg`);
  }
  if (plan.sprite) {
    args.push('-map', '[sprite]', '-fps_mode', 'vfr', '-frames:v', '1', '-q:v', '4', `${outDir}/thumbnails/sprite.jpg`);
  }
  if (plan.poster) {
    args.push('-map', '[posterj]', '-fps_mode', 'vfr', '-frames:v', '1', '-q:v', '2', `${outDir}/posters/poster.jpg`);
    args.push('-map', '[posterw]', '-fps_mode', 'vfr', '-frames:v', '1', '-c:v', 'libwebp', '-quality', '80', `${outDir}/posters/poster.webp`);
  }
  return args;
}
