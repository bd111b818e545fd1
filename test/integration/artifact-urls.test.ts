/**
 * API URLs of artifacts and caption tracks are made when a response is, under the API prefix the
 * server runs with: none is stored, and URLs older versions stored in file_metadata are ignored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fromJson } from '../../src/db/schema.js';
import { saveFileMetadata } from '../../src/processing/steps/scratch-step.js';
import { insertMedia } from '../support/media-seed.js';
import { BACKEND, startTestApp, type TestApp } from '../support/harness.js';

const PREFIX = '/media-api/v9';
const ARTIFACTS = { hls: 'hls/master.m3u8', thumbnails: ['thumbnails/0001.jpg', 'thumbnails/0002.jpg'], poster: { jpeg: 'posters/poster.jpg' } };

describe(`artifact URLs (${BACKEND} backend)`, () => {
  let t: TestApp;
  let id: string;

  before(async () => {
    t = await startTestApp({ API_PREFIX: PREFIX }, { worker: false });
    // A record as an older version wrote it: URLs under another prefix stored beside the paths.
    id = await insertMedia(t, {
      kind: 'video',
      fileMetadata: { duration: 3, artifacts: ARTIFACTS, urls: { hls: '/api/v1/media/x/files/hls/master.m3u8', stale: true }, pending: [] },
    });
  });
  after(async () => {
    await t.close();
  });

  const get = (url: string) => t.app.inject({ url: `${PREFIX}${url}`, headers: t.auth(t.tenant.userKey) });
  const expected = (mediaId: string) => ({
    hls: `${PREFIX}/media/${mediaId}/files/hls/master.m3u8`,
    thumbnails: [`${PREFIX}/media/${mediaId}/files/thumbnails/0001.jpg`, `${PREFIX}/media/${mediaId}/files/thumbnails/0002.jpg`],
    poster: { jpeg: `${PREFIX}/media/${mediaId}/files/posters/poster.jpg` },
  });

  it('derives them under the current prefix in the record, the list and file_metadata, ignoring stored ones', async () => {
    for (let i = 0; i < 2; i++) {
      // The second read is served from the record cache.
      const record = (await get(`/media/${id}`)).json();
      assert.deepEqual(record.urls, expected(id));
      assert.deepEqual(record.file_metadata.urls, expected(id));
      assert.deepEqual(record.artifacts, ARTIFACTS);
    }
    const listed = (await get('/media')).json().items.find((m: { id: string }) => m.id === id);
    assert.deepEqual(listed.file_metadata.urls, expected(id));
  });

  it('leaves urls out of a record without artifacts, as before', async () => {
    const bare = await insertMedia(t, { kind: 'video', status: 'queued', fileMetadata: { original: { path: 'x' } } });
    const record = (await get(`/media/${bare}`)).json();
    assert.deepEqual(record.urls, {});
    assert.equal('urls' in record.file_metadata, false);
  });

  it('gives caption tracks their URL under the current prefix', async () => {
    const put = await t.app.inject({
      method: 'PUT',
      url: `${PREFIX}/media/${id}/captions/en`,
      headers: { ...t.auth(t.tenant.userKey), 'content-type': 'text/vtt' },
      payload: 'WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHello\n',
    });
    assert.equal(put.statusCode, 201, put.body);
    const url = `${PREFIX}/media/${id}/files/transcripts/en.vtt`;
    assert.equal(put.json().url, url);
    assert.deepEqual(
      (await get(`/media/${id}/captions`)).json().items.map((c: { url: string }) => c.url),
      [url],
    );
    assert.deepEqual(
      (await get(`/media/${id}`)).json().caption_tracks.map((c: { url: string }) => c.url),
      [url],
    );
    assert.equal((await get(url.slice(PREFIX.length))).statusCode, 200, 'the URL serves the file');
  });

  it('stores no URLs when a processing step records its results, and drops stored ones', async () => {
    const row = await t.ctx.database.db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', id).executeTakeFirstOrThrow();
    const meta = fromJson<Record<string, unknown>>(row.file_metadata, {});
    assert.ok('urls' in meta, 'the old record still holds them');
    await saveFileMetadata(
      { db: t.ctx.database.db, changes: t.ctx.changes },
      { id, tenant_id: t.tenant.id, user_id: 'alice', kind: 'video', status: 'ready' },
      meta,
    );
    const after = await t.ctx.database.db.selectFrom('mediaassets').select(['file_metadata']).where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal('urls' in fromJson<Record<string, unknown>>(after.file_metadata, {}), false);
    assert.deepEqual((await get(`/media/${id}`)).json().urls, expected(id));
  });
});
