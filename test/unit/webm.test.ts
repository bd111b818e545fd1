import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MediaFacts, VideoFacts } from '../../src/processing/probe-facts.js';
import { buildWebmCommand, makeWebm, planWebmRung, WEBM_SPEED, type WebmResult } from '../../src/processing/video/webm.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { SAMPLES } from '../support/harness.js';

const OPTIONS = { threads: 2, probeTimeoutMs: 30_000, ffmpegTimeoutMs: 120_000 };

function probeJson(file: string, entries: string): any {
  return JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-of', 'json', ...entries.split(' '), file], { encoding: 'utf8' }));
}

function sourceDuration(file: string): number {
  return Number(probeJson(file, '-show_entries format=duration').format.duration);
}

function videoFacts(over: Partial<VideoFacts> = {}): VideoFacts {
  return {
    codec: 'h264',
    profile: 'High',
    width: 1920,
    height: 1080,
    sar: '1:1',
    dar: '16:9',
    rotation: 0,
    display_width: 1920,
    display_height: 1080,
    fps: 30,
    variable_frame_rate: false,
    interlaced: false,
    pix_fmt: 'yuv420p',
    bit_rate: null,
    duration: 10,
    ...over,
  };
}

function plan(video: VideoFacts, audio: MediaFacts['audio']) {
  const facts = { duration: 10, container: 'mp4', bit_rate: null, video, audio };
  return { input: '/in/up load.mp4', output: '/out/.x.part', facts, rung: planWebmRung(video), fps: 30, keyframeSeconds: 4, threads: 2, speed: WEBM_SPEED };
}

describe('WebM rung and command (pure)', () => {
  it('caps the short side at 720, never upscales, keeps the display aspect, scales the rate cap', () => {
    const r = (w: number, h: number, fps?: number) => planWebmRung({ display_width: w, display_height: h }, fps);
    assert.deepEqual(r(1920, 1080), { width: 1280, height: 720, crf: 32, maxBitrate: 2_000_000 });
    assert.deepEqual(r(3840, 2160), { width: 1280, height: 720, crf: 32, maxBitrate: 2_000_000 });
    assert.deepEqual(r(1080, 1920), { width: 720, height: 1280, crf: 32, maxBitrate: 2_000_000 });
    assert.equal(r(1280, 720, 60).maxBitrate, 3_000_000, 'more frames, more bits');
    const small = r(854, 480);
    assert.deepEqual([small.width, small.height, small.crf], [854, 480, 33]);
    assert.ok(small.maxBitrate < 2_000_000 && small.maxBitrate > 700_000, `480p cap ${small.maxBitrate}`);
    assert.deepEqual([r(320, 568).width, r(320, 568).height], [320, 568]);
    assert.deepEqual([r(192, 144).width, r(192, 144).height, r(192, 144).maxBitrate], [192, 144, 200_000]);
    assert.deepEqual([r(1440, 1080).width, r(1440, 1080).height], [960, 720]);
    const odd = r(1001, 563);
    assert.ok(odd.width % 2 === 0 && odd.height % 2 === 0, 'even sizes');
  });

  it('builds hardened argv as plain data: VP9 constrained quality, Opus only with audio', () => {
    const withAudio = buildWebmCommand(plan(videoFacts(), { codec: 'aac', channels: 2, sample_rate: 48000, bit_rate: null }));
    const i = withAudio.indexOf('-i');
    assert.equal(withAudio[i + 1], '/in/up load.mp4', 'the path is one argument, never shell-quoted');
    const pw = withAudio.indexOf('-protocol_whitelist');
    assert.ok(pw >= 0 && pw < i && withAudio[pw + 1] === 'file', 'file protocol only, before the input');
    assert.ok(withAudio.indexOf('-format_whitelist') < i);
    const arg = (flag: string, args = withAudio): string => args[args.indexOf(flag) + 1] ?? '';
    assert.equal(arg('-c:v'), 'libvpx-vp9');
    assert.equal(arg('-crf'), '32');
    assert.equal(arg('-b:v'), '2000000');
    assert.equal(arg('-row-mt'), '1');
    assert.equal(arg('-tile-columns'), '2');
    assert.equal(arg('-force_key_frames'), 'expr:gte(t,n_forced*4)', 'a keyframe every 4 s');
    assert.equal(arg('-g'), '120');
    assert.equal(arg('-deadline'), WEBM_SPEED.deadline);
    assert.equal(arg('-cpu-used'), String(WEBM_SPEED.cpuUsed));
    assert.equal(arg('-filter:v'), 'scale=1280:720:flags=bicubic,setsar=1,format=yuv420p');
    assert.equal(arg('-c:a'), 'libopus');
    assert.equal(arg('-ac'), '2');
    assert.deepEqual(withAudio.slice(-3), ['-f', 'webm', '/out/.x.part']);

    const silent = buildWebmCommand(plan(videoFacts({ interlaced: true }), null));
    assert.ok(!silent.includes('0:a:0') && !silent.includes('-c:a'), 'no audio mapped when the source has none');
    assert.match(arg('-filter:v', silent), /^bwdif=mode=send_frame:parity=auto:deint=interlaced,scale=/);
    const vfr = buildWebmCommand({ ...plan(videoFacts({ variable_frame_rate: true, fps: 17.8 }), null), fps: 23.976 });
    assert.match(arg('-filter:v', vfr), /^fps=24000\/1001,scale=/);
  });
});

