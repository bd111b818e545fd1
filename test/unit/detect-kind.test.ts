import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectKind } from '../../src/media/detect-kind.js';
import { SAMPLES } from '../support/harness.js';

const PROBE_TIMEOUT_MS = 30_000;

function ffmpeg(...args: string[]): void {
  execFileSync('ffmpeg', ['-v', 'error', '-nostdin', ...args]);
}

describe('detectKind on containers that hold video or only sound (real ffprobe)', () => {
  let tmp: string;
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-detect-'));
  });
  after(() => fs.rm(tmp, { recursive: true, force: true }));

  // Names without extensions: the kind comes from the bytes only.
  it('an MP4 holding only AAC is audio, audio/mp4', async () => {
    const file = path.join(tmp, 'voice-memo');
    ffmpeg('-f', 'lavfi', '-i', 'sine=frequency=440:duration=2', '-c:a', 'aac', '-f', 'mp4', '-y', file);
    assert.deepEqual(await detectKind(file, PROBE_TIMEOUT_MS), { kind: 'audio', mime: 'audio/mp4', ext: 'mp4', via: 'ffprobe' });
  });

  it('a WebM holding only Opus is audio, audio/webm', async () => {
    const file = path.join(tmp, 'podcast');
    ffmpeg('-f', 'lavfi', '-i', 'sine=frequency=440:duration=2', '-c:a', 'libopus', '-f', 'webm', '-y', file);
    assert.deepEqual(await detectKind(file, PROBE_TIMEOUT_MS), { kind: 'audio', mime: 'audio/webm', ext: 'webm', via: 'ffprobe' });
  });

  it('an MP4 of AAC with cover art (an attached picture, not a video) is audio', async () => {
    const file = path.join(tmp, 'song-with-cover');
    ffmpeg(
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:duration=2',
      '-f',
      'lavfi',
      '-i',
      'color=c=red:s=64x64:d=1',
      '-map',
      '0:a',
      '-map',
      '1:v',
      '-frames:v',
      '1',
      '-c:a',
      'aac',
      '-c:v',
      'mjpeg',
      '-disposition:v:0',
      'attached_pic',
      '-f',
      'mp4',
      '-y',
      file,
    );
    const probed = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-of', 'json', '-show_streams', file], { encoding: 'utf8' }));
    assert.ok(
      probed.streams.some((s: any) => s.codec_type === 'video' && s.disposition.attached_pic === 1),
      'the picture is there, as an attached picture',
    );
    const detected = await detectKind(file, PROBE_TIMEOUT_MS);
    assert.equal(detected.kind, 'audio');
    assert.match(detected.mime, /^audio\//);
  });

  it('the same containers with a picture stream stay video', async () => {
    assert.deepEqual(await detectKind(path.join(SAMPLES, 'h264-1920x1080-aac-deer.mp4'), PROBE_TIMEOUT_MS), {
      kind: 'video',
      mime: 'video/mp4',
      ext: 'mp4',
      via: 'ffprobe',
    });
    assert.deepEqual(await detectKind(path.join(SAMPLES, 'vp8-1920x1080-noaudio-screenrec.webm'), PROBE_TIMEOUT_MS), {
      kind: 'video',
      mime: 'video/webm',
      ext: 'webm',
      via: 'ffprobe',
    });
  });
});
