import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectProblem, listFiles, SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';
import { runVideoStep } from '../../src/processing/steps/video-step.js';

describe('video pipeline through the API', () => {
  let t: TestApp;
  let client: SessionClient;
  let mediaId: string;

  async function media(id: string) {
    return (await t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) })).json();
  }

  before(async () => {
    t = await startTestApp({}, { worker: true });
    client = new SessionClient(t.app, t.tenant.userKey);
    const data = await fs.readFile(path.join(SAMPLES, 'h264-1920x1080-aac-deer.mp4'));
    const { completed } = await client.uploadWhole(data, { filename: 'deer.mp4', chunkSize: 128 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    mediaId = completed.json().id;
    await waitFor('video ready', async () => ['ready', 'error'].includes((await media(mediaId)).status), 120_000);
  });
  after(() => t.close());

  it('ends ready with the probe facts and every artifact in file_metadata', async () => {
    const m = await media(mediaId);
    assert.equal(m.status, 'ready', JSON.stringify(m.error));
    const fm = m.file_metadata;
    assert.equal(fm.width, 1920);
    assert.equal(fm.height, 1080);
    assert.equal(fm.dar, '16:9');
    assert.equal(fm.sar, '1:1');
    assert.ok(Math.abs(fm.duration - 0.98) < 0.05);
    assert.deepEqual(
      fm.renditions.map((r: { height: number }) => r.height),
      [1080, 720, 480],
    );
    assert.equal(fm.artifacts.hls, 'hls/master.m3u8');
    assert.equal(fm.artifacts.dash, 'dash/manifest.mpd');
    assert.equal(fm.urls.hls, `/api/v1/media/${mediaId}/files/hls/master.m3u8`);
    const files = await listFiles(t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId }));
    assert.ok(files.includes('hls/master.m3u8') && files.includes('dash/manifest.mpd') && files.includes('posters/poster.webp'));
    assert.ok(!files.some((f) => f.startsWith('.work-') || f.startsWith('.old-')), 'no scratch folder left');
  });

  it('serves the package through signed playback URLs with the right types, ranges and caching', async () => {
    const pkg = await t.app.inject({ url: `/api/v1/media/${mediaId}/package`, headers: t.auth(t.tenant.userKey) });
    assert.equal(pkg.statusCode, 200, pkg.body);
    const p = pkg.json();
    assert.match(p.hls, /^http:\/\/localhost(:\d+)?\/play\/[^/]+\/hls\/master\.m3u8$/);
    assert.equal(p.thumbnails.length, Math.min(25, Math.floor(0.98 * 23.976)));
    const local = (url: string) => new URL(url).pathname;

    const master = await t.app.inject({ url: local(p.hls) });
    assert.equal(master.statusCode, 200);
    assert.equal(master.headers['content-type'], 'application/vnd.apple.mpegurl');
    assert.match(String(master.headers['cache-control']), /max-age=30/);
    assert.equal(master.headers['access-control-allow-origin'], '*');
    const variant = master.body.split('\n').find((l) => l.endsWith('.m3u8') && !l.startsWith('#'))!;
    // Relative URIs resolve under the same token.
    const variantUrl = new URL(variant, p.hls);
    const media = await t.app.inject({ url: variantUrl.pathname });
    assert.equal(media.statusCode, 200);
    const segment = media.body.split('\n').find((l) => l.endsWith('.m4s') && !l.startsWith('#'))!;
    const segUrl = new URL(segment, variantUrl);
    assert.match(segUrl.pathname, /\/dash\/seg-/);
    const whole = await t.app.inject({ url: segUrl.pathname });
    assert.equal(whole.statusCode, 200);
    assert.equal(whole.headers['content-type'], 'video/mp4');
    assert.match(String(whole.headers['cache-control']), /^private, max-age=\d+$/, 'cached by the player, no longer than the token lives');
    assert.ok(whole.headers.etag);
    const ranged = await t.app.inject({ url: segUrl.pathname, headers: { range: 'bytes=0-99' } });
    assert.equal(ranged.statusCode, 206);
    assert.equal(ranged.rawPayload.length, 100);
    assert.deepEqual(ranged.rawPayload, whole.rawPayload.subarray(0, 100));
    const notModified = await t.app.inject({ url: segUrl.pathname, headers: { 'if-none-match': String(whole.headers.etag) } });
    assert.equal(notModified.statusCode, 304);

    const mpd = await t.app.inject({ url: local(p.dash) });
    assert.equal(mpd.headers['content-type'], 'application/dash+xml');
    const vtt = await t.app.inject({ url: local(p.sprite.vtt) });
    assert.match(String(vtt.headers['content-type']), /^text\/vtt/);
    const poster = await t.app.inject({ url: local(p.poster.webp) });
    assert.equal(poster.headers['content-type'], 'image/webp');
  });

  it('refuses forged, foreign, expired and dead tokens', async () => {
    const p = (await t.app.inject({ url: `/api/v1/media/${mediaId}/package`, headers: t.auth(t.tenant.userKey) })).json();
    const url = new URL(p.hls).pathname;
    const token = url.split('/')[2]!;
    const [id, exp, sig] = token.split('.');
    // The first character: all six of its bits are signature (the last one's low bits are padding, which decoders ignore).
    const flipped = (sig!.startsWith('A') ? 'B' : 'A') + sig!.slice(1);
    expectProblem(await t.app.inject({ url: url.replace(token, `${id}.${exp}.${flipped}`) }), 403, 'forbidden');
    expectProblem(await t.app.inject({ url: url.replace(token, `${id}.${(Number.parseInt(exp!, 36) + 3600).toString(36)}.${sig}`) }), 403, 'forbidden');
    expectProblem(await t.app.inject({ url: url.replace(token, 'garbage') }), 403, 'forbidden');
    // A token for one media does not open another.
    const other = await client.uploadWhole(Buffer.from('plain text file\n'.repeat(10)), { filename: 'n.txt' });
    const otherId = other.completed.json().id;
    expectProblem(await t.app.inject({ url: url.replace(id!, otherId) }), 403, 'forbidden');
    // Expired: sign one in the past.
    const row = await t.ctx.database.db.selectFrom('mediaassets').select('playback_key').where('id', '=', mediaId).executeTakeFirstOrThrow();
    const tokens = (t.ctx.delivery as unknown as { tokens: { sign(a: string, b: string, c: number): string } }).tokens;
    const expired = tokens.sign(mediaId, row.playback_key!, Date.now() - 1000);
    expectProblem(await t.app.inject({ url: url.replace(token, expired) }), 403, 'forbidden');
    // Path tricks stay inside the media's playable folders.
    for (const bad of ['media/original.mp4', '../../../etc/passwd', 'hls/../../x']) {
      const res = await t.app.inject({ url: `/play/${token}/${bad}` });
      assert.ok([403, 404].includes(res.statusCode), `${bad}: ${res.statusCode}`);
    }
    // The package of another tenant's media is not found.
    expectProblem(await t.app.inject({ url: `/api/v1/media/${mediaId}/package`, headers: t.auth(t.other.adminKey) }), 404, 'not-found');
  });

  it('serves files to key holders under the API, the original only to its owner or an admin', async () => {
    const m = await media(mediaId);
    const res = await t.app.inject({ url: m.file_metadata.urls.hls, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['cache-control']), /^private/);
    const original = `/api/v1/media/${mediaId}/files/${m.file_metadata.original.path.split('/').slice(3).join('/')}`;
    assert.equal((await t.app.inject({ url: original, headers: t.auth(t.tenant.userKey) })).statusCode, 200);
    const bob = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    assert.equal((await t.app.inject({ url: original, headers: t.auth(bob) })).statusCode, 404);
    assert.equal((await t.app.inject({ url: m.file_metadata.urls.hls, headers: t.auth(bob) })).statusCode, 200);
    expectProblem(await t.app.inject({ url: m.file_metadata.urls.hls, headers: t.auth(t.other.userKey) }), 404, 'not-found');
  });

  it('processing again with thumbnails and posters off drops those folders and keeps the ladder', async () => {
    const row = await t.ctx.database.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'kind', 'status'])
      .where('id', '=', mediaId)
      .executeTakeFirstOrThrow();
    const dir = t.ctx.layout.mediaDir({ tenantId: row.tenant_id, userId: row.user_id, mediaId });
    const folders = async () => [...new Set((await listFiles(dir)).map((f) => f.split('/')[0]))].sort();
    assert.deepEqual(await folders(), ['dash', 'hls', 'media', 'posters', 'thumbnails']);
    await runVideoStep(
      {
        db: t.ctx.database.db,
        store: t.ctx.store,
        layout: t.ctx.layout,
        changes: t.ctx.changes,
        settings: { ...t.ctx.settings, enableThumbnails: false, enablePosters: false },
      },
      row,
      t.ctx.worker.pipeline.step('video')!.publishes,
    );
    assert.deepEqual(await folders(), ['dash', 'hls', 'media']);
    const m = await media(mediaId);
    assert.equal(m.file_metadata.artifacts.thumbnails, undefined);
    assert.equal(m.file_metadata.artifacts.poster, undefined);
    const master = await t.app.inject({ url: `/api/v1/media/${mediaId}/files/${m.file_metadata.artifacts.hls}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(master.statusCode, 200);
    assert.match(master.body, /#EXT-X-STREAM-INF/);
  });

  it('kills playback URLs when the media is deleted', async () => {
    const p = (await t.app.inject({ url: `/api/v1/media/${mediaId}/package`, headers: t.auth(t.tenant.userKey) })).json();
    assert.equal((await t.app.inject({ url: new URL(p.hls).pathname })).statusCode, 200);
    assert.equal((await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${mediaId}`, headers: t.auth(t.tenant.userKey) })).statusCode, 204);
    expectProblem(await t.app.inject({ url: new URL(p.hls).pathname }), 403, 'forbidden');
  });
});