interface Case {
  file: string;
  size: string;
  dar: string;
  audio: boolean;
}

const CASES: Case[] = [
  { file: 'h264-1920x1080-aac-deer.mp4', size: '1280x720', dar: '16:9', audio: true },
  { file: 'phone-iphone4s-portrait-rot90-h264-aac.mov', size: '320x568', dar: '40:71', audio: true },
  { file: 'vp8-1920x1080-noaudio-screenrec.webm', size: '1280x720', dar: '16:9', audio: false },
  { file: 'phone-h263-176x144-sar12x11-amr.3gp', size: '192x144', dar: '4:3', audio: true },
  { file: 'avchd-h264-1920x1080i-ac3.mts', size: '1280x720', dar: '16:9', audio: true },
];

describe('makeWebm (real ffmpeg on the shared samples)', () => {
  let tmp: string;
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-webm-'));
  });
  after(() => fs.rm(tmp, { recursive: true, force: true }));

  for (const c of CASES) {
    it(`${c.file} → ${c.size} VP9${c.audio ? ' + Opus' : ', no audio'}`, async () => {
      const source = path.join(SAMPLES, c.file);
      const dir = path.join(tmp, c.file);
      const out = path.join(dir, 'video.webm');
      const result: WebmResult = await makeWebm(source, out, OPTIONS);
      assert.equal(result.file, out);
      assert.equal(`${result.width}x${result.height}`, c.size);
      assert.ok(result.bitrate > 0 && result.ms > 0);
      assert.deepEqual(await fs.readdir(dir), ['video.webm'], 'no temporary file left beside the result');

      const probe = probeJson(
        out,
        '-show_entries format=format_name,duration:stream=codec_type,codec_name,width,height,sample_aspect_ratio,display_aspect_ratio,pix_fmt,channels,sample_rate:stream_side_data',
      );
      assert.equal(probe.format.format_name, 'matroska,webm');
      const streams = probe.streams as Array<Record<string, any>>;
      const v = streams.filter((s) => s.codec_type === 'video');
      const a = streams.filter((s) => s.codec_type === 'audio');
      assert.equal(v.length, 1);
      assert.equal(v[0]!.codec_name, 'vp9');
      assert.equal(`${v[0]!.width}x${v[0]!.height}`, c.size);
      assert.equal(v[0]!.pix_fmt, 'yuv420p');
      assert.equal(v[0]!.sample_aspect_ratio, '1:1', 'square pixels');
      assert.equal(v[0]!.display_aspect_ratio, c.dar);
      assert.equal(v[0]!.side_data_list, undefined, 'upright pixels: no rotation left for the player to apply');
      if (c.audio) {
        assert.equal(a.length, 1);
        assert.equal(a[0]!.codec_name, 'opus');
        assert.equal(a[0]!.channels, 2);
        assert.equal(a[0]!.sample_rate, '48000');
      } else {
        assert.equal(a.length, 0, 'no audio stream when the source has none');
      }
      const expected = sourceDuration(source);
      const got = Number(probe.format.duration);
      assert.ok(Math.abs(got - expected) <= 0.15, `duration ${got} s close to the source's ${expected} s`);
      // A keyframe on the first frame at or after every 4 s (screen recordings have gaps between frames).
      const packets = probeJson(out, '-select_streams v:0 -show_entries packet=pts_time,flags').packets as Array<{ pts_time: string; flags: string }>;
      const frames = packets.map((p) => ({ t: Number(p.pts_time), key: p.flags.startsWith('K') })).sort((x, y) => x.t - y.t);
      const start = frames[0]!.t;
      assert.ok(frames[0]!.key, 'starts with a keyframe');
      for (let at = start + 4; at <= frames[frames.length - 1]!.t; at += 4) {
        const first = frames.find((f) => f.t >= at - 0.002)!;
        assert.ok(
          first.key,
          `keyframe at ${first.t} s (the first frame from ${at.toFixed(3)} s); keyframes: ${frames
            .filter((f) => f.key)
            .map((f) => f.t)
            .join(', ')}`,
        );
      }
    });
  }

  it('makes a variable-frame-rate source constant', async () => {
    const out = path.join(tmp, 'vfr', 'video.webm');
    const result = await makeWebm(path.join(SAMPLES, 'iphone6s-livephoto-vfr-1440x1080-pcm.mov'), out, OPTIONS);
    assert.equal(`${result.width}x${result.height}`, '960x720');
    const frames = probeJson(out, '-select_streams v:0 -show_entries packet=pts_time').packets as Array<{ pts_time: string }>;
    const pts = frames.map((f) => Number(f.pts_time)).sort((x, y) => x - y);
    const gaps = pts.slice(1).map((t, k) => t - pts[k]!);
    assert.ok(Math.max(...gaps) - Math.min(...gaps) <= 0.002, `even frame spacing: ${gaps.map((g) => g.toFixed(3)).join(' ')}`);
  });

  it('rejects broken input permanently and leaves no file behind', async () => {
    for (const [file, code] of [
      ['broken-truncated-h264-aac.mkv', 'truncated-media'],
      ['broken-zero-bytes.mp3', 'unreadable-media'],
      ['mp3-32khz-stereo-10s.mp3', 'no-video-stream'],
    ] as const) {
      const dir = path.join(tmp, `broken-${file}`);
      await assert.rejects(makeWebm(path.join(SAMPLES, file), path.join(dir, 'video.webm'), OPTIONS), (e: unknown) => {
        assert.ok(e instanceof PermanentJobError, `${file}: ${String(e)}`);
        assert.equal(e.code, code, `${file}: ${e.message}`);
        return true;
      });
      const left = await fs.readdir(dir).catch(() => []);
      assert.deepEqual(left, [], `${file}: nothing written`);
    }
  });

  it('gives up after the time limit, permanently, and leaves no file behind', async () => {
    const dir = path.join(tmp, 'slow');
    await assert.rejects(
      makeWebm(path.join(SAMPLES, 'vp8-1920x1080-noaudio-screenrec.webm'), path.join(dir, 'video.webm'), { ...OPTIONS, ffmpegTimeoutMs: 200 }),
      (e: unknown) => e instanceof PermanentJobError && e.code === 'timeout',
    );
    assert.deepEqual(await fs.readdir(dir), []);
  });
});
