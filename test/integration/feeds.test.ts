import fs from 'node:fs/promises';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KyselyPlugin } from 'kysely';
import { FeedItemBuilder } from '../../src/feeds/feed-items.js';
import { MediaFactsSource } from '../../src/search/media-facts.js';
import { LabelDirectory } from '../../src/labels/label-directory.js';
import { PlaybackTokens, playbackSecret } from '../../src/media/playback-tokens.js';
import type { Principal } from '../../src/tenancy/principal.js';
import { insertMedia } from '../support/media-seed.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';

type Page = { items: any[]; next_cursor: string | null };

const POSTER_BYTES = 'not really a jpeg, but the bytes of posters/poster.jpg';

/** Puts a poster file where a media's artifacts say it is, so that its signed URL can be fetched. */
async function writePoster(t: TestApp, tenantId: string, userId: string, mediaId: string): Promise<void> {
  const dir = path.join(t.ctx.layout.mediaDir({ tenantId, userId, mediaId }), 'posters');
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'poster.jpg'), POSTER_BYTES);
}

describe('feeds', () => {
  let t: TestApp;
  const get = async (url: string, key?: string): Promise<Page> => {
    const res = await t.app.inject({ url, headers: t.auth(key ?? t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    return res.json();
  };

  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  it('new: ready media moderation has not held, newest first, in the item shape', async () => {
    const base = Date.parse('2024-05-01T00:00:00Z');
    const at = (i: number) => new Date(base + i * 1000).toISOString();
    const video = await insertMedia(t, {
      caption: 'the river',
      title: 'River',
      labels: ['water'],
      tags: ['Outdoor'],
      createdAt: at(1),
      fileMetadata: {
        duration: 31.5,
        width: 1440,
        height: 1080,
        display_width: 1920,
        display_height: 1080,
        artifacts: { hls: 'hls/master.m3u8', dash: 'dash/manifest.mpd', poster: { jpeg: 'posters/poster.jpg', webp: 'posters/poster.webp' } },
      },
    });
    const approved = await insertMedia(t, { caption: 'approved', moderation: 'approved', createdAt: at(2) });
    await insertMedia(t, { caption: 'held', moderation: 'held', createdAt: at(3) });
    await insertMedia(t, { caption: 'rejected', moderation: 'rejected', createdAt: at(4) });
    await insertMedia(t, { caption: 'processing', status: 'processing', createdAt: at(5) });
    await insertMedia(t, { caption: 'other tenant', tenantId: t.other.id, createdAt: at(6) });
    const newest = await insertMedia(t, { caption: 'newest', kind: 'audio', createdAt: at(7), fileMetadata: { duration: 5 } });

    const page = await get('/api/v1/feed/new');
    assert.deepEqual(
      page.items.map((i) => i.id),
      [newest, approved, video],
    );
    assert.equal(page.next_cursor, null);
    const item = page.items[2];
    assert.equal(item.kind, 'video');
    assert.equal(item.status, 'ready');
    assert.equal(item.title, 'River');
    assert.equal(item.caption, 'the river');
    assert.equal(item.duration, 31.5);
    assert.deepEqual([item.width, item.height], [1920, 1080], 'displayed size');
    assert.deepEqual(item.labels, ['water']);
    assert.deepEqual(item.tags, ['Outdoor']);
    assert.match(item.poster.jpeg, /\/play\/[^/]+\/posters\/poster\.jpg$/);
    assert.match(item.playback.hls, /\/play\/[^/]+\/hls\/master\.m3u8$/);
    assert.match(item.playback.dash, /\/play\/[^/]+\/dash\/manifest\.mpd$/);
    assert.equal(item.playback.webm, null);
    await writePoster(t, t.tenant.id, 'alice', video);
    const poster = await t.app.inject({ url: new URL(item.poster.jpeg).pathname });
    assert.equal(poster.statusCode, 200, 'the poster URL is validly signed');
    assert.equal(poster.body, POSTER_BYTES);
    const audio = page.items[0];
    assert.equal(audio.duration, 5);
    assert.equal(audio.width, null);
    assert.equal(audio.poster.jpeg, null);

    const theirs = await get('/api/v1/feed/new', t.other.userKey);
    assert.equal(theirs.items.length, 1);
    assert.equal(theirs.items[0].caption, 'other tenant');
  });

  it('new: cursor pages are stable when media arrive between pages', async () => {
    const all = (await get('/api/v1/feed/new?limit=100')).items.map((i) => i.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await get(`/api/v1/feed/new?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
      pages++;
      await insertMedia(t, { caption: 'arrived meanwhile' });
    } while (cursor && pages < 10);
    assert.equal(pages, 2);
    assert.deepEqual(seen, all);
    expectProblem(await t.app.inject({ url: '/api/v1/feed/new?cursor=bm9wZQ', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(await t.app.inject({ url: '/api/v1/feed/new?limit=1000', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    const searchCursor = (await get('/api/v1/feed/search?q=arrived&limit=1')).next_cursor!;
    expectProblem(
      await t.app.inject({ url: `/api/v1/feed/new?cursor=${encodeURIComponent(searchCursor)}`, headers: t.auth(t.tenant.userKey) }),
      400,
      'validation-failed',
    );
  });

  it('search: relevance order in the item shape, ready media only, paged', async () => {
    const caption = await insertMedia(t, { caption: 'wombat burrow' });
    const tag = await insertMedia(t, { caption: 'hole in the ground', tags: ['wombat'] });
    await insertMedia(t, { caption: 'wombat queued', status: 'queued' });
    const first = await get('/api/v1/feed/search?q=womb&limit=1');
    assert.deepEqual(
      first.items.map((i) => i.id),
      [caption],
    );
    assert.equal(first.items[0].score, undefined, 'feed items have no score');
    const second = await get(`/api/v1/feed/search?q=womb&limit=1&cursor=${encodeURIComponent(first.next_cursor!)}`);
    assert.deepEqual(
      second.items.map((i) => i.id),
      [tag],
    );
    assert.equal(second.next_cursor, null);
    expectProblem(await t.app.inject({ url: '/api/v1/feed/search?q=womb&status=queued', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(await t.app.inject({ url: '/api/v1/feed/search', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
  });

  it('lists each general label with its ancestors, and a parent label filters the search feed', async () => {
    // A media labelled before the hierarchy exists: items follow the hierarchy as it is now.
    const early = await insertMedia(t, { caption: 'kingfisher on a branch', labels: ['kingfisher'] });
    const bank = await t.app.inject({
      method: 'POST',
      url: '/api/v1/label-banks',
      headers: t.auth(t.tenant.adminKey),
      payload: {
        name: 'wildlife',
        entries: [
          { name: 'animal' },
          { name: 'bird', parent: 'animal' },
          { name: 'heron', parent: 'bird' },
          { name: 'kingfisher', parent: 'bird' },
          { name: 'fox', parent: 'animal' },
        ],
      },
    });
    assert.equal(bank.statusCode, 201, bank.body);
    const heron = await insertMedia(t, { caption: 'heron by the pond', labels: ['heron', 'water'] });
    const fox = await insertMedia(t, { caption: 'fox by the pond', labels: ['fox'] });
    const flagged = await insertMedia(t, { caption: 'pond with a moderation label', labels: ['heron'] });
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, flagged, [{ name: 'gore', kind: 'moderation', confidence: 0.1, source: 'model' }]);

    const items = new Map((await get('/api/v1/feed/new?limit=100')).items.map((i) => [i.id, i]));
    assert.deepEqual(items.get(heron).labels, ['animal', 'bird', 'heron', 'water']);
    assert.deepEqual(items.get(fox).labels, ['animal', 'fox']);
    assert.deepEqual(items.get(early).labels, ['animal', 'bird', 'kingfisher']);
    assert.deepEqual(items.get(flagged).labels, ['animal', 'bird', 'heron'], 'moderation labels are not shown');

    const birds = await get('/api/v1/feed/search?q=pond&label=bird&limit=100');
    assert.deepEqual(new Set(birds.items.map((i) => i.id)), new Set([heron, flagged]), 'a parent label finds media labelled with a child');
    assert.deepEqual(birds.items.find((i) => i.id === heron).labels, ['animal', 'bird', 'heron', 'water']);
    const animals = await get('/api/v1/feed/search?q=pond&label=animal&limit=100');
    assert.deepEqual(new Set(animals.items.map((i) => i.id)), new Set([heron, fox, flagged]), 'and with a grandchild');
  });

  it('builds items from ranked ids in a fixed number of queries, leaving out media deleted or held since ranking', async () => {
    const db = t.ctx.database.db;
    let queries = 0;
    const counting: KyselyPlugin = {
      transformQuery: (args) => {
        queries++;
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const tokens = new PlaybackTokens(await playbackSecret(db, t.env.settings.playbackSecret));
    // Uncached: every build reads what it shows (the cached builder is tested below and in media-record-cache).
    const countingDb = db.withPlugin(counting);
    const builder = new FeedItemBuilder(
      new MediaFactsSource(countingDb, undefined),
      new LabelDirectory(countingDb, undefined),
      tokens,
      t.env.settings.playbackTtl,
    );
    const alice: Principal = { tenantId: t.tenant.id, keyId: 'k1', userId: 'alice', isAdmin: false };
    const bob: Principal = { tenantId: t.tenant.id, keyId: 'k2', userId: 'bob', isAdmin: false };
    const artifacts = { duration: 3, artifacts: { hls: 'hls/master.m3u8', poster: { jpeg: 'posters/poster.jpg' } } };

    const ids: string[] = [];
    for (let i = 0; i < 8; i++)
      ids.push(await insertMedia(t, { caption: `ranked ${i}`, labels: ['heron', `own-${i}`], tags: [`t${i}`], fileMetadata: artifacts }));
    const [kept1, deleted, held, kept2] = ids as [string, string, string, string];
    const baseUrl = 'http://qasar.test';
    // Counted before anything changes: the cost of a page does not grow with its length.
    queries = 0;
    assert.equal((await builder.build(bob, ids.slice(0, 2), baseUrl)).length, 2);
    const forTwo = queries;
    queries = 0;
    assert.equal((await builder.build(bob, ids, baseUrl)).length, 8);
    assert.equal(queries, forTwo, `queries for 8 items (${queries}) = for 2 items (${forTwo})`);

    // Ranked, then deleted and held through the API and the moderation workflow.
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${deleted}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(del.statusCode, 204);
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, held, [{ name: 'violence', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    const otherTenant = await insertMedia(t, { tenantId: t.other.id, caption: 'theirs' });
    const ranked = [kept1, deleted, held, 'no-such-media', otherTenant, kept2];

    const items = await builder.build(bob, ranked, baseUrl);
    assert.deepEqual(
      items.map((i) => i.id),
      [kept1, kept2],
      'in the ranked order, without what became invisible',
    );
    assert.deepEqual(items[0]!.labels, ['animal', 'bird', 'heron', 'own-0']);
    assert.deepEqual(items[0]!.tags, ['t0']);
    assert.equal(items[0]!.duration, 3);
    assert.match(items[0]!.playback.hls!, /^http:\/\/qasar\.test\/play\/[^/]+\/hls\/master\.m3u8$/);
    await writePoster(t, t.tenant.id, 'alice', kept1);
    const play = await t.app.inject({ url: new URL(items[0]!.poster.jpeg!).pathname });
    assert.equal(play.statusCode, 200, 'validly signed');
    assert.equal(play.body, POSTER_BYTES);

    // Search results are built for a member: the owner still sees her held media, without playback URLs.
    const own = await builder.build(alice, ranked, baseUrl, { audience: { kind: 'member', userId: 'alice', isAdmin: false } });
    assert.deepEqual(
      own.map((i) => i.id),
      [kept1, held, kept2],
    );
    assert.deepEqual(own[1]!.poster, { jpeg: null, webp: null }, 'held media gets no public URL, not even for its owner');
    assert.deepEqual(own[1]!.playback, { hls: null, dash: null, webm: null, expires_at: own[1]!.playback.expires_at });
    const bobAsMember = await builder.build(bob, ranked, baseUrl, { audience: { kind: 'member', userId: 'bob', isAdmin: false } });
    assert.deepEqual(
      bobAsMember.map((i) => i.id),
      [kept1, kept2],
    );

    // And over HTTP: the new feed skips both without failing.
    const feed = (await get('/api/v1/feed/new?limit=100', (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key)).items.map(
      (i) => i.id,
    );
    assert.ok(feed.includes(kept1) && feed.includes(kept2));
    assert.ok(!feed.includes(deleted) && !feed.includes(held));
  });

  it("never shows another tenant's media in the search feed or the recommended feed", async () => {
    // Both tenants have a user "alice" and a label "otter": ids, names and users collide, tenants do not.
    const ours = [
      await insertMedia(t, { caption: 'otter slide', labels: ['otter'], userId: 'carol' }),
      await insertMedia(t, { caption: 'otter nap', labels: ['otter'], userId: 'carol' }),
    ];
    const theirs = [
      await insertMedia(t, { tenantId: t.other.id, caption: 'otter slide', labels: ['otter'], userId: 'carol' }),
      await insertMedia(t, { tenantId: t.other.id, caption: 'otter nap', labels: ['otter'], userId: 'carol' }),
    ];
    const ourSearch = (await get('/api/v1/feed/search?q=otter&limit=100')).items.map((i) => i.id);
    assert.deepEqual(new Set(ourSearch), new Set(ours));
    const theirSearch = (await get('/api/v1/feed/search?q=otter&label=otter&limit=100', t.other.userKey)).items.map((i) => i.id);
    assert.deepEqual(new Set(theirSearch), new Set(theirs));

    // zoe of each tenant views the first otter media of her tenant: her recommendations come from her tenant only.
    for (const [tenantId, mine] of [
      [t.tenant.id, ours],
      [t.other.id, theirs],
    ] as const) {
      const key = (await t.ctx.tenancy.createKey({ tenantId, userId: 'zoe' })).key;
      const view = await t.app.inject({ url: `/api/v1/media/${mine[0]}/package`, headers: t.auth(key) });
      assert.equal(view.statusCode, 200, view.body);
      const ids = (await get('/api/v1/feed/recommended?limit=100', key)).items.map((i) => i.id);
      assert.equal(ids[0], mine[1], 'first the other otter media of her tenant, from her view');
      const tenantMedia = new Set((await get('/api/v1/feed/new?limit=100', key)).items.map((i) => i.id));
      assert.ok(
        ids.every((id) => tenantMedia.has(id)),
        'then only media of her own tenant',
      );
    }
    expectProblem(await t.app.inject({ url: `/api/v1/media/${theirs[0]}/related`, headers: t.auth(t.tenant.userKey) }), 404, 'not-found');
  });
});
