import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectProblem, SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const API = '/api/v1';

/** The URIs a playlist names: its non-comment lines and the URI attributes of its tags. */
function playlistUris(text: string): string[] {
  const lines = text.split('\n').map((l) => l.trim());
  return [...lines.filter((l) => l && !l.startsWith('#')), ...lines.flatMap((l) => [...l.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]!))];
}

describe('playback of media held or rejected by moderation', () => {
  let t: TestApp;
  let bobKey: string;
  let mediaId: string;

  const api = (url: string, key: string) => t.app.inject({ url: `${API}${url}`, headers: t.auth(key) });
  const play = (url: string) => t.app.inject({ url: new URL(url, 'http://x').pathname });

  before(async () => {
    t = await startTestApp({}, { worker: true });
    bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    const data = await fs.readFile(path.join(SAMPLES, 'hevc-640x360-aac-elephantsdream.mp4'));
    const { completed } = await new SessionClient(t.app, t.tenant.userKey).uploadWhole(data, { filename: 'dream.mp4', chunkSize: 64 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    mediaId = completed.json().id;
    const status = await waitFor(
      'video processed',
      async () => {
        const s = (await api(`/media/${mediaId}`, t.tenant.userKey)).json().status;
        return ['ready', 'error'].includes(s) && s;
      },
      120_000,
    );
    assert.equal(status, 'ready');
  });
  after(() => t.close());

  it('caches playback answers privately and never longer than the token lives', async () => {
    const pkg = (await api(`/media/${mediaId}/package`, t.tenant.userKey)).json();
    const left = (Date.parse(pkg.expires_at) - Date.now()) / 1000;
    for (const url of [pkg.hls, pkg.poster.webp, pkg.thumbnails[0]]) {
      const res = await play(url);
      assert.equal(res.statusCode, 200, url);
      const cc = String(res.headers['cache-control']);
      assert.doesNotMatch(cc, /public|immutable/, url);
      const m = /^private, max-age=(\d+)$/.exec(cc);
      assert.ok(m && Number(m[1]) <= left + 1, `${url}: ${cc} (token valid ${left} s more)`);
    }
  });

  it('stops playing URLs handed out before the media was held, and hands out none while it is', async () => {
    const shared = (await api(`/media/${mediaId}/package`, bobKey)).json();
    const master = await play(shared.hls);
    assert.equal(master.statusCode, 200);
    const variant = new URL(playlistUris(master.body).find((u) => u.endsWith('.m3u8') && !u.startsWith('subs_'))!, shared.hls).href;
    const segment = new URL(playlistUris((await play(variant)).body).find((u) => u.endsWith('.m4s'))!, variant).href;
    const before: string[] = [shared.hls, shared.dash, shared.webm, shared.poster.webp, shared.thumbnails[0], shared.sprite?.image, variant, segment].filter(
      Boolean,
    );
    assert.ok(before.length >= 6, JSON.stringify(shared));
    for (const url of before) assert.equal((await play(url)).statusCode, 200, url);

    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, mediaId, [{ name: 'nudity', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    assert.equal((await api(`/media/${mediaId}/moderation`, t.tenant.adminKey)).json().state, 'held');

    for (const url of before) expectProblem(await play(url), 403, 'moderation-hidden');
    expectProblem(await api(`/media/${mediaId}/package`, bobKey), 403, 'moderation-hidden');
    // The owner and admins get the package without a playback URL, so nothing they can pass on.
    for (const key of [t.tenant.userKey, t.tenant.adminKey]) {
      const pkg = await api(`/media/${mediaId}/package`, key);
      assert.equal(pkg.statusCode, 200, pkg.body);
      const p = pkg.json();
      assert.deepEqual(
        { hls: p.hls, dash: p.dash, webm: p.webm, poster: p.poster, thumbnails: p.thumbnails, sprite: p.sprite, captions: p.captions },
        { hls: null, dash: null, webm: null, poster: { jpeg: null, webp: null }, thumbnails: [], sprite: null, captions: [] },
      );
    }
    // Nor do the owner's search results.
    const found = (await api(`/search?q=dream`, t.tenant.userKey)).json().items.find((i: { id: string }) => i.id === mediaId);
    assert.ok(found, 'the owner still finds her held media');
    assert.deepEqual([found.playback.hls, found.playback.dash, found.playback.webm, found.poster.webp], [null, null, null, null]);

    // Rejected stays so.
    const decided = await t.app.inject({
      method: 'POST',
      url: `${API}/media/${mediaId}/moderation`,
      headers: t.auth(t.tenant.adminKey),
      payload: { decision: 'reject' },
    });
    assert.equal(decided.statusCode, 200, decided.body);
    for (const url of before) expectProblem(await play(url), 403, 'moderation-hidden');
    assert.equal((await api(`/media/${mediaId}/package`, t.tenant.userKey)).json().hls, null);
  });

  it('plays a held media to its owner and admins through the API with their key: HLS and DASH', async () => {
    const m = (await api(`/media/${mediaId}`, t.tenant.userKey)).json();
    assert.equal((await api(`/media/${mediaId}/moderation`, t.tenant.adminKey)).json().state, 'rejected');
    for (const key of [t.tenant.userKey, t.tenant.adminKey]) {
      const masterUrl = new URL(m.file_metadata.urls.hls, 'http://x');
      const master = await api(masterUrl.pathname.slice(API.length), key);
      assert.equal(master.statusCode, 200);
      assert.equal(master.headers['content-type'], 'application/vnd.apple.mpegurl');
      let segments = 0;
      // Every URI the master names, and every one its media playlists name, resolves under the API.
      for (const uri of playlistUris(master.body)) {
        const url = new URL(uri, masterUrl);
        const res = await api(url.pathname.slice(API.length), key);
        assert.equal(res.statusCode, 200, url.pathname);
        for (const inner of playlistUris(res.body)) {
          const innerUrl = new URL(inner, url);
          const seg = await t.app.inject({ method: 'HEAD', url: innerUrl.pathname, headers: t.auth(key) });
          assert.equal(seg.statusCode, 200, innerUrl.pathname);
          segments++;
        }
      }
      assert.ok(segments > 0);
      const mpdUrl = new URL(m.file_metadata.urls.dash, 'http://x');
      const mpd = await api(mpdUrl.pathname.slice(API.length), key);
      assert.equal(mpd.statusCode, 200);
      const init = /initialization="([^"]+)"/.exec(mpd.body)![1]!.replace('$RepresentationID$', '0');
      assert.equal((await t.app.inject({ method: 'HEAD', url: new URL(init, mpdUrl).pathname, headers: t.auth(key) })).statusCode, 200);
    }
    expectProblem(await api(new URL(m.file_metadata.urls.hls, 'http://x').pathname.slice(API.length), bobKey), 403, 'moderation-hidden');
  });
});
