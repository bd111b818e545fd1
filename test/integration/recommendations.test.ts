import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { encodeCursor, fingerprintOf } from '../../src/search/cursor.js';
import { insertMedia } from '../support/media-seed.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';

type Page = { items: { id: string }[]; next_cursor: string | null };

/** A real recommender endpoint: records what it was asked and answers with `answer()`. */
async function recommender(answer: (body: any, res: http.ServerResponse) => void) {
  const requests: any[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const body = JSON.parse(data);
      requests.push(body);
      answer(body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rank`;
  return {
    url,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('recommendations', () => {
  let t: TestApp;
  const get = async (app: TestApp, url: string, key: string): Promise<Page> => {
    const res = await app.app.inject({ url, headers: app.auth(key) });
    assert.equal(res.statusCode, 200, res.body);
    return res.json();
  };
  let seed: string, rare: string, common: string, both: string, held: string;

  /** A small library: labels "common" on many media, "rare" on two, tags too. */
  async function library(app: TestApp) {
    const ids: Record<string, string> = {};
    for (let i = 0; i < 8; i++) await insertMedia(app, { caption: `filler ${i}`, labels: ['common'], userId: 'carol' });
    ids.seed = await insertMedia(app, { caption: 'seed', labels: ['common', 'rare'], tags: ['heron'], userId: 'carol' });
    ids.rare = await insertMedia(app, { caption: 'shares the rare label', labels: ['rare'], userId: 'carol' });
    ids.common = await insertMedia(app, { caption: 'shares the common label', labels: ['common'], userId: 'carol' });
    ids.both = await insertMedia(app, { caption: 'shares rare label and tag', labels: ['rare'], tags: ['Heron'], userId: 'carol' });
    ids.held = await insertMedia(app, { caption: 'held', labels: ['rare'], tags: ['heron'], moderation: 'held', userId: 'carol' });
    return ids;
  }

  before(async () => {
    t = await startTestApp();
    const lib = await library(t);
    [seed, rare, common, both, held] = [lib.seed!, lib.rare!, lib.common!, lib.both!, lib.held!];
  });
  after(() => t.close());

  it('related: media sharing rare features rank above media sharing only common ones', async () => {
    const page = await get(t, `/api/v1/media/${seed}/related?limit=20`, t.tenant.userKey);
    const ids = page.items.map((i) => i.id);
    assert.equal(ids[0], both, 'rare label + tag first');
    assert.equal(ids[1], rare);
    assert.ok(ids.indexOf(common) > ids.indexOf(rare), 'a common label alone ranks lower');
    assert.ok(!ids.includes(seed), 'not the seed itself');
    assert.ok(!ids.includes(held), 'not held media');
    const few = await get(t, `/api/v1/media/${seed}/related?limit=2`, t.tenant.userKey);
    assert.deepEqual(
      few.items.map((i) => i.id),
      [both, rare],
    );
  });

  it("related: another tenant's media is not found", async () => {
    expectProblem(await t.app.inject({ url: `/api/v1/media/${seed}/related`, headers: t.auth(t.other.userKey) }), 404, 'not-found');
    expectProblem(await t.app.inject({ url: '/api/v1/media/nope/related', headers: t.auth(t.tenant.userKey) }), 404, 'not-found');
    const theirs = await insertMedia(t, { tenantId: t.other.id, labels: ['rare'], caption: 'theirs' });
    const ids = (await get(t, `/api/v1/media/${seed}/related?limit=50`, t.tenant.userKey)).items.map((i) => i.id);
    assert.ok(!ids.includes(theirs));
  });

  it('recommended: the new feed until the user has uploads or views, then from what they viewed', async () => {
    const dave = t.tenant.adminKey;
    const daveHeaders = { ...t.auth(dave), 'x-qasar-user': 'dave' };
    const feed = async (url: string) => {
      const res = await t.app.inject({ url, headers: daveHeaders });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as Page;
    };
    const cold = await feed('/api/v1/feed/recommended?limit=5');
    const fresh = await get(t, '/api/v1/feed/new?limit=5', t.tenant.userKey);
    assert.deepEqual(
      cold.items.map((i) => i.id),
      fresh.items.map((i) => i.id),
      'no profile: the new feed',
    );
    const coldNext = await feed(`/api/v1/feed/recommended?limit=5&cursor=${encodeURIComponent(cold.next_cursor!)}`);
    const freshNext = await get(t, `/api/v1/feed/new?limit=5&cursor=${encodeURIComponent(fresh.next_cursor!)}`, t.tenant.userKey);
    assert.deepEqual(
      coldNext.items.map((i) => i.id),
      freshNext.items.map((i) => i.id),
    );

    const view = await t.app.inject({ url: `/api/v1/media/${rare}/package`, headers: daveHeaders });
    assert.equal(view.statusCode, 200, view.body);
    const warm = await feed('/api/v1/feed/recommended?limit=5');
    assert.deepEqual(
      new Set(warm.items.slice(0, 2).map((i) => i.id)),
      new Set([seed, both]),
      "first the media sharing the viewed media's rare label, not the viewed one or held media",
    );
    // Then the newest media dave has not opened, to the end of the library.
    const shown = warm.items.map((i) => i.id);
    for (let cursor = warm.next_cursor, pages = 0; cursor && pages < 10; pages++) {
      const page = await feed(`/api/v1/feed/recommended?limit=5&cursor=${encodeURIComponent(cursor)}`);
      shown.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
    }
    const newest = (await get(t, '/api/v1/feed/new?limit=100', t.tenant.userKey)).items.map((i) => i.id);
    assert.deepEqual(
      shown.slice(2),
      newest.filter((id) => ![seed, both, rare].includes(id)),
    );
    const views = await t.ctx.database.db.selectFrom('media_views').selectAll().where('user_id', '=', 'dave').execute();
    assert.equal(views.length, 1);
    assert.equal(views[0]!.media_id, rare);
    expectProblem(await t.app.inject({ url: '/api/v1/feed/recommended?cursor=x', headers: daveHeaders }), 400, 'validation-failed');
  });

  it('recommended: a short ranking is followed by the newest media the user neither uploaded nor opened, paged without repeats', async () => {
    const seen = await insertMedia(t, { caption: 'narwhal seen', labels: ['narwhal'], userId: 'carol' });
    // Older than everything else, so that only the ranking puts it first.
    const match = await insertMedia(t, { caption: 'narwhal match', labels: ['narwhal'], userId: 'carol', createdAt: daysAgo(400) });
    const opened = await insertMedia(t, { caption: 'opened before', userId: 'carol' });
    const own = await insertMedia(t, { caption: 'her own', userId: 'xena' });
    const xena = await user(t, 'xena');
    await xena.view(seen);
    await xena.view(opened);
    const key = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'xena' })).key;
    const newFeed: string[] = [];
    for (let cursor: string | null = '', pages = 0; cursor !== null && pages < 20; pages++) {
      const page = await get(t, `/api/v1/feed/new?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, key);
      newFeed.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
    }
    const expected = [match, ...newFeed.filter((id) => ![seen, match, opened, own].includes(id))];
    assert.ok(expected.length > 10, 'a library longer than the pages');
    // limit 3: the ranking ends inside the first page; limit 1: it fills the first page exactly.
    for (const limit of [3, 1]) {
      const shown: string[] = [];
      const sizes: number[] = [];
      for (let cursor: string | null = '', pages = 0; cursor !== null && pages < 100; pages++) {
        const page = await get(t, `/api/v1/feed/recommended?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, key);
        shown.push(...page.items.map((i) => i.id));
        sizes.push(page.items.length);
        cursor = page.next_cursor;
      }
      assert.deepEqual(shown, expected, `limit ${limit}: the ranking, then the newest media new to her, each once`);
      assert.ok(
        sizes.slice(0, -1).every((n) => n === limit),
        `limit ${limit}: every page but the last is full (${sizes})`,
      );
    }
    // A held media is never backfilled.
    const held = await insertMedia(t, { caption: 'held newest', moderation: 'held', userId: 'carol' });
    assert.ok(!(await xena.recommended(100)).includes(held));
    const fp = fingerprintOf(['feed:recommended', t.tenant.id, 'xena']);
    for (const bad of [
      ['fill', -1],
      ['fill', 1, 'yesterday'],
      ['fill', 'one'],
    ]) {
      const res = await t.app.inject({ url: `/api/v1/feed/recommended?cursor=${encodeCursor(fp, bad)}`, headers: t.auth(key) });
      expectProblem(res, 400, 'validation-failed');
    }
  });

  it('uses an external engine when configured, keeping only visible media of the tenant, and falls back on failure', async () => {
    let mode: 'ok' | 'fail' | 'hang' = 'ok';
    let answer: string[] = [];
    const ext = await recommender((_body, res) => {
      if (mode === 'hang') return;
      if (mode === 'fail') {
        res.statusCode = 500;
        res.end('boom');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ids: answer }));
    });
    const app = await startTestApp({ RECOMMENDER_URL: ext.url, RECOMMENDER_TIMEOUT: '300ms' });
    try {
      const lib = (await library(app)) as Record<string, string>;
      const theirs = await insertMedia(app, { tenantId: app.other.id, caption: 'theirs' });
      answer = [lib.common!, theirs, 'missing', lib.held!, lib.seed!, lib.rare!];
      const related = await get(app, `/api/v1/media/${lib.seed}/related?limit=5`, app.tenant.userKey);
      assert.deepEqual(ext.requests.at(-1), { tenant_id: app.tenant.id, media_id: lib.seed, limit: 20 });
      assert.deepEqual(
        related.items.map((i) => i.id),
        [lib.common, lib.rare],
        "the engine's order; other tenants', unknown, held ids and the seed dropped",
      );

      answer = [lib.both!, lib.common!];
      const headers = { ...app.auth(app.tenant.adminKey), 'x-qasar-user': 'erin' };
      const rec = await app.app.inject({ url: '/api/v1/feed/recommended?limit=1', headers });
      assert.equal(rec.statusCode, 200, rec.body);
      assert.deepEqual(ext.requests.at(-1), { tenant_id: app.tenant.id, user_id: 'erin', limit: 14 });
      assert.deepEqual(
        rec.json().items.map((i: { id: string }) => i.id),
        [lib.both],
      );
      const next = await app.app.inject({ url: `/api/v1/feed/recommended?limit=1&cursor=${encodeURIComponent(rec.json().next_cursor)}`, headers });
      assert.deepEqual(
        next.json().items.map((i: { id: string }) => i.id),
        [lib.common],
      );

      for (const m of ['fail', 'hang'] as const) {
        mode = m;
        const asked = ext.requests.length;
        const fallback = await get(app, `/api/v1/media/${lib.seed}/related?limit=2`, app.tenant.userKey);
        assert.equal(ext.requests.length, asked + 1, 'the engine was asked');
        assert.deepEqual(
          fallback.items.map((i) => i.id),
          [lib.both, lib.rare],
          `${m}: the built-in engine answers`,
        );
      }
    } finally {
      await app.close();
      await ext.close();
    }
  });

  /** A user of the tenant with a key of their own, and what they get. */
  async function user(app: TestApp, userId: string, tenantId = app.tenant.id) {
    const key = (await app.ctx.tenancy.createKey({ tenantId, userId })).key;
    return {
      view: async (mediaId: string) => {
        const res = await app.app.inject({ url: `/api/v1/media/${mediaId}/package`, headers: app.auth(key) });
        assert.equal(res.statusCode, 200, res.body);
      },
      recommended: async (limit = 20) => (await get(app, `/api/v1/feed/recommended?limit=${limit}`, key)).items.map((i) => i.id),
      /** The ranked head of their recommended feed (what comes after it is backfill). */
      ranked: async (n = 2) => (await get(app, `/api/v1/feed/recommended?limit=20`, key)).items.slice(0, n).map((i) => i.id),
      related: async (mediaId: string) => (await get(app, `/api/v1/media/${mediaId}/related?limit=20`, key)).items.map((i) => i.id),
    };
  }
  const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();

  // Each test uses labels of its own: the engine caches document frequencies for a minute.
  it('recency: of two otherwise equal media the newer ranks first', async () => {
    const seen = await insertMedia(t, { caption: 'lynx seen', labels: ['lynx'], userId: 'carol' });
    // The newer is inserted first, so that the id tie-break would put the older first.
    const newer = await insertMedia(t, { caption: 'lynx new', labels: ['lynx'], userId: 'carol', createdAt: daysAgo(1) });
    const older = await insertMedia(t, { caption: 'lynx old', labels: ['lynx'], userId: 'carol', createdAt: daysAgo(90) });
    const ruth = await user(t, 'ruth');
    assert.deepEqual(await ruth.related(seen), [newer, older]);
    await ruth.view(seen);
    assert.deepEqual(await ruth.ranked(), [newer, older]);
  });

  it('confidence: a shared label of higher confidence ranks above a lower one', async () => {
    const at = daysAgo(2);
    const seen = await insertMedia(t, { caption: 'puffin seen', labels: ['puffin'], userId: 'carol', createdAt: at });
    const high = await insertMedia(t, { caption: 'puffin sure', labels: ['puffin'], confidence: 0.95, userId: 'carol', createdAt: at });
    const low = await insertMedia(t, { caption: 'puffin unsure', labels: ['puffin'], confidence: 0.3, userId: 'carol', createdAt: at });
    const sam = await user(t, 'sam');
    assert.deepEqual(await sam.related(seen), [high, low]);
    await sam.view(seen);
    assert.deepEqual(await sam.ranked(), [high, low]);
  });

  it("the user's own uploads shape the recommended feed, however many there are", async () => {
    const kayaks = [
      await insertMedia(t, { caption: 'kayak a', labels: ['kayak'], userId: 'carol' }),
      await insertMedia(t, { caption: 'kayak b', tags: ['Paddle'], userId: 'carol' }),
    ];
    await insertMedia(t, { caption: 'unrelated', labels: ['zebra'], userId: 'carol' });
    // tess never viewed anything; she uploads (more than a ranking shortlist holds) media labelled kayak, tagged paddle.
    const hers = new Set<string>();
    for (let i = 0; i < 70; i++) hers.add(await insertMedia(t, { caption: `my kayak ${i}`, labels: ['kayak'], tags: ['paddle'], userId: 'tess' }));
    const tess = await user(t, 'tess');
    const first = await tess.recommended(5);
    assert.deepEqual(new Set(first.slice(0, 2)), new Set(kayaks), 'media sharing her uploads\u2019 label or tag');
    assert.ok(!first.some((id) => hers.has(id)), 'none of her own, backfill included');
    const newFeed = (await get(t, '/api/v1/feed/new?limit=5', t.tenant.userKey)).items.map((i) => i.id);
    assert.notDeepEqual(first, newFeed, 'not the new feed');
  });

  it('features only the seed has do not crowd out the ones it shares', async () => {
    const unique = Array.from({ length: 12 }, (_v, i) => `solo-${i}`);
    const seedId = await insertMedia(t, { caption: 'many unique labels', labels: ['kestrel', ...unique], tags: unique, userId: 'carol' });
    const sharing = await insertMedia(t, { caption: 'kestrel too', labels: ['kestrel'], confidence: 0.5, userId: 'carol' });
    const vic = await user(t, 'vic');
    assert.deepEqual(await vic.related(seedId), [sharing]);
  });

  it('related: media labelled with siblings under a common parent (a global bank) are related, below media sharing the label', async () => {
    // A global bank, as the operator imports one: its hierarchy applies to every tenant.
    await t.ctx.labelBanks.create({ global: true }, 'general', {
      name: 'fauna',
      entries: [
        { name: 'animal' },
        { name: 'deer', parent: 'animal' },
        { name: 'whale', parent: 'animal' },
        { name: 'vehicle' },
        { name: 'bicycle', parent: 'vehicle' },
      ],
    });
    const at = daysAgo(3);
    const deer = await insertMedia(t, { caption: 'deer seed', labels: ['deer'], userId: 'carol', createdAt: at });
    const otherDeer = await insertMedia(t, { caption: 'another deer', labels: ['deer'], userId: 'carol', createdAt: at });
    const whale = await insertMedia(t, { caption: 'a whale', labels: ['whale'], userId: 'carol', createdAt: at });
    const animal = await insertMedia(t, { caption: 'an animal', labels: ['animal'], userId: 'carol', createdAt: at });
    const bicycle = await insertMedia(t, { caption: 'a bicycle', labels: ['bicycle'], userId: 'carol', createdAt: at });
    const wendy = await user(t, 'wendy');
    assert.deepEqual(
      await wendy.related(deer),
      [otherDeer, animal, whale],
      'the shared label first, then the parent itself, then the sibling; nothing under another parent',
    );
    assert.deepEqual(await wendy.related(whale), [animal, otherDeer, deer], 'a whale relates to both deer, its siblings (equal: newer id first)');
    assert.deepEqual(await wendy.related(bicycle), [], 'a bicycle has no relatives');
    // The user's profile follows the hierarchy too: viewing a whale recommends the animals.
    await wendy.view(whale);
    assert.deepEqual((await wendy.recommended()).slice(0, 3), await wendy.related(whale));

    // The other tenant reads the same global bank: its deer and whale are related too.
    const theirDeer = await insertMedia(t, { tenantId: t.other.id, caption: 'their deer', labels: ['deer'], userId: 'carol', createdAt: at });
    const theirWhale = await insertMedia(t, { tenantId: t.other.id, caption: 'their whale', labels: ['whale'], userId: 'carol', createdAt: at });
    const theirs = await get(t, `/api/v1/media/${theirDeer}/related?limit=20`, t.other.userKey);
    assert.deepEqual(
      theirs.items.map((i) => i.id),
      [theirWhale],
    );
  });

  it("never recommends held or rejected media, nor another tenant's", async () => {
    const seen = await insertMedia(t, { caption: 'ibis seen', labels: ['ibis'], userId: 'carol' });
    const visible = await insertMedia(t, { caption: 'ibis visible', labels: ['ibis'], userId: 'carol' });
    const later = await insertMedia(t, { caption: 'ibis held later', labels: ['ibis'], userId: 'carol' });
    await insertMedia(t, { caption: 'ibis rejected', labels: ['ibis'], moderation: 'rejected', userId: 'carol' });
    const theirs = await insertMedia(t, { tenantId: t.other.id, caption: 'ibis theirs', labels: ['ibis'], userId: 'carol' });
    const uma = await user(t, 'uma');
    await uma.view(seen);
    assert.deepEqual(new Set(await uma.ranked(2)), new Set([visible, later]));
    assert.deepEqual(new Set(await uma.related(seen)), new Set([visible, later]));

    // Held through the moderation workflow after it was recommended.
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, later, [{ name: 'gore', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    const after = await uma.recommended(100);
    assert.equal(after[0], visible);
    assert.ok(!after.includes(later), 'nor in the backfill');
    assert.deepEqual(await uma.related(seen), [visible]);

    // The other tenant's uma, viewing their ibis, gets their other ibis first, and only their media after it.
    const theirsToo = await insertMedia(t, { tenantId: t.other.id, caption: 'ibis theirs too', labels: ['ibis'], userId: 'carol' });
    const otherUma = await user(t, 'uma', t.other.id);
    await otherUma.view(theirs);
    const theirFeed = await otherUma.recommended(100);
    assert.equal(theirFeed[0], theirsToo);
    const theirNew = new Set((await get(t, '/api/v1/feed/new?limit=100', t.other.userKey)).items.map((i) => i.id));
    assert.ok(
      theirFeed.every((id) => theirNew.has(id)),
      "only the other tenant's media",
    );
    assert.deepEqual(await otherUma.related(theirs), [theirsToo]);
    assert.ok(!(await uma.recommended(100)).includes(theirsToo));
  });
});
