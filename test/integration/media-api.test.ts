import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { expectProblem, listFiles, startTestApp, type TestApp } from '../support/harness.js';
import { insertManyMedia, insertMedia } from '../support/media-seed.js';
import { RARE_FILTER_MEDIA } from '../../src/media/rare-filters.js';
import { SessionClient } from '../support/upload-client.js';

describe('media API', () => {
  let t: TestApp;
  let client: SessionClient;
  const ids: string[] = [];

  before(async () => {
    t = await startTestApp();
    client = new SessionClient(t.app, t.tenant.userKey);
    for (let i = 0; i < 7; i++) {
      const { completed } = await client.uploadWhole(randomBytes(1500 + i), { filename: `f${i}.bin`, chunkSize: 1024 });
      assert.equal(completed.statusCode, 201, completed.body);
      ids.push(completed.json().id);
    }
  });
  after(() => t.close());

  it('lists newest first with stable cursor pagination', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { statusCode: number; body: string; json(): any } = await t.app.inject({
        url: `/api/v1/media?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        headers: t.auth(t.tenant.userKey),
      });
      assert.equal(res.statusCode, 200, res.body);
      const page = res.json();
      assert.ok(page.items.length <= 3);
      seen.push(...page.items.map((m: { id: string }) => m.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...ids].reverse());
  });

  it('filters by status and refuses a forged cursor', async () => {
    const ready = await t.app.inject({ url: '/api/v1/media?status=ready', headers: t.auth(t.tenant.userKey) });
    assert.equal(ready.json().items.length, 7, '"other" files are ready at once');
    const queued = await t.app.inject({ url: '/api/v1/media?status=queued', headers: t.auth(t.tenant.userKey) });
    assert.equal(queued.json().items.length, 0);
    expectProblem(await t.app.inject({ url: '/api/v1/media?cursor=garbage', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(await t.app.inject({ url: '/api/v1/media?limit=0', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
  });

  it('returns the record with its status', async () => {
    const res = await t.app.inject({ url: `/api/v1/media/${ids[0]}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 200);
    const m = res.json();
    assert.equal(m.id, ids[0]);
    assert.equal(m.status, 'ready');
    assert.equal(m.kind, 'other');
    assert.equal(m.tenant_id, t.tenant.id);
    assert.equal(m.user_id, 'alice');
    assert.equal(m.error, null);
    assert.match(m.created_at, /^\d{4}-\d\d-\d\dT/);
  });

  it('filters by kind, label (with descendants), tag and status, combined, within what the key may list', async () => {
    const bank = await t.app.inject({
      method: 'POST',
      url: '/api/v1/label-banks',
      headers: t.auth(t.tenant.adminKey),
      payload: {
        name: 'things',
        entries: [{ name: 'animal' }, { name: 'deer', parent: 'animal' }, { name: 'vehicle' }, { name: 'bicycle', parent: 'vehicle' }],
      },
    });
    assert.equal(bank.statusCode, 201, bank.body);
    const base = Date.parse('2025-06-01T00:00:00Z');
    const at = (i: number) => new Date(base + i * 60_000).toISOString();
    const deerVideo = await insertMedia(t, { kind: 'video', tags: ['Forest', 'dawn'], createdAt: at(1) });
    const deerImage = await insertMedia(t, { kind: 'image', tags: ['forest'], status: 'processing', createdAt: at(2) });
    const bikeImage = await insertMedia(t, { kind: 'image', tags: ['City'], createdAt: at(3) });
    const animalAudio = await insertMedia(t, { kind: 'audio', tags: ['FOREST'], status: 'error', createdAt: at(4) });
    const bobsDeer = await insertMedia(t, { kind: 'video', tags: ['forest'], userId: 'bob', createdAt: at(5) });
    await insertMedia(t, { tenantId: t.other.id, kind: 'video', tags: ['forest'], labels: ['deer'], createdAt: at(6) });
    // Labelled through the API, as a person would.
    const label = async (id: string, name: string, key: string) => {
      const res = await t.app.inject({ method: 'POST', url: `/api/v1/media/${id}/labels`, headers: t.auth(key), payload: { labels: [{ name }] } });
      assert.equal(res.statusCode < 300, true, res.body);
    };
    await label(deerVideo, 'deer', t.tenant.userKey);
    await label(deerImage, 'Deer', t.tenant.userKey);
    await label(bikeImage, 'bicycle', t.tenant.userKey);
    await label(animalAudio, 'animal', t.tenant.userKey);
    await label(bobsDeer, 'deer', t.tenant.adminKey);

    const list = async (query: string, key = t.tenant.userKey) => {
      const res = await t.app.inject({ url: `/api/v1/media?${query}`, headers: t.auth(key) });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json().items as { id: string }[]).map((m) => m.id);
    };
    assert.deepEqual(await list('label=animal'), [animalAudio, deerImage, deerVideo], 'the label and its descendants, newest first, every status');
    assert.deepEqual(await list('label=deer'), [deerImage, deerVideo]);
    assert.deepEqual(await list('label=vehicle'), [bikeImage]);
    assert.deepEqual(await list('label=unicorn'), []);
    assert.deepEqual(await list('kind=image'), [bikeImage, deerImage]);
    assert.deepEqual(await list('kind=image&label=animal'), [deerImage]);
    assert.deepEqual(await list('tag=forest'), [animalAudio, deerImage, deerVideo], 'tags match case-insensitively');
    assert.deepEqual(await list(`tag=${encodeURIComponent('  FoReSt ')}`), [animalAudio, deerImage, deerVideo]);
    assert.deepEqual(await list('tag=forest&label=deer&kind=video'), [deerVideo]);
    assert.deepEqual(await list('tag=forest&status=error'), [animalAudio]);
    assert.deepEqual(await list('label=animal&status=processing'), [deerImage]);
    assert.deepEqual(await list('tag=city&label=animal'), []);

    // Authorization as without filters: a user key lists its own media; an admin key the tenant's, or one user's.
    assert.deepEqual(await list('label=deer&kind=video', t.tenant.adminKey), [bobsDeer, deerVideo]);
    assert.deepEqual(await list('label=deer&user_id=bob', t.tenant.adminKey), [bobsDeer]);
    expectProblem(await t.app.inject({ url: '/api/v1/media?label=deer&user_id=bob', headers: t.auth(t.tenant.userKey) }), 403, 'forbidden');

    // Pages keep their cursor, filters and all.
    const first = await t.app.inject({ url: '/api/v1/media?tag=forest&limit=2', headers: t.auth(t.tenant.userKey) });
    assert.deepEqual(
      first.json().items.map((m: { id: string }) => m.id),
      [animalAudio, deerImage],
    );
    assert.deepEqual(await list(`tag=forest&limit=2&cursor=${encodeURIComponent(first.json().next_cursor)}`), [deerVideo]);

    // A tag edited through PATCH is found under its new name at once.
    const patch = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/media/${bikeImage}`,
      headers: t.auth(t.tenant.userKey),
      payload: { tags: { add: ['Forest'] } },
    });
    assert.equal(patch.statusCode, 200, patch.body);
    assert.deepEqual(await list('tag=forest&kind=image'), [bikeImage, deerImage]);

    const bad = async (query: string) =>
      expectProblem(await t.app.inject({ url: `/api/v1/media?${query}`, headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    await bad('kind=movie');
    await bad('status=done');
    await bad('label=');
    await bad('label=%20%20');
    await bad('tag=%20');
    await bad(`tag=${'x'.repeat(65)}`);
    await bad(`label=${'x'.repeat(101)}`);
  });

  it('deletes the row and every file', async () => {
    const id = ids[3]!;
    const dir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id });
    await fs.access(dir);
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 204);
    await assert.rejects(fs.access(dir));
    expectProblem(await t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) }), 404, 'not-found');
    expectProblem(await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) }), 404, 'not-found');
    const files = await listFiles(t.ctx.layout.root);
    assert.ok(!files.some((f) => f.includes(id)));
    assert.equal(files.length, 6);
  });
  it(`filters by a label and a tag more than ${RARE_FILTER_MEDIA} media carry as by rarer ones`, async () => {
    const newest = Date.parse('2024-03-01T00:00:00Z');
    const bulk = (await insertManyMedia(t, RARE_FILTER_MEDIA + 20, { labels: ['meadow'], tags: ['Bulk'], newest })).reverse();
    const rare = await insertMedia(t, { kind: 'image', labels: ['meadow'], tags: ['bulk', 'rare'], createdAt: new Date(newest - 4500).toISOString() });
    const bobs = await insertMedia(t, { labels: ['meadow'], tags: ['bulk'], userId: 'bob', createdAt: new Date(newest + 1000).toISOString() });
    const list = async (query: string, key = t.tenant.userKey) => {
      const res = await t.app.inject({ url: `/api/v1/media?${query}`, headers: t.auth(key) });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { items: { id: string }[]; next_cursor: string | null };
    };
    const mine = [...bulk.slice(0, 5), rare, ...bulk.slice(5)];
    for (const query of ['tag=BULK', 'label=meadow', 'label=meadow&tag=bulk']) {
      const first = await list(`${query}&limit=4`);
      assert.deepEqual(
        first.items.map((m) => m.id),
        mine.slice(0, 4),
        query,
      );
      const second = await list(`${query}&limit=4&cursor=${encodeURIComponent(first.next_cursor!)}`);
      assert.deepEqual(
        second.items.map((m) => m.id),
        mine.slice(4, 8),
        query,
      );
    }
    assert.deepEqual(
      (await list('tag=bulk&kind=image')).items.map((m) => m.id),
      [rare],
    );
    assert.deepEqual(
      (await list('label=meadow&tag=rare')).items.map((m) => m.id),
      [rare],
    );
    assert.deepEqual(
      (await list('label=meadow&tag=bulk&limit=2', t.tenant.adminKey)).items.map((m) => m.id),
      [bobs, bulk[0]],
    );
  });
});
