import { hardenedInputArgs } from '../../tools/ffmpeg-hardening.js';

/** Everything one audio job's single ffmpeg run produces, as plain data. */
export interface AudioCommandPlan {
  input: string;
  /** Work folder: the run writes webm/, hls/ and posters/ inside it (nothing when only checking the decode). */
  outDir: string;
  /** Index (in the input) of the audio stream to use. */
  audioIndex: number;
  /** Output channels: 1 for mono sources, 2 for everything else (surround is downmixed). */
  channels: 1 | 2;
  threads: number;
  /** WebM/Opus rendition, bit rate in bits/s. */
  opus?: { bitrate: number };
  /** HLS audio-only rendition (AAC in fragmented MP4), bit rate in bits/s. */
  hls?: { bitrate: number; segmentSeconds: number };
  /** Spectrogram picture of the whole file, PNG. */
  spectrogram?: { width: number; height: number };
  /** Input index of an attached picture (cover art) to extract as PNG. */
  coverIndex?: number;
  /** The sound is cut here (seconds): a file's timestamps may run far past what it declares. */
  maxSeconds?: number;
}

export const AUDIO_FILES = {
  webm: 'webm/audio.webm',
  hlsMaster: 'hls/master.m3u8',
  hlsMedia: 'audio.m3u8',
  spectrogram: 'posters/spectrogram.png',
  cover: 'posters/cover-source.png',
} as const;

/**
 * The ffmpeg argv of one audio job: the audio is decoded once and split between the Opus
 * rendition, the AAC HLS rendition and the spectrogram; cover art is decoded from its own
 * stream. Progress goes to stdout, so the caller can tell how much of the file decoded.
 */
export function buildAudioCommand(plan: AudioCommandPlan): string[] {
  const out = (rel: string) => `${plan.outDir}/${rel}`;
  const branches: string[] = [];
  if (plan.opus) branches.push('opus');
  if (plan.hls) branches.push('hls');
  if (plan.spectrogram) branches.push('spec');
  // With no audio output (even with nothing to make at all), a discarded copy still decodes
  // the whole file, so the progress report says how much of it could be read.
  if (!plan.opus && !plan.hls) branches.push('meter');
  const args = ['-hide_banner', '-nostdin', '-nostats', '-v', 'error', '-progress', 'pipe:1', ...hardenedInputArgs(), '-i', plan.input];
  const filters: string[] = [];
  const label = (b: string) => (b === 'spec' ? '[specin]' : `[${b}]`);
  const src = `[0:${plan.audioIndex}]`;
  const trim = plan.maxSeconds !== undefined ? `atrim=end=${plan.maxSeconds.toFixed(3)}` : undefined;
  if (branches.length === 1) filters.push(`${src}${trim ?? 'anull'}${label(branches[0]!)}`);
  else if (branches.length > 1) filters.push(`${src}${trim ? `${trim},` : ''}asplit=${branches.length}${branches.map(label).join('')}`);
  if (plan.spectrogram) {
    const { width, height } = plan.spectrogram;
    // One picture for all channels; log intensity shows quiet detail; no legend keeps the exact size.
    filters.push(`[specin]aformat=channel_layouts=mono,showspectrumpic=s=${width}x${height}:legend=0:color=intensity:scale=log:fscale=lin[spec]`);
  }
  if (filters.length) args.push('-filter_complex', filters.join(';'));
  args.push('-threads', String(plan.threads));
  if (plan.opus) {
    args.push(
      '-map',
      '[opus]',
      '-c:a',
      'libopus',
      '-b:a',
      String(plan.opus.bitrate),
      '-vbr',
      'on',
      '-ac',
      String(plan.channels),
      '-ar',
      '48000',
      '-map_metadata',
      '-1',
      '-f',
      'webm',
      '-y',
      out(AUDIO_FILES.webm),
    );
  }
  if (plan.hls) {
    args.push(
      '-map',
      '[hls]',
      '-c:a',
      'aac',
      '-b:a',
      String(plan.hls.bitrate),
      '-ac',
      String(plan.channels),
      '-ar',
      '48000',
      '-map_metadata',
      '-1',
      '-f',
      'hls',
      '-hls_time',
      String(plan.hls.segmentSeconds),
      '-hls_playlist_type',
      'vod',
      '-hls_segment_type',
      'fmp4',
      '-hls_fmp4_init_filename',
      'init.mp4',
      '-hls_segment_filename',
      out('hls/seg_%05d.m4s'),
      '-master_pl_name',
      'master.m3u8',
      '-y',
      out(`hls/${AUDIO_FILES.hlsMedia}`),
    );
  }
  if (branches.includes('meter')) args.push('-map', '[meter]', '-c:a', 'pcm_s16le', '-f', 'null', '-');
  if (plan.spectrogram) args.push('-map', '[spec]', '-frames:v', '1', '-update', '1', '-y', out(AUDIO_FILES.spectrogram));
  if (plan.coverIndex !== undefined) {
    args.push('-map', `0:${plan.coverIndex}`, '-frames:v', '1', '-c:v', 'png', '-update', '1', '-y', out(AUDIO_FILES.cover));
  }
  return args;
}

/** Opus and AAC bit rates by channel count: transparent for speech and most music at these rates. */
export function audioBitrates(channels: 1 | 2): { opus: number; aac: number } {
  return channels === 1 ? { opus: 64_000, aac: 64_000 } : { opus: 96_000, aac: 128_000 };
}
