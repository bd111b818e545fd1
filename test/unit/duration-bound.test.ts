import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildAudioCommand } from '../../src/processing/audio/audio-command.js';
import { packageAudio } from '../../src/processing/audio/package-audio.js';
import { parseContainer } from '../../src/processing/document/epub-package.js';
import { durationBound } from '../../src/processing/duration-bound.js';
import { publicReason } from '../../src/processing/public-reason.js';
import { toolArgv } from '../../src/tools/run-tool.js';
import { buildWebmCommand, makeWebm, planWebmRung } from '../../src/processing/video/webm.js';
import { PermanentJobError } from '../../src/shared/errors.js';
import { makeLyingMkv, patchMkvDuration } from '../support/lying-mkv.js';

const LIMITS = { toleranceSeconds: 2, timeoutFactor: 10, timeoutFloorMs: 300_000, timeoutCeilingMs: 7_200_000 };

describe('bounding by the declared duration', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-bound-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('gives a run a time limit from the source duration, under FFMPEG_TIMEOUT', () => {
    const ten = durationBound(10, LIMITS);
    assert.equal(ten.cap, 12);
    assert.equal(ten.timeoutMs, 300_000 + 120_000);
    const long = durationBound(3 * 3600, LIMITS);
    assert.equal(long.cap, 3 * 3600 * 1.01, 'the tolerance grows to 1 % of long files');
    assert.equal(long.timeoutMs, 7_200_000, 'FFMPEG_TIMEOUT stays the ceiling');
  });

  it('trims the WebM and audio commands at the cut', () => {
    const video = {
      codec: 'h264',
      profile: null,
      width: 1920,
      height: 1080,
      sar: '1:1',
      dar: '16:9',
      rotation: 0 as const,
      display_width: 1920,
      display_height: 1080,
      fps: 100,
      variable_frame_rate: false,
      interlaced: false,
      pix_fmt: 'yuv420p',
      bit_rate: null,
      duration: 10,
    };
    const webm = buildWebmCommand({
      input: 'in.mkv',
      output: 'out.webm',
      facts: { duration: 10, container: 'matroska', bit_rate: null, video, audio: null },
      rung: planWebmRung(video),
      fps: 60,
      keyframeSeconds: 4,
      threads: 1,
      speed: { deadline: 'good', cpuUsed: 4 },
      maxSeconds: 12,
    });
    const vf = webm[webm.indexOf('-filter:v') + 1]!;
    assert.match(vf, /^fps=60,trim=end=12\.000,/, 'trimmed after fps, which would fill a gap up to a far-off frame');
    assert.equal(webm[webm.indexOf('-t') + 1], '12.000');
    const audio = buildAudioCommand({
      input: 'a.mkv',
      outDir: '/w',
      audioIndex: 0,
      channels: 2,
      threads: 1,
      opus: { bitrate: 96_000 },
      spectrogram: { width: 100, height: 50 },
      maxSeconds: 12,
    });
    assert.match(audio[audio.indexOf('-filter_complex') + 1]!, /^\[0:0\]atrim=end=12\.000,asplit=2/);
  });

  it('fails audio that declares 10 s and whose timestamps jump to 1800 s', async () => {
    const file = path.join(dir, 'a.mkv');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'sine=d=1:sample_rate=48000',
      '-af',
      "asetpts='if(lt(N,40),PTS,PTS+1800/TB)'",
      '-c:a',
      'pcm_s16le',
      file,
    ]);
    await fs.writeFile(file, patchMkvDuration(await fs.readFile(file), 10));
    const work = path.join(dir, 'audio-work');
    await fs.mkdir(work);
    await assert.rejects(
      packageAudio(file, work, {
        webm: true,
        hls: true,
        posters: true,
        thumbnails: false,
        hlsMinDuration: 5,
        thumbnailSize: 320,
        threads: 2,
        probeTimeoutMs: 30_000,
        ffmpegTimeoutMs: 600_000,
        maxDurationSeconds: 60,
      }),
      (e: unknown) => e instanceof PermanentJobError && e.code === 'duration-mismatch',
    );
  });

  it('keeps MP3 whose duration ffprobe estimated short (VBR without a Xing header)', async () => {
    const file = path.join(dir, 'vbr.mp3');
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'anoisesrc=d=5:a=0.5',
      '-f',
      'lavfi',
      '-i',
      'anullsrc=d=55:r=44100:cl=mono',
      '-filter_complex',
      '[0][1]concat=n=2:v=0:a=1',
      '-c:a',
      'libmp3lame',
      '-q:a',
      '0',
      '-write_xing',
      '0',
      file,
    ]);
    const work = path.join(dir, 'mp3-work');
    await fs.mkdir(work);
    const result = await packageAudio(file, work, {
      webm: true,
      hls: false,
      posters: false,
      thumbnails: false,
      hlsMinDuration: 60,
      thumbnailSize: 320,
      threads: 2,
      probeTimeoutMs: 30_000,
      ffmpegTimeoutMs: 600_000,
      maxDurationSeconds: 120,
    });
    assert.ok(result.facts.duration! < 30, `ffprobe estimates ${result.facts.duration} s`);
    assert.ok(result.decodedSeconds! > 59, 'the whole minute is decoded');
  });

  it('fails the WebM of the lying MKV quickly instead of encoding 30 minutes', async () => {
    const file = path.join(dir, 'g.mkv');
    await makeLyingMkv(file, 10);
    await assert.rejects(
      makeWebm(file, path.join(dir, 'webm', 'video.webm'), {
        threads: 2,
        probeTimeoutMs: 30_000,
        ffmpegTimeoutMs: 600_000,
        speed: { deadline: 'realtime', cpuUsed: 8 },
      }),
      (e: unknown) => e instanceof PermanentJobError && e.code === 'duration-mismatch',
    );
  });
});

