import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { buildAudioCommand } from '../../src/processing/audio/audio-command.js';
import { packageAudio, type AudioPackagingOptions } from '../../src/processing/audio/package-audio.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { SAMPLES } from '../support/harness.js';
import { audioStreamOf, readManifest, samplesOfKind } from './media-manifest.js';

const OPTIONS: AudioPackagingOptions = {
  webm: true,
  hls: true,
  posters: true,
  thumbnails: true,
  hlsMinDuration: 60,
  thumbnailSize: 320,
  threads: 2,
  probeTimeoutMs: 30_000,
  ffmpegTimeoutMs: 120_000,
  maxDurationSeconds: 12 * 3600,
};

function probe(file: string): any {
  return JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-of', 'json', '-show_format', '-show_streams', file], { encoding: 'utf8' }));
}

/** Decodes a whole file with ffmpeg and returns the seconds of audio that came out. */
function decodedSeconds(file: string): number {
  const out = execFileSync('ffmpeg', ['-v', 'error', '-nostats', '-i', file, '-map', '0:a:0', '-f', 'null', '-', '-progress', 'pipe:1'], { encoding: 'utf8' });
  return Number([...out.matchAll(/out_time_us=(\d+)/g)].at(-1)![1]) / 1e6;
}

function maxVolumeDb(file: string): number {
  const res = spawnSync('ffmpeg', ['-nostats', '-i', file, '-map', '0:a:0', '-af', 'volumedetect', '-f', 'null', '-'], { encoding: 'utf8' });
  return Number(/max_volume: (-?[\d.]+) dB/.exec(res.stderr)![1]);
}

/** A picture's metadata, after checking every pixel of it decodes. */
async function decoded(file: string) {
  await sharp(file).raw().toBuffer();
  return sharp(file).metadata();
}

let tmp: string;
async function workDir(): Promise<string> {
  return fs.mkdtemp(path.join(tmp, 'w-'));
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-audio-'));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('audio command (pure)', () => {
  it('decodes once and splits between Opus, HLS and the spectrogram, hardened, paths as single arguments', () => {
    const args = buildAudioCommand({
      input: '/in/my song.flac',
      outDir: '/w',
      audioIndex: 1,
      channels: 2,
      threads: 2,
      opus: { bitrate: 96_000 },
      hls: { bitrate: 128_000, segmentSeconds: 6 },
      spectrogram: { width: 1280, height: 480 },
      coverIndex: 0,
    });
    const at = (flag: string, from = 0) => args[args.indexOf(flag, from) + 1];
    assert.equal(at('-i'), '/in/my song.flac');
    assert.ok(args.indexOf('-protocol_whitelist') < args.indexOf('-i') && at('-protocol_whitelist') === 'file');
    assert.ok(args.indexOf('-format_whitelist') < args.indexOf('-i'));
    assert.match(at('-filter_complex')!, /^\[0:1\]asplit=3\[opus\]\[hls\]\[specin\];\[specin\].*showspectrumpic=s=1280x480/);
    assert.equal(args.filter((a) => a === '-i').length, 1, 'one input, decoded once');
    assert.equal(at('-c:a'), 'libopus');
    assert.equal(at('-c:a', args.indexOf('[hls]')), 'aac');
    assert.equal(at('-hls_segment_type'), 'fmp4');
    assert.ok(args.includes('0:0'), 'the cover stream is mapped by its index');
    assert.equal(args.at(-1), '/w/posters/cover-source.png');
  });

  it('leaves out what is not asked for', () => {
    const args = buildAudioCommand({ input: 'a.mp3', outDir: '/w', audioIndex: 0, channels: 1, threads: 1, opus: { bitrate: 64_000 } });
    assert.equal(args[args.indexOf('-filter_complex') + 1], '[0:0]anull[opus]');
    assert.ok(!args.includes('hls') && !args.some((a) => a.includes('showspectrumpic')));
    assert.equal(args[args.indexOf('-ac') + 1], '1');
  });

  it('with nothing to make, still decodes the audio into a discarded copy', () => {
    const args = buildAudioCommand({ input: 'a.flac', outDir: '/w', audioIndex: 0, channels: 2, threads: 1 });
    assert.equal(args[args.indexOf('-filter_complex') + 1], '[0:0]anull[meter]');
    assert.deepEqual(args.slice(args.indexOf('[meter]') - 1), ['-map', '[meter]', '-c:a', 'pcm_s16le', '-f', 'null', '-']);
    assert.ok(!args.some((a) => a.startsWith('/w/')), 'no file written');
  });
});

