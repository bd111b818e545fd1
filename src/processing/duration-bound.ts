import { PermanentJobError } from '../shared/errors.js';
import { hardenedInputArgs } from '../tools/ffmpeg-hardening.js';
import { runTool } from '../tools/run-tool.js';

/**
 * How long a file may play and how long its processing may take, from the duration its
 * container declares (and that MAX_VIDEO_DURATION accepted). A file can declare 10 s and carry
 * frames at 1800 s; ffmpeg would then fill the gap and make a 30-minute ladder. So the decoded
 * streams are trimmed at the declared duration plus a tolerance, a file whose timestamps run
 * past that fails, and the run's time limit follows the same duration instead of a fixed
 * ceiling.
 */

export interface DurationLimits {
  /** Seconds past the declared duration that decoded timestamps may run (FFMPEG_DURATION_TOLERANCE). */
  toleranceSeconds: number;
  /** The run's time limit per second of (capped) source (FFMPEG_TIMEOUT_FACTOR). */
  timeoutFactor: number;
  /** Added to every run's time limit (FFMPEG_TIMEOUT_FLOOR). */
  timeoutFloorMs: number;
  /** The absolute ceiling of one run (FFMPEG_TIMEOUT). */
  timeoutCeilingMs: number;
}

/** The settings' defaults, for callers (benchmarks, tests) that do not pass their own. */
export const DEFAULT_DURATION_LIMITS: Omit<DurationLimits, 'timeoutCeilingMs'> = {
  toleranceSeconds: 2,
  timeoutFactor: 10,
  timeoutFloorMs: 5 * 60_000,
};

/** The limits from the settings (FFMPEG_TIMEOUT is passed to each step as its ceiling). */
export function durationLimitsOf(s: {
  ffmpegTimeoutFactor: number;
  ffmpegTimeoutFloor: number;
  ffmpegDurationTolerance: number;
}): Omit<DurationLimits, 'timeoutCeilingMs'> {
  return { toleranceSeconds: s.ffmpegDurationTolerance / 1000, timeoutFactor: s.ffmpegTimeoutFactor, timeoutFloorMs: s.ffmpegTimeoutFloor };
}

/**
 * Containers without timestamps to lie with, whose duration ffprobe estimates from the bit rate
 * (a VBR file can be several times longer than that): they are cut at the limit itself, and
 * decoding them costs what their bytes hold.
 */
const ESTIMATED_DURATION = new Set(['mp3', 'aac', 'mpegvideo', 'h264', 'hevc', 'm4v']);

export function durationIsEstimated(container: string | null): boolean {
  return ESTIMATED_DURATION.has(container ?? '');
}

export interface DurationBound {
  /** What the container declares, seconds. */
  declared: number;
  /** Where the decoded streams are trimmed, seconds. */
  cap: number;
  /** The time limit of the ffmpeg run, ms. */
  timeoutMs: number;
}

export function durationBound(declaredSeconds: number, limits: DurationLimits): DurationBound {
  // 1 % as well: long files' streams legitimately differ from the container by more than a frame.
  const tolerance = Math.max(limits.toleranceSeconds, declaredSeconds * 0.01);
  const cap = declaredSeconds + tolerance;
  const timeoutMs = Math.min(limits.timeoutCeilingMs, Math.round(limits.timeoutFloorMs + limits.timeoutFactor * cap * 1000));
  return { declared: declaredSeconds, cap, timeoutMs };
}

export function durationMismatch(bound: DurationBound): PermanentJobError {
  return new PermanentJobError(
    `the file's timestamps run past its declared length of ${formatSeconds(bound.declared)}; it was not processed`,
    'duration-mismatch',
  );
}

/**
 * Fails the job when what ffmpeg produced ran past the declared duration by more than half
 * the tolerance: an honest file ends within a frame of it, a longer one runs on to the cap.
 */
export function assertWithinDeclared(producedSeconds: number, bound: DurationBound): void {
  const tolerance = bound.cap - bound.declared;
  if (producedSeconds > bound.declared + tolerance / 2) throw durationMismatch(bound);
}

/**
 * What output that came out short of the declared duration means. Reading stopped at the cap,
 * so a file whose frames jump past it looks truncated: its packet timestamps tell the two
 * apart (a demux only, no decoding; paid only when the output is short).
 */
export async function shortOutputError(
  source: string,
  bound: DurationBound,
  stream: 'v' | 'a',
  timeoutMs: number,
  truncated: PermanentJobError,
): Promise<PermanentJobError> {
  const res = await runTool(
    'ffprobe',
    ['-v', 'error', ...hardenedInputArgs(), '-select_streams', `${stream}:0`, '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', '-i', source],
    { timeoutMs },
  );
  let last = 0;
  for (const line of res.stdout.split('\n')) {
    const t = Number(line.split(',')[0]);
    if (Number.isFinite(t) && t > last) last = t;
  }
  return last > bound.cap ? durationMismatch(bound) : truncated;
}

function formatSeconds(s: number): string {
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}
