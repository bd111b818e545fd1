import { hardenedInputArgs } from './ffmpeg-hardening.js';
import { ToolFailure } from './tool-failure.js';
import { runTool, trimStderr } from './run-tool.js';

export interface ProbeStream {
  index: number;
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  disposition?: Record<string, number>;
  [key: string]: unknown;
}

export interface ProbeResult {
  format: { format_name?: string; duration?: string; size?: string; bit_rate?: string; tags?: Record<string, string> };
  streams: ProbeStream[];
}

export class ProbeError extends Error {
  constructor(
    message: string,
    readonly timedOut = false,
  ) {
    super(message);
    this.name = 'ProbeError';
  }
}

export function ffprobeArgs(file: string): string[] {
  return ['-v', 'error', ...hardenedInputArgs(), '-print_format', 'json', '-show_format', '-show_streams', '-i', file];
}

export async function ffprobe(file: string, timeoutMs: number): Promise<ProbeResult> {
  const res = await runTool('ffprobe', ffprobeArgs(file), { timeoutMs });
  if (res.timedOut) throw new ProbeError(`reading the file took longer than ${Math.max(1, Math.round(timeoutMs / 1000))} s`, true);
  if (res.code !== 0) throw new ProbeError(trimStderr(res.stderr) || `ffprobe exited with ${res.code ?? res.signal}`);
  try {
    const parsed = JSON.parse(res.stdout) as Partial<ProbeResult>;
    return { format: parsed.format ?? {}, streams: parsed.streams ?? [] };
  } catch {
    throw new ProbeError('ffprobe printed no readable result');
  }
}

/** The permanent failure of a file ffprobe could not read; what it printed goes to the logs only. */
export function probeFailure(err: ProbeError, kind: 'video' | 'audio'): ToolFailure {
  const why = err.timedOut ? err.message : 'the file is damaged or not in a format that can be read';
  return new ToolFailure(`the file could not be read as ${kind}: ${why}`, 'unreadable-media', err.message);
}

/** A real picture stream: cover art in audio files is a video stream marked attached_pic. */
export function hasVideo(probe: ProbeResult): boolean {
  return probe.streams.some((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
}

export function hasAudio(probe: ProbeResult): boolean {
  return probe.streams.some((s) => s.codec_type === 'audio');
}
