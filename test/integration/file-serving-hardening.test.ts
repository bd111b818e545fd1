import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

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
    const client = new SessionClient(t.app, key);
    const { completed } = await client.uploadWhole(randomBytes(1000), { filename: 'clip.bin', chunkSize: 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    const media = completed.json();
    const dir = t.ctx.layout.mediaDir({ tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
    await fs.mkdir(path.join(dir, 'posters'), { recursive: true });
    await fs.writeFile(path.join(dir, 'posters', 'poster.jpg'), POSTER);
    await t.ctx.database.db
      .updateTable('mediaassets')
      .set({ file_metadata: JSON.stringify({ artifacts: { poster: { jpeg: 'posters/poster.jpg' } } }) })
      .where('id', '=', media.id)
      .execute();
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
});
