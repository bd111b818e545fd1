import { execFileSync } from 'node:child_process';

export interface ClipOptions {
  seconds: number;
  /** `WxH`; 320x240 unless given. */
  size?: string;
  rate?: number;
  /** A sine tone of this frequency as an AAC track; none unless given. */
  toneHz?: number;
  /** The ffmpeg to run (a test may put a wrapper first on the PATH). */
  ffmpeg?: string;
}

/** Writes a synthetic H.264 clip (ffmpeg's testsrc2 pattern, and a tone when asked) to `file`. */
export function makeClip(file: string, o: ClipOptions): void {
  const video = ['-f', 'lavfi', '-i', `testsrc2=size=${o.size ?? '320x240'}:rate=${o.rate ?? 25}`];
  const audio = o.toneHz ? ['-f', 'lavfi', '-i', `sine=frequency=${o.toneHz}`] : [];
  const audioOut = o.toneHz ? ['-c:a', 'aac', '-shortest'] : [];
  execFileSync(o.ffmpeg ?? 'ffmpeg', [
    '-v',
    'error',
    ...video,
    ...audio,
    '-t',
    String(o.seconds),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    ...audioOut,
    file,
  ]);
}