describe('audio packaging on real files', () => {
  const manifest = readManifest();
  // Codec, sample rate, channels and duration come from MANIFEST.tsv; what the manifest does not say is here.
  const samples: Array<{ file: string; cover?: [number, number]; hls: boolean; tags?: Record<string, string> }> = [
    { file: 'mp3-id3v2-cover-art-1s.mp3', cover: [256, 256], hls: false, tags: { title: 'image-encoding' } },
    { file: 'mp3-32khz-stereo-10s.mp3', hls: false },
    { file: 'm4a-aac-cover-art.m4a', cover: [30, 30], hls: false, tags: { artist: 'test1', composer: 'test8' } },
    { file: 'flac-192khz-32bit-7s.flac', hls: false, tags: { title: 'Test 192khz 32bits', artist: 'Antonio Larrosa', date: '2005-11-10' } },
    { file: 'vorbis-humpback-whale-song.ogg', hls: true, tags: { comment: 'Processed by SoX' } },
    { file: 'opus-8khz-5s.opus', hls: false },
    { file: 'wav-pcm16-48khz-mono-8s.wav', hls: false },
  ];

  it('every audio sample of MANIFEST.tsv is in this list', () => {
    assert.deepEqual(samples.map((s) => s.file).sort(), samplesOfKind('audio').sort());
  });

  for (const s of samples) {
    it(`${s.file}: Opus WebM to its duration, spectrogram, posters${s.cover ? ', cover art' : ''}${s.hls ? ', HLS' : ''}`, async () => {
      const row = manifest.find((r) => r.file === s.file);
      assert.ok(row, `${s.file} is in MANIFEST.tsv`);
      const want = audioStreamOf(row);
      const source = path.join(SAMPLES, s.file);
      const dir = await workDir();
      const res = await packageAudio(source, dir, OPTIONS);
      const sourceSeconds = Number(probe(source).format.duration);
      assert.ok(Math.abs((res.facts.duration ?? 0) - sourceSeconds) < 0.01);
      assert.ok(Math.abs((res.facts.duration ?? 0) - row.duration!) < 0.01, `duration ${res.facts.duration} s, the manifest says ${row.duration} s`);
      assert.deepEqual(
        { codec: res.facts.codec, sampleRate: res.facts.sample_rate, channels: res.facts.channels },
        want,
        'codec, sample rate and channels as MANIFEST.tsv has them',
      );
      assert.equal(res.facts.container, row.container);
      assert.ok(res.facts.bit_rate && res.facts.bit_rate > 0);
      assert.deepEqual(res.facts.tags, s.tags ?? {}, 'the kept tags, no more (the encoder tag is not one)');

      const webm = probe(path.join(dir, res.files.webm!));
      assert.equal(webm.format.format_name, 'matroska,webm');
      assert.deepEqual(
        webm.streams.map((x: any) => x.codec_name),
        ['opus'],
      );
      assert.equal(webm.streams[0].channels, Math.min(want.channels, 2));
      // Compared with what the source decodes to: AAC priming makes that differ from the container's figure.
      const sourceDecoded = decodedSeconds(source);
      const webmDecoded = decodedSeconds(path.join(dir, res.files.webm!));
      assert.ok(Math.abs(webmDecoded - sourceDecoded) < 0.1, `the Opus rendition plays to the end: ${webmDecoded} s of ${sourceDecoded} s`);

      const spec = await sharp(path.join(dir, res.files.spectrogram!)).metadata();
      assert.deepEqual([spec.format, spec.width, spec.height], ['png', 1280, 480]);
      const stats = await sharp(path.join(dir, res.files.spectrogram!)).stats();
      // Two samples are near-digital silence (about -90 dB): their spectrogram is rightly blank.
      assert.equal(
        stats.channels.some((c) => c.max - c.min > 50),
        maxVolumeDb(source) > -85,
        'the spectrogram shows the sound',
      );
      for (const [p, format] of [
        [res.files.posterWebp!, 'webp'],
        [res.files.posterJpeg!, 'jpeg'],
      ] as const) {
        const m = await decoded(path.join(dir, p));
        assert.deepEqual([m.format, m.width, m.height], [format, 1280, 480], p);
      }
      const thumb = await decoded(path.join(dir, res.files.thumbnail!));
      assert.ok(thumb.format === 'webp' && Math.max(thumb.width!, thumb.height!) <= 320);

      if (s.cover) {
        assert.equal(res.facts.has_cover, true);
        for (const [p, format] of [
          [res.files.coverWebp!, 'webp'],
          [res.files.coverJpeg!, 'jpeg'],
        ] as const) {
          const m = await decoded(path.join(dir, p));
          assert.deepEqual([m.format, m.width, m.height], [format, ...s.cover], p);
        }
        assert.deepEqual([thumb.width, thumb.height], s.cover, 'the thumbnail shows the cover art');
      } else {
        assert.equal(res.files.coverWebp, undefined);
      }
      if (s.hls) {
        const master = await fs.readFile(path.join(dir, res.files.hlsMaster!), 'utf8');
        assert.match(master, /CODECS="mp4a\.40\.2"/);
        const media = await fs.readFile(path.join(dir, 'hls/audio.m3u8'), 'utf8');
        const segs = media.split('\n').filter((l) => l.endsWith('.m4s'));
        const total = [...media.matchAll(/#EXTINF:([\d.]+)/g)].reduce((n, m) => n + Number(m[1]), 0);
        assert.ok(segs.length >= 10, `${segs.length} segments of about 6 s`);
        assert.ok(Math.abs(total - sourceSeconds) < 0.2, `HLS covers ${total} s of ${sourceSeconds}`);
        // A segment decodes when prefixed by the init section, as a player does.
        const joined = path.join(dir, 'joined.mp4');
        await fs.writeFile(joined, Buffer.concat([await fs.readFile(path.join(dir, 'hls/init.mp4')), await fs.readFile(path.join(dir, 'hls', segs[1]!))]));
        assert.deepEqual(
          probe(joined).streams.map((x: any) => [x.codec_name, x.sample_rate]),
          [['aac', '48000']],
        );
        await fs.rm(joined);
      } else {
        assert.equal(res.files.hlsMaster, undefined, 'short audio needs no HLS');
      }
      const left = await fs.readdir(path.join(dir, 'posters'));
      assert.ok(!left.includes('cover-source.png'), 'intermediate files are removed');
    });
  }

  it('a video file with no picture is audio: the sound only', async () => {
    const file = path.join(tmp, 'voice memo.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=3', '-c:a', 'aac', '-y', file]);
    const dir = await workDir();
    const res = await packageAudio(file, dir, { ...OPTIONS, hlsMinDuration: 1 });
    assert.equal(res.facts.codec, 'aac');
    assert.ok(res.files.hlsMaster, 'long enough for HLS with this setting');
    assert.ok(Math.abs(decodedSeconds(path.join(dir, res.files.webm!)) - 3) < 0.1);
  });

  it('surround is downmixed to stereo', async () => {
    const file = path.join(tmp, 'surround.flac');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=220:duration=2',
      '-af',
      'pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0',
      '-y',
      file,
    ]);
    const dir = await workDir();
    const res = await packageAudio(file, dir, OPTIONS);
    assert.equal(res.facts.channels, 6);
    assert.equal(probe(path.join(dir, res.files.webm!)).streams[0].channels, 2);
  });

  it('a truncated FLAC fails as truncated, not as a shorter file', async () => {
    const whole = await fs.readFile(path.join(SAMPLES, 'flac-192khz-32bit-7s.flac'));
    const file = path.join(tmp, 'cut.flac');
    await fs.writeFile(file, whole.subarray(0, Math.floor(whole.length * 0.4)));
    const dir = await workDir();
    await assert.rejects(packageAudio(file, dir, OPTIONS), (err: unknown) => {
      assert.ok(err instanceof PermanentJobError);
      assert.equal(err.code, 'truncated-media');
      assert.match(err.message, /of its 7\.0 s could be decoded/);
      return true;
    });
  });

  it('refuses a zero-byte file, a file with no audio, and audio over the duration limit', async () => {
    const codeOf = async (file: string, opts = OPTIONS) => {
      try {
        await packageAudio(file, await workDir(), opts);
        return 'no error';
      } catch (err) {
        assert.ok(err instanceof PermanentJobError, String(err));
        return err.code;
      }
    };
    assert.equal(await codeOf(path.join(SAMPLES, 'broken-zero-bytes.mp3')), 'unreadable-media');
    assert.equal(await codeOf(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), 'no-audio-stream');
    assert.equal(await codeOf(path.join(SAMPLES, 'opus-8khz-5s.opus'), { ...OPTIONS, maxDurationSeconds: 2 }), 'too-long');
  });

  it('title, artist and album tags are recorded as tagged', async () => {
    const file = path.join(tmp, 'tagged.mp3');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=330:duration=2',
      '-c:a',
      'libmp3lame',
      '-metadata',
      'title=Ünder the Söa',
      '-metadata',
      'artist=The Qasar Trio',
      '-metadata',
      'album=Field Recordings, Vol. 2',
      '-metadata',
      'genre=Ambient',
      '-y',
      file,
    ]);
    const res = await packageAudio(file, await workDir(), OPTIONS);
    assert.deepEqual(res.facts.tags, { title: 'Ünder the Söa', artist: 'The Qasar Trio', album: 'Field Recordings, Vol. 2', genre: 'Ambient' });
  });

  it('with every output turned off the file is still decoded whole: a truncated FLAC fails, a sound one makes nothing', async () => {
    const off = { ...OPTIONS, webm: false, hls: false, posters: false, thumbnails: false };
    const whole = await fs.readFile(path.join(SAMPLES, 'flac-192khz-32bit-7s.flac'));
    const cut = path.join(tmp, 'cut-all-off.flac');
    await fs.writeFile(cut, whole.subarray(0, Math.floor(whole.length * 0.4)));
    const failed = await workDir();
    await assert.rejects(packageAudio(cut, failed, off), (err: unknown) => err instanceof PermanentJobError && err.code === 'truncated-media');
    const dir = await workDir();
    const res = await packageAudio(path.join(SAMPLES, 'flac-192khz-32bit-7s.flac'), dir, off);
    assert.deepEqual(res.files, {});
    assert.deepEqual(await fs.readdir(dir), [], 'nothing written');
    assert.ok(Math.abs(res.decodedSeconds! - 6.959) < 0.05, `decoded ${res.decodedSeconds} s of 6.959 s`);
  });

  it('makes only what the settings ask for', async () => {
    const dir = await workDir();
    const res = await packageAudio(path.join(SAMPLES, 'mp3-32khz-stereo-10s.mp3'), dir, { ...OPTIONS, webm: false, posters: false, thumbnails: true });
    assert.deepEqual(Object.keys(res.files), ['thumbnail']);
    assert.deepEqual((await fs.readdir(dir)).sort(), ['thumbnails']);
  });
});
