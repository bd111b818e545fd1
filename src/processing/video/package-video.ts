import fs from 'node:fs/promises';
import path from 'node:path';
import { PermanentJobError } from '../../shared/errors.js';
import { assertWithinDeclared, DEFAULT_DURATION_LIMITS, durationBound, durationIsEstimated, shortOutputError, type DurationLimits } from '../duration-bound.js';
import { planLadder, type Rung } from '../ladder.js';
import type { MediaFacts } from '../probe-facts.js';
import { runTool } from '../../tools/run-tool.js';
import { buildHlsPlaylists, parseMpd, ratesOf } from './hls-from-mpd.js';
import { runFfmpegStep } from '../ffmpeg-step.js';
import { videoSourceFacts } from './source.js';
import { buildVideoCommand, outputFps } from './video-command.js';
import { spriteVtt } from './sprite-vtt.js';

export interface VideoPackagingOptions {
  hls: boolean;
  dash: boolean;
  thumbnails: boolean;
  posters: boolean;
  thumbnailCount: number;
  threads: number;
  probeTimeoutMs: number;
  ffmpegTimeoutMs: number;
  maxDurationSeconds: number;
  maxPixels: number;
  /** Cut and time limit by the declared duration (defaults: the settings' defaults, FFMPEG_TIMEOUT as the ceiling). */
  durationLimits?: Omit<DurationLimits, 'timeoutCeilingMs'>;
}

export interface PackagedVideo {
  facts: MediaFacts;
  rungs: Array<Rung & { bandwidth: number; average_bandwidth: number }>;
  /** Paths relative to the work folder. */
  files: {
    hlsMaster?: string;
    dashManifest?: string;
    thumbnails: string[];
    sprite?: string;
    spriteVtt?: string;
    posterJpeg?: string;
    posterWebp?: string;
  };
  ffmpegMs: number;
}

const SPRITE_COLS = 10;
const SPRITE_MAX = 100;

/**
 * Probes a video, then makes every derived file of it in one ffmpeg run inside `workDir`
 * (`dash/`, `hls/`, `thumbnails/`, `posters/`). Broken or out-of-limits input throws a
 * PermanentJobError (no retry); resource trouble throws a plain Error (retried).
 */
