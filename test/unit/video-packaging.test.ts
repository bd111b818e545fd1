import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMpd } from '../../src/processing/video/hls-from-mpd.js';
import { packageVideo, type PackagedVideo } from '../../src/processing/video/package-video.js';
import { outputFps } from '../../src/processing/video/video-command.js';
import { SAMPLES } from '../support/harness.js';

const OPTIONS = {
  hls: true,
  dash: true,
  thumbnails: true,
  posters: true,
  thumbnailCount: 25,
  threads: 2,
  probeTimeoutMs: 30_000,
  ffmpegTimeoutMs: 300_000,
  maxDurationSeconds: 3600,
  maxPixels: 8192 * 4320,
};

function probeJson(file: string, entries: string): any {
  return JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-of', 'json', ...entries.split(' '), file], { encoding: 'utf8' }));
}

/** One rendition's init segment and media segments joined into a playable fragmented MP4. */
async function joinRendition(dashDir: string, init: string, segments: string[], out: string): Promise<string> {
  const parts = [init, ...segments].map((f) => fs.readFile(path.join(dashDir, f)));
  await fs.writeFile(out, Buffer.concat(await Promise.all(parts)));
  return out;
}

interface Expectation {
  file: string;
  rungs: string[];
  dar: string;
  audio: boolean;
}

const CASES: Expectation[] = [
  { file: 'h264-1920x1080-aac-deer.mp4', rungs: ['1920x1080', '1280x720', '854x480'], dar: '16:9', audio: true },
  { file: 'phone-iphone4s-portrait-rot90-h264-aac.mov', rungs: ['320x568'], dar: '40:71', audio: true },
  { file: 'phone-h263-176x144-sar12x11-amr.3gp', rungs: ['192x144'], dar: '4:3', audio: true },
  { file: 'h264-640x272-noaudio-bikes.mp4', rungs: ['640x272'], dar: '40:17', audio: false },
  { file: 'iphone6s-livephoto-vfr-1440x1080-pcm.mov', rungs: ['1440x1080', '960x720', '640x480'], dar: '4:3', audio: true },
  { file: 'hevc-640x360-aac-elephantsdream.mp4', rungs: ['640x360'], dar: '16:9', audio: true },
  { file: 'vp8-1920x1080-noaudio-screenrec.webm', rungs: ['1920x1080', '1280x720', '854x480'], dar: '16:9', audio: false },
  { file: 'vp9-alpha-1280x720-noaudio.webm', rungs: ['1280x720', '854x480'], dar: '16:9', audio: false },
  { file: 'avchd-h264-1920x1080i-ac3.mts', rungs: ['1920x1080', '1280x720', '854x480'], dar: '16:9', audio: true },
];