describe('processing errors people read (pure)', () => {
  it('refuses an EPUB container with an external entity as unreadable-media (never retried)', () => {
    const xml = `<?xml version="1.0"?><!DOCTYPE container [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0"><rootfiles><rootfile full-path="&xxe;" media-type="application/oebps-package+xml"/></rootfiles></container>`;
    assert.throws(
      () => parseContainer(xml),
      (e: unknown) => e instanceof PermanentJobError && e.code === 'unreadable-media',
    );
  });

  it('keeps paths out of reasons, and machine faults as a plain sentence', () => {
    assert.equal(publicReason(new PermanentJobError('bad: /srv/qasar/t/u/m/original.mp4: Invalid data', 'x'), 1), 'bad: (file): Invalid data');
    const machine = publicReason(Object.assign(new Error("ENOSPC: no space left on device, open '/srv/qasar/x'"), { code: 'ENOSPC' }), 5);
    assert.doesNotMatch(machine, /srv|ENOSPC/);
    assert.match(machine, /5 times/);
  });

  it('starts tools so that they die with the process that started them', () => {
    const argv = toolArgv('ffmpeg', ['-version']);
    assert.equal(argv.wrapped, true, 'setpriv (util-linux) is expected on Linux');
    assert.deepEqual(argv.args, ['--pdeathsig', 'SIGKILL', '--', 'ffmpeg', '-version']);
  });

  it('warns once when setpriv is missing, so that an operator knows tools may outlive a killed worker', async () => {
    const script = [
      "import { warnIfToolsOutliveWorker } from './src/tools/run-tool.ts';",
      "const log = { warn: (m) => console.log('WARN ' + m) };",
      'warnIfToolsOutliveWorker(log); warnIfToolsOutliveWorker(log);',
    ].join('\n');
    const run = (PATH: string) =>
      execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: path.resolve(import.meta.dirname, '../..'),
        env: { ...process.env, PATH },
        encoding: 'utf8',
      })
        .split('\n')
        .filter((l) => l.startsWith('WARN'));
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-no-setpriv-'));
    const without = run(empty);
    await fs.rm(empty, { recursive: true });
    assert.equal(without.length, 1, 'one warning, not one per call');
    assert.match(without[0]!, /setpriv/);
    assert.deepEqual(run(process.env.PATH ?? ''), [], 'no warning when setpriv is there');
  });
});
