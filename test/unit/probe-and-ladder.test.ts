import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ffprobe } from '../../src/tools/ffprobe.js';
import { planLadder } from '../../src/processing/ladder.js';
import { mediaFacts } from '../../src/processing/probe-facts.js';
import { SAMPLES } from '../support/harness.js';

async function facts(file: string) {
  return mediaFacts(await ffprobe(path.join(SAMPLES, file), 30_000));
}

describe('probe facts (real ffprobe on the shared samples)', () => {
  it('landscape 1080p with audio', async () => {
    const f = await facts('h264-1920x1080-aac-deer.mp4');
    assert.equal(f.video?.width, 1920);
    assert.equal(f.video?.height, 1080);
    assert.equal(f.video?.rotation, 0);
    assert.equal(f.video?.dar, '16:9');
    assert.equal(f.video?.sar, '1:1');
    assert.ok(Math.abs((f.video?.fps ?? 0) - 23.976) < 0.01);
    assert.ok(f.duration && Math.abs(f.duration - 0.98) < 0.05);
    assert.equal(f.audio?.codec, 'aac');
    assert.equal(f.audio?.channels, 2);
  });

  it('rotated portrait phone video: displayed 320x568', async () => {
    const f = await facts('phone-iphone4s-portrait-rot90-h264-aac.mov');
    assert.equal(f.video?.width, 568);
    assert.equal(f.video?.height, 320);
    assert.equal(f.video?.rotation, 90);
    assert.equal(f.video?.display_width, 320);
    assert.equal(f.video?.display_height, 568);
  });

  it('anamorphic SAR 12:11: displayed 4:3', async () => {
    const f = await facts('phone-h263-176x144-sar12x11-amr.3gp');
    assert.equal(f.video?.sar, '12:11');
    assert.equal(f.video?.dar, '4:3');
    assert.equal(f.video?.display_width, 192);
    assert.equal(f.video?.display_height, 144);
  });

  it('variable frame rate and interlacing are recognised', async () => {
    assert.equal((await facts('iphone6s-livephoto-vfr-1440x1080-pcm.mov')).video?.variable_frame_rate, true);
    const avchd = await facts('avchd-h264-1920x1080i-ac3.mts');
    assert.equal(avchd.video?.interlaced, true);
    assert.equal(avchd.video?.variable_frame_rate, false);
    assert.equal((await facts('h264-1920x1080-aac-deer.mp4')).video?.variable_frame_rate, false);
  });

  it('no video in audio files, cover art is not video', async () => {
    const f = await facts('mp3-id3v2-cover-art-1s.mp3');
    assert.equal(f.video, null);
    assert.equal(f.audio?.codec, 'mp3');
  });
});

describe('ladder (pure)', () => {
  const rungs = (w: number, h: number) => planLadder({ display_width: w, display_height: h }).map((r) => `${r.width}x${r.height}`);

  it('gives a 1080p landscape source all three rungs', () => {
    assert.deepEqual(rungs(1920, 1080), ['1920x1080', '1280x720', '854x480']);
  });
  it('orients rungs by the short side for portrait video', () => {
    assert.deepEqual(rungs(1080, 1920), ['1080x1920', '720x1280', '480x854']);
  });
  it('never upscales', () => {
    assert.deepEqual(rungs(1280, 720), ['1280x720', '854x480']);
    assert.deepEqual(rungs(1440, 1080), ['1440x1080', '960x720', '640x480']);
    assert.deepEqual(rungs(3840, 2160), ['1920x1080', '1280x720', '854x480']);
  });
  it('gives a source below 480p one rung at its own size, even', () => {
    assert.deepEqual(rungs(640, 272), ['640x272']);
    assert.deepEqual(rungs(192, 144), ['192x144']);
    assert.deepEqual(rungs(320, 568), ['320x568']);
    assert.deepEqual(rungs(175, 143), ['176x144']);
  });
  it('keeps the display aspect ratio within rounding', () => {
    for (const [w, h] of [
      [1920, 1080],
      [1080, 1920],
      [1440, 1080],
      [2048, 858],
      [720, 576],
    ] as const) {
      for (const r of planLadder({ display_width: w, display_height: h })) {
        assert.equal(r.width % 2, 0);
        assert.equal(r.height % 2, 0);
        assert.ok(Math.abs(r.width / r.height - w / h) < 0.01, `${r.width}x${r.height} vs ${w}x${h}`);
      }
    }
  });
  it('caps rates per rung, lower for smaller rungs', () => {
    const l = planLadder({ display_width: 1920, display_height: 1080 });
    assert.deepEqual(
      l.map((r) => r.maxrate),
      [5_000_000, 3_000_000, 1_200_000],
    );
    assert.ok(l.every((r) => r.bufsize === 2 * r.maxrate));
  });
});
