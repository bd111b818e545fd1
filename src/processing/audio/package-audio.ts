import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { PermanentJobError } from '../../shared/errors.js';
import { ffprobe, ProbeError, probeFailure, type ProbeResult, type ProbeStream } from '../../tools/ffprobe.js';
import { mediaFacts, type MediaFacts } from '../probe-facts.js';
import { assertWithinDeclared, DEFAULT_DURATION_LIMITS, durationBound, durationIsEstimated, shortOutputError, type DurationLimits } from '../duration-bound.js';
import { runFfmpegStep } from '../ffmpeg-step.js';
import { AUDIO_FILES, audioBitrates, buildAudioCommand } from './audio-command.js';

export interface AudioPackagingOptions {
  webm: boolean;
  hls: boolean;
  posters: boolean;
  thumbnails: boolean;
  /** Audio at least this long (seconds) gets the HLS rendition. */
  hlsMinDuration: number;
  thumbnailSize: number;
  threads: number;
  probeTimeoutMs: number;
  ffmpegTimeoutMs: number;
  maxDurationSeconds: number;
  /** Cut and time limit by the declared duration (defaults: the settings' defaults, ffmpegTimeoutMs as the ceiling). */
  durationLimits?: Omit<DurationLimits, 'timeoutCeilingMs'>;
}

export interface AudioFacts {
  duration: number | null;
  container: string | null;
  codec: string;
  sample_rate: number | null;
  channels: number | null;
  bit_rate: number | null;
  /** Title, artist, album… as tagged in the file (keys lower-case). */
  tags: Record<string, string>;
  has_cover: boolean;
}

export interface PackagedAudio {
  facts: AudioFacts;
  probe: MediaFacts;
  files: {
    webm?: string;
    hlsMaster?: string;
    spectrogram?: string;
    posterJpeg?: string;
    posterWebp?: string;
    coverJpeg?: string;
    coverWebp?: string;
    thumbnail?: string;
  };
  /** Seconds of audio that decoded. */
  decodedSeconds: number | null;
  ffmpegMs: number;
}

const SPECTROGRAM = { width: 1280, height: 480 };

const HLS_SEGMENT_SECONDS = 6;
const KEPT_TAGS = ['title', 'artist', 'album', 'album_artist', 'composer', 'genre', 'date', 'track', 'disc', 'comment', 'language'];

function tagsOf(probe: ProbeResult, stream: ProbeStream): Record<string, string> {
  const out: Record<string, string> = {};
  // Ogg keeps its comments on the stream, most containers on the format: the format wins.
  for (const source of [stream.tags as Record<string, string> | undefined, probe.format.tags]) {
    for (const [k, v] of Object.entries(source ?? {})) {
      const key = k.toLowerCase();
      if (!KEPT_TAGS.includes(key) || typeof v !== 'string' || !v.trim()) continue;
      // MP4 and Matroska tracks say `und` (ISO 639 "undetermined") when nobody set a language.
      if (key === 'language' && v.trim() === 'und') continue;
      out[key] = v.trim().slice(0, 500);
    }
  }
  return out;
}

/** Seconds decoded, from ffmpeg's last progress report. */
function decodedSecondsOf(progress: string): number | null {
  const all = [...progress.matchAll(/^out_time_us=(\d+)$/gm)];
  const last = all.at(-1);
  return last ? Number(last[1]) / 1e6 : null;
}

async function toWebpAndJpeg(png: string, base: string): Promise<{ webp: string; jpeg: string }> {
  const img = sharp(png, { limitInputPixels: 50_000_000 });
  await img.clone().webp({ quality: 82 }).toFile(`${base}.webp`);
  await img.clone().flatten({ background: '#ffffff' }).jpeg({ quality: 85, mozjpeg: true }).toFile(`${base}.jpg`);
  return { webp: `${base}.webp`, jpeg: `${base}.jpg` };
}

/**
 * Probes an audio file, then makes its derived files in one ffmpeg run inside `workDir`:
 * WebM/Opus, an AAC HLS rendition for long audio, the spectrogram, and the cover art when
 * the file carries one; then posters from the spectrogram and cover art in WebP and JPEG.
 */
