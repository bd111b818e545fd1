import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMpd } from '../../src/processing/video/hls-from-mpd.js';
import { expectProblem, listFiles, SAMPLES, startTestApp, waitFor, type TestApp, getMedia, mediaSettled } from '../support/harness.js';
import { makeClip } from '../support/test-clip.js';
import { SessionClient } from '../support/upload-client.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/qasar.js');

describe('worker robustness: hostile input, crashes, reprocessing', () => {
  let t: TestApp;
  let client: SessionClient;
  let hits = 0;
  let trap: http.Server;
  let trapUrl: string;

  const media = (id: string) => getMedia(t, t.tenant.userKey, id);
  const settled = (id: string, timeoutMs = 120_000) => mediaSettled(t, t.tenant.userKey, id, timeoutMs);
  async function upload(data: Buffer, filename: string): Promise<string> {
    const { completed } = await client.uploadWhole(data, { filename, chunkSize: 64 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }

  before(async () => {
    // Anything that reaches this server proves ffmpeg followed a URL it must not.
    trap = http.createServer((_req, res) => {
      hits++;
      res.end('#EXTM3U\n');
    });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
    trapUrl = `http://127.0.0.1:${(trap.address() as { port: number }).port}`;
    t = await startTestApp({}, { worker: true });
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(async () => {
    await t.close();
    trap.close();
  });

  it('fails hostile and broken files with a clear reason, reads nothing else, and goes on', async () => {
    const cases: Array<[string, Buffer, RegExp]> = [
      ['passwd.m3u8', Buffer.from('#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n'), /not a readable video/],
      ['remote.m3u8', Buffer.from(`#EXTM3U\n#EXTINF:10,\n${trapUrl}/seg.ts\n#EXT-X-ENDLIST\n`), /not a readable video/],
      ['list.ffconcat', Buffer.from(`ffconcat version 1.0\nfile '/etc/passwd'\nfile '${trapUrl}/x.mp4'\n`), /not a readable video/],
      ['random.mp4', randomBytes(200_000), /not a readable video/],
      ['truncated.mkv', await fs.readFile(path.join(SAMPLES, 'broken-truncated-h264-aac.mkv')), /truncated or damaged|could not be/],
      // MP4 magic followed by garbage: detected as video, refused by the worker's probe.
      [
        'fake.mp4',
        Buffer.concat([Buffer.from('000000186674797069736f6d0000020069736f6d69736f32', 'hex'), randomBytes(50_000)]),
        /could not be read|could not be decoded|no video/,
      ],
    ];
    const ids: Array<[string, string, RegExp]> = [];
    for (const [name, data, reason] of cases) ids.push([name, await upload(data, name), reason]);
    // A good file after the bad ones: the worker is still there.
    const good = await upload(await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), 'bikes.mp4');
    for (const [name, id, reason] of ids) {
      const m = await settled(id);
      assert.equal(m.status, 'error', `${name} ends in error`);
      assert.ok(m.error.code, `${name} has an error code`);
      assert.match(m.error.reason, reason, `${name}: ${m.error.reason}`);
    }
    assert.equal((await settled(good)).status, 'ready');
    assert.equal(hits, 0, 'no hostile file made anything fetch a URL');
    const failed = await t.ctx.queue.listFailed();
    assert.ok(
      failed.every((f) => f.attempts === 1),
      'broken input fails at once, without retries',
    );
    // Failed jobs are visible to the tenant's admin (and only to them), and can be retried.
    const listed = await t.app.inject({ url: '/api/v1/admin/jobs/failed', headers: t.auth(t.tenant.adminKey) });
    assert.equal(listed.statusCode, 200);
    const items = listed.json().items as Array<{ id: string; media_id: string; error: string }>;
    const truncatedId = ids.find(([n]) => n === 'truncated.mkv')![1];
    const item = items.find((i) => i.media_id === truncatedId);
    assert.ok(item, 'the truncated file is listed');
    assert.match(item!.error, /truncated/);
    assert.deepEqual((await t.app.inject({ url: '/api/v1/admin/jobs/failed', headers: t.auth(t.other.adminKey) })).json().items, []);
    expectProblem(await t.app.inject({ method: 'POST', url: `/api/v1/admin/jobs/${item!.id}/retry`, headers: t.auth(t.other.adminKey) }), 404, 'not-found');
    const retried = await t.app.inject({ method: 'POST', url: `/api/v1/admin/jobs/${item!.id}/retry`, headers: t.auth(t.tenant.adminKey) });
    assert.equal(retried.statusCode, 202, retried.body);
    await waitFor(
      'retried job fails again',
      async () => (await t.ctx.queue.listFailed()).some((f) => f.id === item!.id) && (await media(truncatedId)).status === 'error',
    );
    // Nothing half-written beside the originals of the failed media.
    for (const [, id] of ids) {
      const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id }));
      assert.ok(
        files.every((f) => f.startsWith('media/')),
        `${id}: ${files.join(', ')}`,
      );
    }
  });

  it('reprocesses with the current settings and swaps the outputs in', async () => {
    const id = await upload(await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), 'bikes.mp4');
    const first = await settled(id);
    assert.equal(first.status, 'ready');
    const before = first.file_metadata.processed_at;
    const res = await t.app.inject({ method: 'POST', url: `/api/v1/media/${id}/reprocess`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().status, 'queued');
    const again = await waitFor(
      'reprocessed',
      async () => {
        const m = await media(id);
        return m.status === 'ready' && m.file_metadata.processed_at !== before ? m : undefined;
      },
      120_000,
    );
    assert.deepEqual(again.file_metadata.artifacts, first.file_metadata.artifacts);
    const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id }));
    assert.ok(!files.some((f) => f.startsWith('.')), 'no scratch or swapped-out folder left');
    expectProblem(await t.app.inject({ method: 'POST', url: `/api/v1/media/${id}/reprocess`, headers: t.auth(t.other.adminKey) }), 404, 'not-found');
  });

  it('survives SIGKILL of the worker mid-transcode: a restarted worker finishes, nothing orphaned', async () => {
    // A clip long enough that the kill lands inside ffmpeg.
    const clip = path.join(t.env.tmp, 'long.mp4');
    makeClip(clip, { seconds: 12, size: '1280x720', rate: 30, toneHz: 300 });
    // This app's in-process worker must not take the job: use a separate process.
    await t.stopWorker();
    const env = { ...process.env, ...t.env.env, LOG_LEVEL: 'silent' };
    const spawnWorker = () => spawn(process.execPath, [BIN, 'worker'], { env, stdio: 'ignore', detached: true });
    const w1 = spawnWorker();
    const id = await upload(await fs.readFile(clip), 'long.mp4');
    const mediaDir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id });
    await waitFor('ffmpeg writing segments', async () => (await listFiles(mediaDir)).some((f) => f.includes('.work-') && f.endsWith('.m4s')), 60_000);
    process.kill(-w1.pid!, 'SIGKILL'); // the worker and its ffmpeg, as a container kill would
    await new Promise((r) => w1.once('exit', r));
    assert.equal((await media(id)).status, 'processing');
    const w2 = spawnWorker();
    try {
      const m = await settled(id, 180_000);
      assert.equal(m.status, 'ready', JSON.stringify(m.error));
      const files = await listFiles(mediaDir);
      assert.ok(!files.some((f) => f.startsWith('.work-') || f.startsWith('.old-')), `no orphans: ${files.filter((f) => f.startsWith('.')).join(', ')}`);
      const mpd = await fs.readFile(path.join(mediaDir, 'dash', 'manifest.mpd'), 'utf8');
      const referenced = parseMpd(mpd)
        .flatMap((r) => [r.init, ...r.segments.map((x) => x.file)])
        .map((f) => `dash/${f}`)
        .sort();
      const onDisk = files.filter((f) => f.startsWith('dash/') && f.endsWith('.m4s'));
      assert.ok(referenced.length > 6, 'a 12 s clip has several segments per rendition');
      assert.deepEqual(onDisk, referenced, 'exactly the published segments, none from the killed attempt');
    } finally {
      process.kill(-w2.pid!, 'SIGKILL');
    }
  });
});
