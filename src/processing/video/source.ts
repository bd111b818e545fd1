import { PermanentJobError } from '../../queue/queue.js';
import { ffprobe, ProbeError } from '../ffprobe.js';
import { mediaFacts, type MediaFacts } from '../probe-facts.js';
import { runTool, trimStderr } from '../run-tool.js';

export type VideoSourceFacts = MediaFacts & { video: NonNullable<MediaFacts['video']>; duration: number };

/** Errors that say the machine, not the input, is at fault: worth a retry. */
const TRANSIENT = /No space left on device|Cannot allocate memory|Resource temporarily unavailable|Too many open files/i;

/**
 * Facts of a video source that every video step needs: readable, with a video stream and a
 * duration. Anything else is a PermanentJobError (no retry can fix the input).
 */
export async function videoSourceFacts(source: string, probeTimeoutMs: number, known?: MediaFacts): Promise<VideoSourceFacts> {
  let facts = known;
  if (!facts) {
    try {
      facts = mediaFacts(await ffprobe(source, probeTimeoutMs));
    } catch (err) {
      if (err instanceof ProbeError) throw new PermanentJobError(`the file could not be read as video: ${err.message}`, 'unreadable-media');
      throw err;
    }
  }
  if (!facts.video) throw new PermanentJobError('the file has no video stream', 'no-video-stream');
  if (!facts.duration || facts.duration <= 0) throw new PermanentJobError('the video has no duration', 'unreadable-media');
  return facts as VideoSourceFacts;
}

/**
 * Runs one ffmpeg step with its time limit. A timeout or a failed decode is permanent; a
 * signal or resource trouble is retried. Returns the wall time in ms.
 */
export async function runFfmpegStep(args: string[], timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  const res = await runTool('ffmpeg', args, { timeoutMs });
  if (res.timedOut) throw new PermanentJobError(`${what} took longer than ${Math.round(timeoutMs / 1000)} s`, 'timeout');
  if (res.code !== 0) {
    const reason = trimStderr(res.stderr) || `ffmpeg exited with ${res.code ?? res.signal}`;
    if (TRANSIENT.test(res.stderr) || res.signal) throw new Error(reason);
    throw new PermanentJobError(`the video could not be decoded: ${reason}`, 'transcode-failed');
  }
  return Date.now() - started;
}