export async function packageAudio(source: string, workDir: string, opts: AudioPackagingOptions): Promise<PackagedAudio> {
  let probe: ProbeResult;
  try {
    probe = await ffprobe(source, opts.probeTimeoutMs);
  } catch (err) {
    if (err instanceof ProbeError) throw probeFailure(err, 'audio');
    throw err;
  }
  const stream = probe.streams.find((s) => s.codec_type === 'audio');
  if (!stream) throw new PermanentJobError('the file has no audio stream', 'no-audio-stream');
  const facts = mediaFacts(probe);
  const duration = facts.duration;
  if (duration !== null && duration > opts.maxDurationSeconds) {
    throw new PermanentJobError(`the audio lasts ${Math.round(duration)} s, over the limit of ${opts.maxDurationSeconds} s`, 'too-long');
  }
  // Without a declared duration the file is decoded whole under FFMPEG_TIMEOUT, as before.
  const limits = { ...DEFAULT_DURATION_LIMITS, ...opts.durationLimits, timeoutCeilingMs: opts.ffmpegTimeoutMs };
  // Raw MP3 and ADTS AAC: a VBR file without a Xing header can be 3x longer than ffprobe's estimate.
  const estimated = durationIsEstimated(facts.container);
  const bound = duration !== null && duration > 0 ? durationBound(estimated ? opts.maxDurationSeconds : duration, limits) : undefined;
  const cover = probe.streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic);
  const channels: 1 | 2 = Number(stream.channels) === 1 ? 1 : 2;
  const rates = audioBitrates(channels);
  const wantHls = opts.hls && duration !== null && duration >= opts.hlsMinDuration;
  const wantPictures = opts.posters || opts.thumbnails;
  const plan = {
    input: source,
    outDir: workDir,
    audioIndex: stream.index,
    channels,
    threads: opts.threads,
    ...(bound ? { maxSeconds: bound.cap } : {}),
    ...(opts.webm ? { opus: { bitrate: rates.opus } } : {}),
    ...(wantHls ? { hls: { bitrate: rates.aac, segmentSeconds: HLS_SEGMENT_SECONDS } } : {}),
    ...(wantPictures ? { spectrogram: SPECTROGRAM } : {}),
    ...(wantPictures && cover ? { coverIndex: cover.index } : {}),
  };
  const audioFacts: AudioFacts = {
    duration,
    container: facts.container,
    codec: String(stream.codec_name ?? 'unknown'),
    sample_rate: facts.audio?.sample_rate ?? null,
    channels: facts.audio?.channels ?? null,
    bit_rate: facts.audio?.bit_rate ?? facts.bit_rate,
    tags: tagsOf(probe, stream),
    has_cover: !!cover,
  };
  const files: PackagedAudio['files'] = {};
  // Even with nothing to make, the file is decoded (into a discarded copy): a damaged one fails.
  for (const dir of ['webm', 'hls', 'posters', 'thumbnails']) await fs.mkdir(path.join(workDir, dir), { recursive: true });
  const run = await runFfmpegStep(buildAudioCommand(plan), bound?.timeoutMs ?? opts.ffmpegTimeoutMs, 'audio packaging', 'audio');
  const decodedSeconds = decodedSecondsOf(run.stdout);
  if (bound && decodedSeconds !== null) {
    if (!estimated) assertWithinDeclared(decodedSeconds, bound);
    else if (decodedSeconds > opts.maxDurationSeconds) {
      throw new PermanentJobError(`the audio lasts more than the limit of ${opts.maxDurationSeconds} s`, 'too-long');
    }
  }
  // ffmpeg decodes what it can of a truncated file and exits 0: compare with what the container promised.
  if (duration !== null && decodedSeconds !== null && decodedSeconds < duration * 0.9 - 0.5) {
    const truncated = new PermanentJobError(
      `the file is truncated or damaged: ${decodedSeconds.toFixed(1)} s of its ${duration.toFixed(1)} s could be decoded`,
      'truncated-media',
    );
    throw bound ? await shortOutputError(source, bound, 'a', opts.probeTimeoutMs, truncated) : truncated;
  }
  if (plan.opus) files.webm = AUDIO_FILES.webm;
  if (plan.hls) files.hlsMaster = AUDIO_FILES.hlsMaster;
  if (plan.spectrogram) {
    const spectrogram = path.join(workDir, AUDIO_FILES.spectrogram);
    if (opts.posters) {
      files.spectrogram = AUDIO_FILES.spectrogram;
      await toWebpAndJpeg(spectrogram, path.join(workDir, 'posters/poster'));
      files.posterWebp = 'posters/poster.webp';
      files.posterJpeg = 'posters/poster.jpg';
    }
    let thumbSource = spectrogram;
    if (plan.coverIndex !== undefined) {
      const coverPng = path.join(workDir, AUDIO_FILES.cover);
      // A damaged picture must not cost the audio: the cover is then simply not offered.
      const ok = await sharp(coverPng, { limitInputPixels: 50_000_000 })
        .metadata()
        .then(
          () => true,
          () => false,
        );
      if (ok) {
        if (opts.posters) {
          await toWebpAndJpeg(coverPng, path.join(workDir, 'posters/cover'));
          files.coverWebp = 'posters/cover.webp';
          files.coverJpeg = 'posters/cover.jpg';
        }
        thumbSource = coverPng;
      }
    }
    if (opts.thumbnails) {
      await sharp(thumbSource, { limitInputPixels: 50_000_000 })
        .resize(opts.thumbnailSize, opts.thumbnailSize, { fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 80 })
        .toFile(path.join(workDir, 'thumbnails/thumb.webp'));
      files.thumbnail = 'thumbnails/thumb.webp';
    }
    await fs.rm(path.join(workDir, AUDIO_FILES.cover), { force: true });
    if (!opts.posters) await fs.rm(spectrogram, { force: true });
  }
  for (const dir of ['webm', 'hls', 'posters', 'thumbnails']) {
    const p = path.join(workDir, dir);
    if ((await fs.readdir(p)).length === 0) await fs.rmdir(p);
  }
  return { facts: audioFacts, probe: facts, files, decodedSeconds, ffmpegMs: run.ms };
}
