import type { ProbeResult, ProbeStream } from '../tools/ffprobe.js';

/** What the pipeline needs to know about a source, from one ffprobe run. */
export interface MediaFacts {
  /** Seconds. */
  duration: number | null;
  container: string | null;
  bit_rate: number | null;
  video: VideoFacts | null;
  audio: AudioFacts | null;
}

export interface VideoFacts {
  codec: string;
  profile: string | null;
  /** Coded size, as stored. */
  width: number;
  height: number;
  /** Sample (pixel) aspect ratio as "n:d"; "1:1" when square or unknown. */
  sar: string;
  /** Display aspect ratio of the picture as shown (after SAR and rotation), "n:d". */
  dar: string;
  /** Clockwise rotation to apply for display: 0, 90, 180 or 270. */
  rotation: 0 | 90 | 180 | 270;
  /** Size as displayed: SAR applied to the width, then rotation. */
  display_width: number;
  display_height: number;
  /** Frames per second (average); null when unknown. */
  fps: number | null;
  variable_frame_rate: boolean;
  interlaced: boolean;
  pix_fmt: string | null;
  bit_rate: number | null;
  /** The video stream's own duration (seconds), when the container states one. */
  duration: number | null;
}

export interface AudioFacts {
  codec: string;
  channels: number | null;
  sample_rate: number | null;
  bit_rate: number | null;
}

function num(v: unknown): number | null {
  const n = typeof v === 'string' || typeof v === 'number' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

function ratio(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const m = /^(\d+)[/:](\d+)$/.exec(v);
  if (!m) return num(v);
  const d = Number(m[2]);
  return d === 0 ? null : Number(m[1]) / d;
}

/** Stream duration: the `duration` field, or Matroska's DURATION tag (hh:mm:ss.frac). */
function streamDuration(s: ProbeStream): number | null {
  const d = num(s.duration);
  if (d !== null && d > 0) return d;
  const tag = (s.tags as Record<string, string> | undefined)?.DURATION;
  const m = tag ? /^(\d+):(\d\d):(\d\d(?:\.\d+)?)$/.exec(tag) : null;
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : null;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export function reduceRatio(w: number, h: number): string {
  const g = gcd(Math.round(w), Math.round(h)) || 1;
  return `${Math.round(w) / g}:${Math.round(h) / g}`;
}

/** Rotation from the display matrix (ffprobe gives it counter-clockwise, negative) or the legacy rotate tag. */
function rotationOf(s: ProbeStream): 0 | 90 | 180 | 270 {
  let deg: number | null = null;
  const side = (s.side_data_list as Array<Record<string, unknown>> | undefined)?.find((d) => d.side_data_type === 'Display Matrix');
  if (side && typeof side.rotation === 'number') deg = -side.rotation;
  const tag = (s.tags as Record<string, string> | undefined)?.rotate;
  if (deg === null && tag !== undefined) deg = Number(tag);
  if (deg === null || !Number.isFinite(deg)) return 0;
  const r = (((Math.round(deg / 90) * 90) % 360) + 360) % 360;
  return r as 0 | 90 | 180 | 270;
}

function mainVideo(probe: ProbeResult): ProbeStream | undefined {
  const candidates = probe.streams.filter((s) => s.codec_type === 'video' && !s.disposition?.attached_pic && (s.width ?? 0) > 0);
  return candidates.find((s) => s.disposition?.default) ?? candidates[0];
}

export function mediaFacts(probe: ProbeResult): MediaFacts {
  const v = mainVideo(probe);
  const a = probe.streams.find((s) => s.codec_type === 'audio');
  let video: VideoFacts | null = null;
  if (v?.width && v.height) {
    const sarValue = ratio(v.sample_aspect_ratio);
    const sarOk = sarValue !== null && sarValue > 0 && v.sample_aspect_ratio !== '0:1';
    const sar = sarOk ? String(v.sample_aspect_ratio) : '1:1';
    const sarNum = sarOk ? sarValue! : 1;
    const rotation = rotationOf(v);
    // Square-pixel size, then rotated: what a viewer sees.
    const squareW = v.width * sarNum;
    const squareH = v.height;
    const turned = rotation === 90 || rotation === 270;
    const dispW = turned ? squareH : squareW;
    const dispH = turned ? squareW : squareH;
    const avg = ratio(v.avg_frame_rate);
    const real = ratio(v.r_frame_rate);
    const fieldOrder = typeof v.field_order === 'string' ? v.field_order : 'progressive';
    video = {
      codec: String(v.codec_name ?? 'unknown'),
      profile: typeof v.profile === 'string' ? v.profile : null,
      width: v.width,
      height: v.height,
      sar: sar.replace('/', ':'),
      dar: reduceRatio(dispW * 1000, dispH * 1000),
      rotation,
      display_width: Math.round(dispW),
      display_height: Math.round(dispH),
      fps: avg && avg > 0 ? Math.round(avg * 1000) / 1000 : real && real > 0 ? real : null,
      // Containers store a nominal r_frame_rate; a real average far from it means timestamps vary.
      variable_frame_rate: !!(avg && real && Math.abs(avg - real) / real > 0.02 && !['tt', 'bb', 'tb', 'bt'].includes(fieldOrder)),
      interlaced: ['tt', 'bb', 'tb', 'bt'].includes(fieldOrder),
      pix_fmt: typeof v.pix_fmt === 'string' ? v.pix_fmt : null,
      bit_rate: num(v.bit_rate),
      duration: streamDuration(v),
    };
  }
  return {
    duration: num(probe.format.duration),
    container: probe.format.format_name ?? null,
    bit_rate: num(probe.format.bit_rate),
    video,
    audio: a ? { codec: String(a.codec_name ?? 'unknown'), channels: num(a.channels), sample_rate: num(a.sample_rate), bit_rate: num(a.bit_rate) } : null,
  };
}