export async function packageVideo(source: string, workDir: string, opts: VideoPackagingOptions): Promise<PackagedVideo> {
  const facts = await videoSourceFacts(source, opts.probeTimeoutMs);
  const video = facts.video;
  if (facts.duration > opts.maxDurationSeconds) {
    throw new PermanentJobError(`the video lasts ${Math.round(facts.duration)} s, over the limit of ${opts.maxDurationSeconds} s`, 'too-long');
  }
  if (video.width * video.height > opts.maxPixels) {
    throw new PermanentJobError(`the video is ${video.width}x${video.height}, over the limit of ${opts.maxPixels} pixels`, 'too-large');
  }

  const estimated = durationIsEstimated(facts.container);
  const bound = durationBound(estimated ? opts.maxDurationSeconds : facts.duration, {
    ...DEFAULT_DURATION_LIMITS,
    ...opts.durationLimits,
    timeoutCeilingMs: opts.ffmpegTimeoutMs,
  });
  const fps = outputFps(video);
  const frames = Math.max(1, Math.floor(facts.duration * fps));
  const ladder = opts.hls || opts.dash ? planLadder(video) : [];
  const thumbCount = Math.min(opts.thumbnailCount, frames);
  const spriteCount = Math.min(SPRITE_MAX, frames);
  const plan = {
    input: source,
    outDir: workDir,
    facts: facts as MediaFacts & { video: NonNullable<MediaFacts['video']> },
    rungs: ladder,
    fps,
    segmentSeconds: 4,
    keyframeSeconds: 2,
    threads: opts.threads,
    maxSeconds: bound.cap,
    ...(opts.thumbnails && thumbCount > 0
      ? { thumbnails: { count: thumbCount, longSide: 320 }, sprite: { count: spriteCount, cols: SPRITE_COLS, longSide: 160 } }
      : {}),
    ...(opts.posters ? { poster: { at: facts.duration * 0.1, longSide: 1920 } } : {}),
  };
  if (!plan.rungs.length && !plan.thumbnails && !plan.poster) {
    return { facts, rungs: [], files: { thumbnails: [] }, ffmpegMs: 0 };
  }
  for (const dir of ['dash', 'hls', 'thumbnails', 'posters']) await fs.mkdir(path.join(workDir, dir), { recursive: true });

  const { ms: ffmpegMs } = await runFfmpegStep(buildVideoCommand(plan), bound.timeoutMs, 'packaging');

  const files: PackagedVideo['files'] = { thumbnails: [] };
  const rungs: PackagedVideo['rungs'] = [];
  if (ladder.length) {
    const mpdText = await fs.readFile(path.join(workDir, 'dash', 'manifest.mpd'), 'utf8');
    const reps = parseMpd(mpdText);
    // ffmpeg decodes what it can of a truncated file and exits 0: compare what came out with
    // what the container promised.
    const videoSeconds = Math.max(0, ...reps.filter((r) => r.contentType === 'video').map((r) => r.segments.reduce((n, s) => n + s.duration, 0)));
    if (!estimated) assertWithinDeclared(videoSeconds, bound);
    const expected = video.duration ?? facts.duration;
    if (videoSeconds < expected * 0.9 - 1) {
      const truncated = new PermanentJobError(
        `the file is truncated or damaged: ${videoSeconds.toFixed(1)} s of its ${expected.toFixed(1)} s could be decoded`,
        'truncated-media',
      );
      throw await shortOutputError(source, bound, 'v', opts.probeTimeoutMs, truncated);
    }
    const rates = new Map<string, { peak: number; average: number }>();
    for (const rep of reps) {
      const sizes = await Promise.all(rep.segments.map((s) => fs.stat(path.join(workDir, 'dash', s.file)).then((st) => st.size)));
      const init = (await fs.stat(path.join(workDir, 'dash', rep.init))).size;
      rates.set(rep.id, ratesOf(rep, sizes, init));
    }
    const videoReps = reps.filter((r) => r.contentType === 'video');
    for (const r of ladder) {
      const rep = videoReps.find((x) => x.width === r.width && x.height === r.height);
      const rate = rep ? rates.get(rep.id) : undefined;
      rungs.push({ ...r, bandwidth: rate?.peak ?? 0, average_bandwidth: rate?.average ?? 0 });
    }
    if (opts.hls) {
      const playlists = buildHlsPlaylists(reps, rates, '../dash/');
      await fs.writeFile(path.join(workDir, 'hls', 'master.m3u8'), playlists.master);
      for (const [name, text] of Object.entries(playlists.media)) await fs.writeFile(path.join(workDir, 'hls', name), text);
      files.hlsMaster = 'hls/master.m3u8';
    }
    if (opts.dash) files.dashManifest = 'dash/manifest.mpd';
    else await fs.rm(path.join(workDir, 'dash', 'manifest.mpd'), { force: true });
  }
  if (plan.thumbnails) {
    const names = (await fs.readdir(path.join(workDir, 'thumbnails'))).filter((n) => /^thumb_\d+\.jpg$/.test(n)).sort();
    files.thumbnails = names.map((n) => `thumbnails/${n}`);
    if (plan.sprite) {
      files.sprite = 'thumbnails/sprite.jpg';
      files.spriteVtt = 'thumbnails/sprite.vtt';
      const cell = await spriteCell(path.join(workDir, files.sprite), plan.sprite.count, SPRITE_COLS);
      await fs.writeFile(
        path.join(workDir, files.spriteVtt),
        spriteVtt({ duration: facts.duration, count: plan.sprite.count, cols: SPRITE_COLS, ...cell, image: 'sprite.jpg' }),
      );
    }
  }
  if (plan.poster) {
    files.posterJpeg = 'posters/poster.jpg';
    files.posterWebp = 'posters/poster.webp';
  }
  for (const dir of ['dash', 'hls', 'thumbnails', 'posters']) {
    const p = path.join(workDir, dir);
    if ((await fs.readdir(p)).length === 0) await fs.rmdir(p);
  }
  return { facts, rungs, files, ffmpegMs };
}

/** The size of one sprite cell, from the sprite image's real size. */
async function spriteCell(file: string, count: number, cols: number): Promise<{ width: number; height: number }> {
  const res = await runTool('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'json', file], {
    timeoutMs: 30_000,
  });
  const s = (JSON.parse(res.stdout || '{}') as { streams?: Array<{ width: number; height: number }> }).streams?.[0];
  if (!s) throw new Error('the sprite could not be read back');
  const rows = Math.ceil(count / cols);
  return { width: Math.floor(s.width / cols), height: Math.floor(s.height / rows) };
}
