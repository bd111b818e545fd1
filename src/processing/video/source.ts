import { PermanentJobError } from '../../shared/errors.js';
import { ffprobe, ProbeError, probeFailure } from '../../tools/ffprobe.js';
import { mediaFacts, type MediaFacts } from '../probe-facts.js';

export type VideoSourceFacts = MediaFacts & { video: NonNullable<MediaFacts['video']>; duration: number };

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
      if (err instanceof ProbeError) throw probeFailure(err, 'video');
      throw err;
    }
  }
  if (!facts.video) throw new PermanentJobError('the file has no video stream', 'no-video-stream');
  if (!facts.duration || facts.duration <= 0) throw new PermanentJobError('the video has no duration', 'unreadable-media');
  return facts as VideoSourceFacts;
}
