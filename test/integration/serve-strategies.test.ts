import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LocalStore } from '../../src/storage/local-store.js';
import type { MediaStore, ServeOptions, ServeStrategy, StoredObject } from '../../src/storage/store.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { uploadWithPoster } from '../support/media-seed.js';

const API = '/api/v1';
const POSTER = 'ten bytes!';

/**
 * A local store that answers as an object store would: a stream through the app, or a redirect
 * to a signed URL where one is allowed. Everything else is the local store's.
 */
function objectStoreLike(inner: LocalStore, mode: 'stream' | 'redirect'): MediaStore {
  const serve = async (object: StoredObject, opts: ServeOptions): Promise<ServeStrategy> => {
    if (mode === 'redirect' && opts.redirect) {
      return { kind: 'redirect', url: `https://objects.example/${object.key}?expires=${opts.expiresAt}&type=${encodeURIComponent(opts.contentType)}` };
    }
    return { kind: 'stream', object, open: (range) => inner.read(object.key, range) };
  };
  return new Proxy(inner, { get: (target, prop, receiver) => (prop === 'serve' ? serve : Reflect.get(target, prop, receiver)) });
}

/** A media with a poster and a playlist, and its playback token. */
async function seeded(t: TestApp): Promise<{ id: string; token: string }> {
  const media = await uploadWithPoster(t, t.tenant.userKey, POSTER);
  await t.ctx.store.put(`${t.tenant.id}/alice/${media.id}/hls/master.m3u8`, '#EXTM3U\n#EXT-X-VERSION:7\n');
  const pkg = await t.app.inject({ url: `${API}/media/${media.id}/package`, headers: t.auth(t.tenant.userKey) });
  assert.equal(pkg.statusCode, 200, pkg.body);
  return { id: media.id, token: new URL(pkg.json().poster.jpeg).pathname.split('/')[2]! };
}

describe('serving stored files that the store streams', () => {
  let t: TestApp;
  let m: { id: string; token: string };

  before(async () => {
    t = await startTestApp({}, { store: (layout) => objectStoreLike(new LocalStore(layout.root), 'stream') });
    m = await seeded(t);
  });
  after(() => t.close());

  const routes = () => [
    { route: 'playback', url: `/play/${m.token}/posters/poster.jpg`, headers: {} as Record<string, string> },
    { route: 'api', url: `${API}/media/${m.id}/files/posters/poster.jpg`, headers: t.auth(t.tenant.userKey) },
  ];

  it('sends the whole file with our type, caching and validators', async () => {
    for (const { route, url, headers } of routes()) {
      const res = await t.app.inject({ url, headers });
      assert.equal(res.statusCode, 200, route);
      assert.equal(res.body, POSTER, route);
      assert.equal(res.headers['content-type'], 'image/jpeg', route);
      assert.equal(res.headers['content-length'], String(POSTER.length), route);
      assert.equal(res.headers['accept-ranges'], 'bytes', route);
      assert.match(String(res.headers['cache-control']), /^private, max-age=\d+/, route);
      assert.ok(res.headers.etag && res.headers['last-modified'], route);
      const again = await t.app.inject({ url, headers: { ...headers, 'if-none-match': String(res.headers.etag) } });
      assert.equal(again.statusCode, 304, route);
      assert.equal(again.body, '', route);
      const head = await t.app.inject({ method: 'HEAD', url, headers });
      assert.equal(head.statusCode, 200, route);
      assert.equal(head.body, '', route);
    }
  });

  it('answers ranges with 206, and an unsatisfiable one with 416 and the size, as for local files', async () => {
    for (const { route, url, headers } of routes()) {
      const part = await t.app.inject({ url, headers: { ...headers, range: 'bytes=2-4' } });
      assert.equal(part.statusCode, 206, route);
      assert.equal(part.body, POSTER.slice(2, 5), route);
      assert.equal(part.headers['content-range'], `bytes 2-4/${POSTER.length}`, route);
      const tail = await t.app.inject({ url, headers: { ...headers, range: 'bytes=-3' } });
      assert.equal(tail.statusCode, 206, route);
      assert.equal(tail.body, POSTER.slice(-3), route);
      const beyond = await t.app.inject({ url, headers: { ...headers, range: 'bytes=5000-6000' } });
      expectProblem(beyond, 416, 'range-not-satisfiable');
      assert.equal(beyond.headers['content-range'], `bytes */${POSTER.length}`, route);
      const several = await t.app.inject({ url, headers: { ...headers, range: 'bytes=0-1,5-6' } });
      assert.equal(several.statusCode, 200, `${route}: disjoint ranges get the whole file`);
      assert.equal(several.body, POSTER, route);
      const stale = await t.app.inject({ url, headers: { ...headers, range: 'bytes=2-4', 'if-range': '"another-version"' } });
      assert.equal(stale.statusCode, 200, `${route}: a stale If-Range gets the whole file`);
    }
  });

  it('still finds nothing outside what the caller may read', async () => {
    expectProblem(await t.app.inject({ url: `/play/${m.token}/media/original.bin` }), 404, 'not-found');
    expectProblem(await t.app.inject({ url: `/play/${m.token}/posters/missing.jpg` }), 404, 'not-found');
  });
});

describe('serving stored files that the store redirects to', () => {
  let t: TestApp;
  let m: { id: string; token: string };

  before(async () => {
    t = await startTestApp({}, { store: (layout) => objectStoreLike(new LocalStore(layout.root), 'redirect') });
    m = await seeded(t);
  });
  after(() => t.close());

  it('redirects to the signed URL, which the redirect does not outlive', async () => {
    const res = await t.app.inject({ url: `/play/${m.token}/posters/poster.jpg` });
    assert.equal(res.statusCode, 302);
    assert.match(
      String(res.headers.location),
      new RegExp(`^https://objects\\.example/${t.tenant.id}/alice/${m.id}/posters/poster\\.jpg\\?expires=\\d+&type=image%2Fjpeg$`),
    );
    assert.equal(res.headers['cache-control'], 'no-store');
    const expires = Number(new URL(String(res.headers.location)).searchParams.get('expires'));
    const tokenExpires = parseInt(m.token.split('.')[1]!, 36) * 1000;
    assert.equal(expires, tokenExpires, 'the signed URL expires with the playback token');
  });

  it('streams playlists, whose relative URLs must resolve against the playback URL', async () => {
    const res = await t.app.inject({ url: `/play/${m.token}/hls/master.m3u8` });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/vnd.apple.mpegurl');
    assert.match(res.body, /^#EXTM3U/);
  });
});