describe('video packaging (real ffmpeg on the shared samples)', () => {
  let tmp: string;
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-video-'));
  });
  after(() => fs.rm(tmp, { recursive: true, force: true }));

  for (const c of CASES) {
    it(`${c.file}: rungs ${c.rungs.join(', ')}`, async () => {
      const work = path.join(tmp, c.file);
      const result: PackagedVideo = await packageVideo(path.join(SAMPLES, c.file), work, OPTIONS);
      assert.deepEqual(
        result.rungs.map((r) => `${r.width}x${r.height}`),
        c.rungs,
      );

      const dashDir = path.join(work, 'dash');
      const reps = parseMpd(await fs.readFile(path.join(dashDir, 'manifest.mpd'), 'utf8'));
      const videoReps = reps.filter((r) => r.contentType === 'video');
      assert.equal(videoReps.length, c.rungs.length);
      assert.equal(
        reps.some((r) => r.contentType === 'audio'),
        c.audio,
        'audio present exactly when the source has it',
      );

      // Every rung: H.264 High at its size and the source's display aspect ratio.
      const keyframeTimes: string[] = [];
      for (const rep of videoReps) {
        const joined = await joinRendition(
          dashDir,
          rep.init,
          rep.segments.map((s) => s.file),
          path.join(work, `check-${rep.id}.mp4`),
        );
        const s = probeJson(joined, '-show_entries stream=codec_name,profile,width,height,display_aspect_ratio -select_streams v:0').streams[0];
        assert.equal(s.codec_name, 'h264');
        assert.equal(s.profile, 'High');
        assert.equal(`${s.width}x${s.height}`, `${rep.width}x${rep.height}`);
        assert.equal(s.display_aspect_ratio, c.dar);
        const packets = probeJson(joined, '-show_entries packet=pts_time,flags -select_streams v:0').packets as Array<{ pts_time: string; flags: string }>;
        keyframeTimes.push(
          packets
            .filter((p) => p.flags.startsWith('K'))
            .map((p) => Number(p.pts_time).toFixed(3))
            .sort()
            .join(','),
        );
        await fs.rm(joined);
      }
      assert.equal(new Set(keyframeTimes).size, 1, `keyframes identical across rungs: ${keyframeTimes.join(' | ')}`);
      const keyframes = keyframeTimes[0]!.split(',').map(Number);
      for (let i = 1; i < keyframes.length; i++) assert.ok(keyframes[i]! - keyframes[i - 1]! <= 2.1, 'a keyframe at least every 2 s');

      // HLS points at exactly the DASH segment files: one set, stored once.
      const master = await fs.readFile(path.join(work, 'hls', 'master.m3u8'), 'utf8');
      assert.match(master, /^#EXTM3U/);
      const variants = master.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF:'));
      assert.equal(variants.length, c.rungs.length);
      for (const v of variants) {
        for (const attr of ['BANDWIDTH=', 'AVERAGE-BANDWIDTH=', 'RESOLUTION=', 'CODECS="avc1.', 'FRAME-RATE=']) assert.ok(v.includes(attr), `${attr} in ${v}`);
        assert.equal(v.includes('AUDIO="audio"'), c.audio);
      }
      const referenced = new Set<string>();
      for (const name of (await fs.readdir(path.join(work, 'hls'))).filter((n) => n !== 'master.m3u8')) {
        const text = await fs.readFile(path.join(work, 'hls', name), 'utf8');
        assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD/);
        assert.match(text, /#EXT-X-ENDLIST/);
        for (const line of text.split('\n')) {
          const uri = line.startsWith('#EXT-X-MAP:URI="') ? line.slice(16, -1) : line.startsWith('#') || !line ? undefined : line;
          if (uri) referenced.add(path.basename(uri));
        }
      }
      const segmentFiles = (await fs.readdir(dashDir)).filter((n) => n.endsWith('.m4s'));
      const dashFiles = new Set(reps.flatMap((r) => [r.init, ...r.segments.map((s) => s.file)]));
      assert.deepEqual([...referenced].sort(), [...dashFiles].sort(), 'HLS and DASH reference the same files');
      assert.deepEqual([...dashFiles].sort(), segmentFiles.sort(), 'no segment is stored twice or left unreferenced');

      // Thumbnails, sprite and its track, poster.
      const video = result.facts.video!;
      const frames = Math.floor((result.facts.duration ?? 0) * outputFps(video));
      assert.equal(result.files.thumbnails.length, Math.min(25, frames), 'up to 25 evenly spaced thumbnails');
      for (const t of result.files.thumbnails) {
        const thumb = probeJson(path.join(work, t), '-show_entries stream=width,height').streams[0];
        assert.equal(Math.max(thumb.width, thumb.height), Math.min(320, Math.max(video.display_width, video.display_height)));
      }
      const sprite = probeJson(path.join(work, result.files.sprite!), '-show_entries stream=width,height').streams[0];
      const vtt = await fs.readFile(path.join(work, result.files.spriteVtt!), 'utf8');
      assert.match(vtt, /^WEBVTT\n/);
      const cells = [...vtt.matchAll(/sprite\.jpg#xywh=(\d+),(\d+),(\d+),(\d+)/g)].map((m) => m.slice(1).map(Number) as [number, number, number, number]);
      assert.equal(cells.length, Math.min(100, frames), 'one cue per sprite cell');
      for (const [x, y, w, h] of cells)
        assert.ok(x + w <= sprite.width && y + h <= sprite.height, `cell ${x},${y},${w},${h} inside ${sprite.width}x${sprite.height}`);
      for (const f of [result.files.posterJpeg!, result.files.posterWebp!]) {
        const p = probeJson(path.join(work, f), '-show_entries stream=codec_name,width,height').streams[0];
        assert.equal(`${p.width}x${p.height}`, c.rungs[0], `${f} decodes at the top rung's size`);
      }
    });
  }

  it('refuses a file with no video stream and a truncated file, permanently', async () => {
    await assert.rejects(
      packageVideo(path.join(SAMPLES, 'mp3-32khz-stereo-10s.mp3'), path.join(tmp, 'mp3'), OPTIONS),
      (e: any) => e.code === 'no-video-stream',
    );
    await assert.rejects(
      packageVideo(path.join(SAMPLES, 'broken-truncated-h264-aac.mkv'), path.join(tmp, 'trunc'), OPTIONS),
      (e: any) => e.name === 'PermanentJobError',
    );
    await assert.rejects(packageVideo(path.join(SAMPLES, 'broken-zero-bytes.mp3'), path.join(tmp, 'zero'), OPTIONS), (e: any) => e.code === 'unreadable-media');
  });

  it('enforces the duration and pixel limits', async () => {
    const file = path.join(SAMPLES, 'h264-1920x1080-aac-deer.mp4');
    await assert.rejects(packageVideo(file, path.join(tmp, 'long'), { ...OPTIONS, maxDurationSeconds: 0.5 }), (e: any) => e.code === 'too-long');
    await assert.rejects(packageVideo(file, path.join(tmp, 'big'), { ...OPTIONS, maxPixels: 1280 * 720 }), (e: any) => e.code === 'too-large');
  });
});
