import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { uploadWithPoster } from '../support/media-seed.js';

const API = '/api/v1';
const POSTER = 'ten bytes!';

describe('serving stored files to clients', () => {
  let t: TestApp;

  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  /** A media of a tenant's user with a poster file, so that its package has a playback URL. */
  async function mediaWithPoster(key = t.tenant.userKey): Promise<{ id: string; dir: string; token: string }> {
    const media = await uploadWithPoster(t, key, POSTER);
    const dir = media.dir;
    const pkg = await t.app.inject({ url: `${API}/media/${media.id}/package`, headers: t.auth(key) });
    assert.equal(pkg.statusCode, 200, pkg.body);
    return { id: media.id, dir, token: new URL(pkg.json().poster.jpeg).pathname.split('/')[2]! };
  }

  /** The same stored file through the signed playback route and the authenticated API route. */
  function bothRoutes(m: { id: string; token: string }, rel: string, headers: Record<string, string> = {}) {
    return [
      { route: 'playback', get: () => t.app.inject({ url: `/play/${m.token}/${rel}`, headers }) },
      { route: 'api', get: () => t.app.inject({ url: `${API}/media/${m.id}/files/${rel}`, headers: { ...headers, ...t.auth(t.tenant.userKey) } }) },
    ];
  }

  it('answers an unsatisfiable Range with 416 and the size in Content-Range, on both routes', async () => {
    const m = await mediaWithPoster();
    for (const { route, get } of bothRoutes(m, 'posters/poster.jpg', { range: 'bytes=5000-6000' })) {
      const res = await get();
      expectProblem(res, 416, 'range-not-satisfiable');
      assert.equal(res.headers['content-range'], `bytes */${POSTER.length}`, route);
    }
    for (const { route, get } of bothRoutes(m, 'posters/poster.jpg', { range: 'bytes=2-4' })) {
      const res = await get();
      assert.equal(res.statusCode, 206, route);
      assert.equal(res.body, POSTER.slice(2, 5), route);
    }
  });

  it('refuses symbolic links that lead out of the media folder, on both routes', async () => {
    const m = await mediaWithPoster();
    const theirs = await mediaWithPoster(t.other.userKey);
    const sibling = await mediaWithPoster();
    // A file of another tenant, one of another media of the same user, and the system's.
    await fs.symlink('/etc/passwd', path.join(m.dir, 'posters', 'e.jpg'));
    await fs.symlink(path.join(theirs.dir, 'posters', 'poster.jpg'), path.join(m.dir, 'posters', 'theirs.jpg'));
    await fs.symlink(path.join('..', '..', sibling.id, 'posters', 'poster.jpg'), path.join(m.dir, 'posters', 'sibling.jpg'));
    // Whole folders: a linked folder of another tenant's media, and one of the system.
    await fs.symlink(path.join(theirs.dir, 'posters'), path.join(m.dir, 'thumbnails'));
    await fs.symlink('/etc', path.join(m.dir, 'webp'));
    // Into the media's own original, which playback URLs never reach.
    await fs.mkdir(path.join(m.dir, 'media'), { recursive: true });
    await fs.writeFile(path.join(m.dir, 'media', 'secret.bin'), 'the original');
    await fs.symlink(path.join('..', 'media', 'secret.bin'), path.join(m.dir, 'posters', 'original.jpg'));

    for (const rel of ['posters/e.jpg', 'posters/theirs.jpg', 'posters/sibling.jpg', 'thumbnails/poster.jpg', 'webp/passwd', 'webp/hostname']) {
      for (const { route, get } of bothRoutes(m, rel)) {
        const res = await get();
        expectProblem(res, 404, 'not-found');
        assert.ok(!res.body.includes('root:') && !res.body.includes(POSTER), `${route} ${rel}: ${res.body}`);
      }
    }
    expectProblem(await t.app.inject({ url: `/play/${m.token}/posters/original.jpg` }), 404, 'not-found');
    // A name the file system refuses is not there either (it was a 500).
    for (const { get } of bothRoutes(m, `posters/${'a'.repeat(300)}.jpg`)) expectProblem(await get(), 404, 'not-found');
    // A link that stays inside the folder is an ordinary file of it.
    await fs.symlink('poster.jpg', path.join(m.dir, 'posters', 'alias.jpg'));
    for (const { route, get } of bothRoutes(m, 'posters/alias.jpg')) {
      const res = await get();
      assert.equal(res.statusCode, 200, route);
      assert.equal(res.body, POSTER, route);
    }
  });

  it("refuses a media whose own folder is a link to another tenant's media", async () => {
    const m = await mediaWithPoster();
    const theirs = await mediaWithPoster(t.other.userKey);
    await fs.rm(m.dir, { recursive: true });
    await fs.symlink(theirs.dir, m.dir);
    for (const { route, get } of bothRoutes(m, 'posters/poster.jpg')) {
      const res = await get();
      expectProblem(res, 404, 'not-found');
      assert.ok(!res.body.includes(POSTER), route);
    }
  });

  it('does not copy a linked manifest into the one clients read when caption tracks change', async () => {
    const m = await mediaWithPoster();
    await t.ctx.database.db.updateTable('mediaassets').set({ kind: 'video', status: 'ready' }).where('id', '=', m.id).execute();
    await fs.mkdir(path.join(m.dir, 'hls'), { recursive: true });
    await fs.symlink('/etc/passwd', path.join(m.dir, 'hls', 'master.m3u8'));
    const vtt = 'WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhello\n';
    const put = await t.app.inject({
      method: 'PUT',
      url: `${API}/media/${m.id}/captions/en`,
      headers: { ...t.auth(t.tenant.userKey), 'content-type': 'text/vtt' },
      payload: vtt,
    });
    assert.equal(put.statusCode, 201, put.body);
    assert.ok((await fs.lstat(path.join(m.dir, 'hls', 'master.m3u8'))).isSymbolicLink(), 'the link was left as it was, not replaced by its target');
    for (const { route, get } of bothRoutes(m, 'hls/master.m3u8')) {
      const res = await get();
      expectProblem(res, 404, 'not-found');
      assert.ok(!res.body.includes('root:'), route);
    }
  });
  it('neither writes nor removes caption files through a linked caption folder', async () => {
    const m = await mediaWithPoster();
    const theirs = await mediaWithPoster(t.other.userKey);
    await t.ctx.database.db.updateTable('mediaassets').set({ kind: 'video', status: 'ready' }).where('id', '=', m.id).execute();
    const captions = (method: 'PUT' | 'DELETE') =>
      t.app.inject({
        method,
        url: `${API}/media/${m.id}/captions/en`,
        headers: { ...t.auth(t.tenant.userKey), 'content-type': 'text/vtt' },
        ...(method === 'PUT' ? { payload: 'WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nours\n' } : {}),
      });
    assert.equal((await captions('PUT')).statusCode, 201);
    // The caption folder is swapped for a link to another tenant's folder that has a file of that name.
    const foreign = path.join(theirs.dir, 'transcripts');
    await fs.mkdir(foreign, { recursive: true });
    await fs.writeFile(path.join(foreign, 'en.vtt'), 'theirs');
    await fs.rm(path.join(m.dir, 'transcripts'), { recursive: true });
    await fs.symlink(foreign, path.join(m.dir, 'transcripts'));

    expectProblem(await captions('PUT'), 409, 'conflict');
    assert.equal(await fs.readFile(path.join(foreign, 'en.vtt'), 'utf8'), 'theirs', 'not overwritten');
    assert.equal((await captions('DELETE')).statusCode, 204);
    assert.equal(await fs.readFile(path.join(foreign, 'en.vtt'), 'utf8'), 'theirs', 'not removed');
  });
});
