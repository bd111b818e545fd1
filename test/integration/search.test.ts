import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { nowIso, toJson } from '../../src/db/schema.js';
import { writeTransaction } from '../../src/db/write-transaction.js';
import { newId } from '../../src/shared/ids.js';
import { ensureLabel } from '../../src/labels/media-label-store.js';
import { buildDocuments } from '../../src/search/documents.js';
import { createSearchIndex } from '../../src/search/search-index.js';
import { MAX_SEARCH_RESULTS } from '../../src/search/search-service.js';
import { loadSnapshot, saveSnapshot, SNAPSHOT_TTL_MS, sweepSnapshots } from '../../src/search/snapshots.js';
import { insertManyMedia, insertMedia } from '../support/media-seed.js';
import { RARE_FILTER_MEDIA } from '../../src/media/rare-filters.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

describe('search', () => {
  let t: TestApp;
  const search = async (query: string, key?: string) => {
    const res = await t.app.inject({ url: `/api/v1/search?${query}`, headers: t.auth(key ?? t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as {
      items: { id: string; score: number; caption: string | null; labels: string[]; playback: { hls: string | null } }[];
      next_cursor: string | null;
    };
  };
  const ids = async (query: string, key?: string) => (await search(query, key)).items.map((i) => i.id);

  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  it('ranks an exact caption match above a tag-only match', async () => {
    const tagOnly = await insertMedia(t, { caption: 'a walk in the park', tags: ['aurora'] });
    const captioned = await insertMedia(t, { caption: 'aurora over the fjord', tags: ['night'] });
    const result = await search('q=aurora');
    assert.deepEqual(
      result.items.map((i) => i.id),
      [captioned, tagOnly],
    );
    assert.ok(result.items[0]!.score > result.items[1]!.score);
    assert.equal(result.items[0]!.caption, 'aurora over the fjord');
  });

  it('finds uploads by file name, caption, tags and labels given at upload', async () => {
    const client = new SessionClient(t.app, t.tenant.userKey);
    const { completed } = await client.uploadWhole(Buffer.from('plain text notes\n'), {
      filename: 'quarterly_zebrafish-report.txt',
      extra: { caption: 'Résumé of the harbour survey', user_tags: ['Lighthouse'], labels: ['seagull'] },
    });
    assert.equal(completed.statusCode, 201, completed.body);
    const id = completed.json().id as string;
    for (const q of ['zebrafish', 'resume', 'harbour survey', 'lighthouse', 'seagull', 'quarterly report']) {
      assert.deepEqual(await ids(`q=${encodeURIComponent(q)}`), [id], q);
    }
  });

  it('matches the last word as a prefix for type-ahead, and only whole words before it', async () => {
    const id = await insertMedia(t, { caption: 'kaleidoscope patterns in glass' });
    assert.deepEqual(await ids('q=kal'), [id]);
    assert.deepEqual(await ids('q=glass%20kaleido'), [id]);
    assert.deepEqual(await ids(`q=${encodeURIComponent('kaleido ')}`), [], 'a trailing space ends the word');
    assert.deepEqual(await ids('q=kaleidoscope%20gla'), [id]);
    assert.deepEqual(await ids('q=kaleido%20pattern%20glass'), [], 'only the last word is a prefix');
  });

  it('never passes user syntax to the engine', async () => {
    const id = await insertMedia(t, { caption: 'quoted "tricky" OR NEAR stuff' });
    for (const q of ['"tricky', 'tricky*', 'tricky:', '-tricky', 'tricky OR', '(tricky)', "tricky'", 'tricky & !', 'NEAR(tricky']) {
      assert.deepEqual(await ids(`q=${encodeURIComponent(q)}`), [id], q);
    }
  });

  it('finds media by a label synonym (bank phrase) and by a parent label', async () => {
    const db = t.ctx.database.db;
    const at = nowIso();
    const bankId = newId();
    await db
      .insertInto('label_banks')
      .values({ id: bankId, tenant_id: t.tenant.id, name: 'animals', kind: 'general', description: null, created_at: at, updated_at: at })
      .execute();
    const felineEntry = newId();
    await db
      .insertInto('label_bank_entries')
      .values({ id: felineEntry, bank_id: bankId, tenant_id: t.tenant.id, name: 'feline', label_id: null, parent_id: null, threshold: null, created_at: at })
      .execute();
    await db
      .insertInto('label_bank_entries')
      .values({ id: newId(), bank_id: bankId, tenant_id: t.tenant.id, name: 'ocelot', label_id: null, parent_id: felineEntry, threshold: null, created_at: at })
      .execute();
    await db.insertInto('label_bank_phrases').values({ id: newId(), entry_id: felineEntry, tenant_id: t.tenant.id, phrase: 'wildcat' }).execute();
    const parent = await ensureLabel(db, t.tenant.id, 'feline');
    const child = await ensureLabel(db, t.tenant.id, 'ocelot');
    await db.updateTable('labels').set({ parent_id: parent }).where('id', '=', child).execute();
    const id = await insertMedia(t, { caption: 'in the jungle at dusk', labels: ['ocelot'] });
    assert.deepEqual(await ids('q=ocelot'), [id]);
    assert.deepEqual(await ids('q=feline'), [id], 'the parent label finds media labelled with a child');
    assert.deepEqual(await ids('q=wildcat'), [id], 'the bank phrase of an ancestor is a synonym');
    assert.deepEqual(await ids('q=jungle&label=feline'), [id], 'label filter includes descendants');
    assert.deepEqual(await ids('q=jungle&label=wildcat'), [id], 'label filter by synonym');
    assert.deepEqual(await ids('q=jungle&label=canine'), []);
  });

  it('filters by kind, status, label and creation date', async () => {
    const old = await insertMedia(t, { caption: 'filterable one', kind: 'audio', createdAt: '2020-01-01T00:00:00.000Z', labels: ['podcast'] });
    const image = await insertMedia(t, { caption: 'filterable two', kind: 'image' });
    const queued = await insertMedia(t, { caption: 'filterable three', status: 'queued' });
    const all = await ids('q=filterable');
    assert.deepEqual(new Set(all), new Set([old, image]), 'ready only by default');
    assert.deepEqual(await ids('q=filterable&kind=image'), [image]);
    assert.deepEqual(await ids('q=filterable&label=podcast'), [old]);
    assert.deepEqual(await ids('q=filterable&status=queued'), [queued]);
    assert.deepEqual(await ids('q=filterable&to=2021-01-01T00:00:00Z'), [old]);
    assert.deepEqual(await ids('q=filterable&from=2021-01-01T00:00:00Z'), [image]);
    expectProblem(await t.app.inject({ url: '/api/v1/search?q=filterable&kind=movie', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(await t.app.inject({ url: '/api/v1/search?q=filterable&from=yesterday', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(
      await t.app.inject({ url: '/api/v1/search?q=filterable&from=2022-01-01T00:00:00Z&to=2021-01-01T00:00:00Z', headers: t.auth(t.tenant.userKey) }),
      400,
      'validation-failed',
    );
  });

  it('lists media by filters alone (no q), newest first, a parent label finding its descendants', async () => {
    const bank = await t.app.inject({
      method: 'POST',
      url: '/api/v1/label-banks',
      headers: t.auth(t.tenant.adminKey),
      payload: { name: 'fauna', entries: [{ name: 'animal' }, { name: 'deer', parent: 'animal' }, { name: 'whale', parent: 'animal' }] },
    });
    assert.equal(bank.statusCode, 201, bank.body);
    const base = Date.parse('2025-03-01T00:00:00Z');
    const at = (i: number) => new Date(base + i * 60_000).toISOString();
    const deer = await insertMedia(t, { caption: 'a deer in the meadow', labels: ['deer'], createdAt: at(1) });
    const whale = await insertMedia(t, { caption: 'a whale breaching', labels: ['whale'], kind: 'image', createdAt: at(2) });
    const animal = await insertMedia(t, { caption: 'some animal', labels: ['animal'], createdAt: at(3) });
    await insertMedia(t, { caption: 'a bicycle in the meadow', labels: ['bicycle'], createdAt: at(4) });
    const heldDeer = await insertMedia(t, { caption: 'a held deer', labels: ['deer'], moderation: 'held', userId: 'bob', createdAt: at(5) });
    const queuedDeer = await insertMedia(t, { caption: 'a queued deer', labels: ['deer'], status: 'queued', createdAt: at(6) });
    const ownHeld = await insertMedia(t, { caption: "alice's held whale", labels: ['whale'], moderation: 'held', createdAt: at(7) });
    await insertMedia(t, { tenantId: t.other.id, caption: 'their deer', labels: ['deer'], createdAt: at(8) });

    const animals = await search('label=animal');
    assert.deepEqual(
      animals.items.map((i) => i.id),
      [ownHeld, animal, whale, deer],
      "newest first: ready media, and alice's own held one; not bob's held nor the queued one",
    );
    assert.ok(
      animals.items.every((i) => i.score === undefined),
      'no relevance, no score',
    );
    assert.deepEqual(await ids('label=animal', t.tenant.adminKey), [ownHeld, heldDeer, animal, whale, deer], 'an admin key sees held media');
    assert.deepEqual(await ids('label=deer'), [deer]);
    assert.deepEqual(await ids('label=DEER&status=queued'), [queuedDeer]);
    assert.deepEqual(await ids('label=animal&kind=image'), [whale]);
    assert.deepEqual(await ids('kind=image&label=whale'), [whale]);
    assert.deepEqual(await ids(`label=animal&from=${encodeURIComponent(at(2))}&to=${encodeURIComponent(at(4))}`), [animal, whale]);
    assert.deepEqual(await ids('label=unicorn'), [], 'a label nobody has finds nothing');
    assert.deepEqual(await ids('q=meadow&label=animal'), [deer], 'words and a label filter together, as before');
    const feed = await t.app.inject({ url: '/api/v1/feed/search?label=animal', headers: t.auth(t.tenant.adminKey) });
    assert.equal(feed.statusCode, 200, feed.body);
    assert.deepEqual(
      feed.json().items.map((i: { id: string }) => i.id),
      [animal, whale, deer],
      'the search feed: ready media moderation has not held, whoever asks',
    );

    // Paged by the same opaque cursors; media added between pages are newer and never show up.
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await search(`label=animal&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
      pages++;
      await insertMedia(t, { caption: 'a deer arriving meanwhile', labels: ['deer'] });
    } while (cursor && pages < 10);
    assert.equal(pages, 2);
    assert.deepEqual(seen, [ownHeld, animal, whale, deer]);

    const get = (q: string) => t.app.inject({ url: `/api/v1/search?${q}`, headers: t.auth(t.tenant.userKey) });
    const wordCursor = (await search('q=meadow&limit=1')).next_cursor!;
    const listCursor = (await search('label=animal&limit=1')).next_cursor!;
    expectProblem(await get(`label=deer&cursor=${encodeURIComponent(listCursor)}`), 400, 'validation-failed');
    expectProblem(await get(`q=meadow&label=animal&cursor=${encodeURIComponent(listCursor)}`), 400, 'validation-failed');
    expectProblem(await get(`label=animal&cursor=${encodeURIComponent(wordCursor)}`), 400, 'validation-failed');
    expectProblem(await get('label=%20%20'), 400, 'validation-failed');
    expectProblem(await get('limit=5'), 400, 'validation-failed');
    expectProblem(await get('label=animal&kind=movie'), 400, 'validation-failed');
  });

  it(`lists by a label more than ${RARE_FILTER_MEDIA} media carry (the library walked newest first) as by a rarer one`, async () => {
    const bank = await t.app.inject({
      method: 'POST',
      url: '/api/v1/label-banks',
      headers: t.auth(t.tenant.adminKey),
      payload: { name: 'flora', entries: [{ name: 'plant' }, { name: 'grass', parent: 'plant' }, { name: 'moss', parent: 'plant' }] },
    });
    assert.equal(bank.statusCode, 201, bank.body);
    const newest = Date.parse('2024-02-01T00:00:00Z');
    const grass = await insertManyMedia(t, RARE_FILTER_MEDIA + 50, { labels: ['grass'], newest });
    // Three moss images among the newest grass, a half second after three of them.
    const moss = [];
    for (const back of [70, 30, 2]) {
      moss.push(await insertMedia(t, { kind: 'image', labels: ['moss'], createdAt: new Date(newest - back * 1000 + 500).toISOString() }));
    }
    const pages = async (query: string, limit: number, count: number) => {
      const out: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < count; i++) {
        const page = await search(`${query}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        out.push(...page.items.map((m) => m.id));
        cursor = page.next_cursor;
      }
      return out;
    };
    const newestGrass = [...grass].reverse();
    assert.deepEqual(await pages('label=grass', 40, 3), newestGrass.slice(0, 120));
    const plants = [...newestGrass.slice(0, 2), moss[2], ...newestGrass.slice(2, 30), moss[1], ...newestGrass.slice(30, 70), moss[0], ...newestGrass.slice(70)];
    assert.deepEqual(await pages('label=plant', 50, 2), plants.slice(0, 100), 'the parent: grass and moss media in order of creation');
    assert.deepEqual(await ids('label=plant&kind=image'), [...moss].reverse(), 'a common label with a filter it rarely meets');
    assert.deepEqual(await ids('label=moss'), [...moss].reverse());
  });

  it('refuses empty, overlong and wordless queries and bad cursors', async () => {
    const get = (q: string) => t.app.inject({ url: `/api/v1/search?${q}`, headers: t.auth(t.tenant.userKey) });
    expectProblem(await get(''), 400, 'validation-failed');
    expectProblem(await get('q='), 400, 'validation-failed');
    expectProblem(await get(`q=${'a'.repeat(201)}`), 400, 'validation-failed');
    expectProblem(await get(`q=${encodeURIComponent('!!! ***')}`), 400, 'validation-failed');
    expectProblem(await get('q=aurora&cursor=garbage'), 400, 'validation-failed');
    expectProblem(await get('q=aurora&limit=0'), 400, 'validation-failed');
    expectProblem(await get('q=aurora&limit=101'), 400, 'validation-failed');
  });

  it('paginates stably: no duplicates or misses when media are added between pages', async () => {
    const made: string[] = [];
    for (let i = 0; i < 7; i++) made.push(await insertMedia(t, { caption: `marmalade jar number ${i}` }));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await search(`q=marmalade&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
      pages++;
      // A better match arriving mid-way would shift an offset-based page.
      await insertMedia(t, { caption: 'marmalade', title: 'marmalade' });
    } while (cursor && pages < 10);
    assert.equal(pages, 3);
    assert.equal(new Set(seen).size, seen.length, 'no duplicates');
    assert.deepEqual(new Set(seen), new Set(made), 'no misses and nothing added later');
    expectProblem(
      await t.app.inject({
        url: `/api/v1/search?q=aurora&cursor=${encodeURIComponent((await search('q=marmalade&limit=1')).next_cursor!)}`,
        headers: t.auth(t.tenant.userKey),
      }),
      400,
      'validation-failed',
    );
  });

  it('paginates a multi-word query stably while media are added (here and in another tenant) and deleted between pages', async () => {
    // Orange-heavy and marmalade-heavy captions: their order depends on how rare each word is.
    const captions = [
      'orange orange orange orange orange marmalade',
      'orange orange orange orange marmalade',
      'orange orange orange marmalade',
      'orange orange marmalade',
      'orange marmalade marmalade',
      'orange marmalade marmalade marmalade',
      'orange marmalade marmalade marmalade marmalade',
      'orange marmalade marmalade marmalade marmalade marmalade',
    ];
    const made = [];
    for (const caption of captions) made.push(await insertMedia(t, { caption }));
    const seen: { id: string; score: number }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await search(`q=${encodeURIComponent('orange marmalade')}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...page.items.map((i) => ({ id: i.id, score: i.score })));
      cursor = page.next_cursor;
      pages++;
      // A better match arrives mid-way, and "orange" becomes common (here and in another tenant),
      // which reorders the earlier media under corpus-wide statistics.
      await insertMedia(t, { caption: 'orange marmalade', title: 'orange marmalade orange marmalade' });
      for (let i = 0; i < 12; i++) await insertMedia(t, { caption: `orange squash ${i}` });
      for (let i = 0; i < 4; i++) await insertMedia(t, { tenantId: t.other.id, caption: `orange orange squash ${'filler '.repeat(i * 5)}` });
    } while (cursor && pages < 20);
    assert.equal(pages, 4);
    const shown = seen.map((s) => s.id);
    assert.equal(new Set(shown).size, shown.length, 'no duplicates');
    assert.deepEqual(new Set(shown), new Set(made), 'no misses and nothing added later');
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.score <= seen[i - 1]!.score, `ranked across pages at ${i}`);

    // A media deleted before its page is left out; the rest still come, once.
    const first = await search(`q=${encodeURIComponent('orange marmalade')}&limit=3`);
    const later = made.filter((id) => !first.items.some((i) => i.id === id));
    const gone = later[0]!;
    assert.equal((await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${gone}`, headers: t.auth(t.tenant.adminKey) })).statusCode, 204);
    const rest: string[] = [];
    cursor = first.next_cursor;
    while (cursor) {
      const page = await search(`q=${encodeURIComponent('orange marmalade')}&limit=3&cursor=${encodeURIComponent(cursor)}`);
      rest.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
    }
    const all = [...first.items.map((i) => i.id), ...rest];
    assert.ok(all.length > made.length, 'a new search sees the media added since');
    assert.ok(!rest.includes(gone), 'the deleted media is left out');
    assert.equal(new Set(all).size, all.length);

    // Another tenant's key cannot use the cursor to read this tenant's results.
    const mine = await search(`q=${encodeURIComponent('orange marmalade')}&limit=1`);
    const res = await t.app.inject({
      url: `/api/v1/search?q=${encodeURIComponent('orange marmalade')}&limit=1&cursor=${encodeURIComponent(mine.next_cursor!)}`,
      headers: t.auth(t.other.userKey),
    });
    if (t.ctx.database.dialect === 'postgres') {
      // A keyset cursor holds no ids: in another tenant's hands it pages through that tenant's own results.
      assert.equal(res.statusCode, 200, res.body);
      const theirs = new Set(await ids(`q=${encodeURIComponent('orange marmalade')}&limit=100`, t.other.userKey));
      for (const item of res.json().items as { id: string }[]) assert.ok(theirs.has(item.id), 'only their own media');
    } else expectProblem(res, 400, 'validation-failed'); // the snapshot is this tenant's
  });

  it("ranks a tenant's media the same whatever other tenants index", async () => {
    await insertMedia(t, { caption: 'walrus on the ice', tags: ['walrus'] });
    await insertMedia(t, { title: 'walrus', caption: 'a very long caption about many things and also one walrus' });
    await insertMedia(t, { caption: 'walrus walrus', description: 'tusks' });
    const before = await search(`q=${encodeURIComponent('walrus ice')}`);
    const beforeAll = await search('q=walrus');
    for (let i = 0; i < 25; i++)
      await insertMedia(t, { tenantId: t.other.id, caption: `walrus ${'ice '.repeat(i % 4)}${'word '.repeat(i)}`, tags: i % 2 ? ['walrus'] : [] });
    const after = await search(`q=${encodeURIComponent('walrus ice')}`);
    const afterAll = await search('q=walrus');
    assert.equal(beforeAll.items.length, 3);
    assert.deepEqual(
      after.items.map((i) => [i.id, i.score]),
      before.items.map((i) => [i.id, i.score]),
    );
    assert.deepEqual(
      afterAll.items.map((i) => [i.id, i.score]),
      beforeAll.items.map((i) => [i.id, i.score]),
    );
  });

  it(`pages through at most ${MAX_SEARCH_RESULTS} results of one search`, async () => {
    const db = t.ctx.database.db;
    const at = nowIso();
    const made: string[] = [];
    for (let b = 0; b < MAX_SEARCH_RESULTS + 20; b += 130) {
      const rows = Array.from({ length: 130 }, (_, k) => {
        const id = newId();
        made.push(id);
        return {
          id,
          tenant_id: t.tenant.id,
          user_id: 'alice',
          status: 'ready' as const,
          error_code: null,
          error_reason: null,
          kind: 'image' as const,
          original_filename: `pebble-${b + k}.jpg`,
          mime_type: 'image/jpeg',
          size: 10,
          sha256: 'x'.repeat(64),
          caption: `pebble ${'stone '.repeat(k % 7)}`,
          user_tags: toJson([]),
          file_metadata: toJson({}),
          upload_session_id: null,
          created_at: at,
          updated_at: at,
          processing_started_at: null,
          ready_at: at,
          playback_key: randomBytes(8).toString('hex'),
          title: null,
          description: null,
        };
      });
      await db.insertInto('mediaassets').values(rows).execute();
      await t.ctx.discovery.indexer.reindexMany(
        t.tenant.id,
        rows.map((r) => r.id),
      );
    }
    assert.ok(made.length > MAX_SEARCH_RESULTS);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await search(`q=pebble&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 20);
    assert.equal(seen.length, MAX_SEARCH_RESULTS);
    assert.equal(new Set(seen).size, seen.length);
    assert.ok(seen.every((id) => made.includes(id)));
  });

  it('finds media by words of its caption tracks, until the track is removed', async () => {
    const id = await insertMedia(t, { caption: 'wharfside at dawn', kind: 'video' });
    const srt = ['1', '00:00:01,000 --> 00:00:03,000', 'The quetzal feathers shimmer', '', '2', '00:00:04,000 --> 00:00:06,000', 'Over the lagoon', ''].join(
      '\n',
    );
    const put = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/media/${id}/captions/en`,
      headers: { ...t.auth(t.tenant.userKey), 'content-type': 'application/x-subrip' },
      payload: srt,
    });
    assert.equal(put.statusCode, 201, put.body);
    assert.deepEqual(await ids('q=quetzal'), [id], 'a word only the track has');
    assert.deepEqual(await ids(`q=${encodeURIComponent('lagoon wharfside')}`), [id], 'track and caption words together');
    assert.deepEqual(await ids('q=quetzal', t.other.userKey), []);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}/captions/en`, headers: t.auth(t.tenant.userKey) });
    assert.equal(del.statusCode, 204, del.body);
    assert.deepEqual(await ids('q=quetzal'), [], 'gone with the track');
    assert.deepEqual(await ids('q=wharfside'), [id]);
  });

  it('writes a document too long for a PostgreSQL tsvector with its long text cut, and the rest of its batch as they are', async () => {
    const small = await insertMedia(t, { caption: 'ordinary kittiwake' });
    const huge = await insertMedia(t, { caption: 'enormous pelagic' });
    const [a, b] = await buildDocuments(t.ctx.database.db, t.tenant.id, [small, huge].sort());
    const docs = [a!, b!].map((d) =>
      d.mediaId === huge
        ? // 120,000 distinct words: about 2 MB as a tsvector, past PostgreSQL's 1 MB (built here, past the body's own bound).
          { ...d, body: Array.from({ length: 120_000 }, (_, i) => `w${i.toString(36).padStart(9, '0')}`).join(' ') }
        : d,
    );
    const index = createSearchIndex(t.ctx.database);
    await writeTransaction(t.ctx.database, (trx) => index.upsert(trx, docs));
    t.ctx.discovery.searchCache.clear();
    assert.deepEqual(await ids('q=kittiwake'), [small]);
    assert.deepEqual(await ids('q=pelagic'), [huge]);
    assert.deepEqual(await ids('q=w000000000'), [huge], 'the first words of its body are kept');
    const last = `w${(119_999).toString(36).padStart(9, '0')}`;
    // FTS5 has no such limit; PostgreSQL keeps the first part of the body only.
    assert.deepEqual(await ids(`q=${last}`), t.ctx.database.dialect === 'postgres' ? [] : [huge]);
  });

  it('follows PATCH of caption, title, description and tags', async () => {
    const id = await insertMedia(t, { caption: 'plain beginning', tags: ['oldtag'] });
    const patch = async (body: Record<string, unknown>) => {
      const res = await t.app.inject({ method: 'PATCH', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey), payload: body });
      assert.equal(res.statusCode, 200, res.body);
    };
    await patch({ caption: 'Zanzibar spice market', title: 'Cinnamon Stalls', description: 'cardamom everywhere' });
    assert.deepEqual(await ids('q=zanzibar'), [id]);
    assert.deepEqual(await ids('q=cinnamon'), [id]);
    assert.deepEqual(await ids('q=cardamom'), [id]);
    assert.deepEqual(await ids('q=beginning'), [], 'the old caption is gone');
    await patch({ tags: { add: ['Nutmeg'], remove: ['OLDTAG'] } });
    assert.deepEqual(await ids('q=nutmeg'), [id]);
    assert.deepEqual(await ids('q=oldtag'), []);
    await patch({ caption: null, title: null });
    assert.deepEqual(await ids('q=zanzibar'), []);
    assert.deepEqual(await ids('q=cinnamon'), []);
    assert.deepEqual(await ids('q=cardamom'), [id]);
  });

  it('follows updates and deletes', async () => {
    const id = await insertMedia(t, { caption: 'before the update' });
    assert.deepEqual(await ids('q=before'), [id]);
    await t.ctx.database.db.updateTable('mediaassets').set({ caption: 'pomegranate afterwards' }).where('id', '=', id).execute();
    await t.ctx.changes.emit({ tenantId: t.tenant.id, mediaId: id, reason: 'metadata' });
    assert.deepEqual(await ids('q=before'), []);
    assert.deepEqual(await ids('q=pomegranate'), [id]);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.adminKey) });
    assert.equal(del.statusCode, 204);
    assert.deepEqual(await ids('q=pomegranate'), []);
    if (t.ctx.database.dialect === 'sqlite') {
      const rows = await t.ctx.database.db.selectFrom('media_search_docs').select('id').where('media_id', '=', id).execute();
      assert.equal(rows.length, 0, 'the document is removed');
    } else {
      const rows = await t.ctx.database.db.selectFrom('media_search').select('media_id').where('media_id', '=', id).execute();
      assert.equal(rows.length, 0, 'the document is removed');
    }
  });

  it("never finds another tenant's media", async () => {
    const mine = await insertMedia(t, { caption: 'xylophone concert' });
    const theirs = await insertMedia(t, { tenantId: t.other.id, caption: 'xylophone concert' });
    assert.deepEqual(await ids('q=xylophone'), [mine]);
    assert.deepEqual(await ids('q=xylophone', t.other.userKey), [theirs]);
  });

  it('hides media held or rejected by moderation except from its owner and admins', async () => {
    const held = await insertMedia(t, { caption: 'quokka selfie', moderation: 'held', userId: 'bob' });
    const approved = await insertMedia(t, { caption: 'quokka portrait', moderation: 'approved', userId: 'bob' });
    const rejected = await insertMedia(t, { caption: 'quokka blur', moderation: 'rejected', userId: 'alice' });
    assert.deepEqual(new Set(await ids('q=quokka')), new Set([approved, rejected]), 'alice sees her own rejected media');
    assert.deepEqual(new Set(await ids('q=quokka', t.tenant.adminKey)), new Set([held, approved, rejected]));
    const feed = await t.app.inject({ url: '/api/v1/feed/search?q=quokka', headers: t.auth(t.tenant.adminKey) });
    assert.equal(feed.statusCode, 200, feed.body);
    assert.deepEqual(
      feed.json().items.map((i: { id: string }) => i.id),
      [approved],
      'feeds never show held or rejected media',
    );
  });

  it('indexes media created before the index existed (backfill)', async () => {
    const db = t.ctx.database.db;
    const id = await insertMedia(t, { caption: 'platypus backfill' });
    await t.ctx.discovery.indexer.removeMedia(t.tenant.id, [id]);
    assert.deepEqual(await ids('q=platypus'), []);
    assert.ok((await t.ctx.discovery.indexer.backfill()) >= 1);
    assert.deepEqual(await ids('q=platypus'), [id]);
    const tags = await db.selectFrom('media_tags').select('tag').where('media_id', '=', id).execute();
    assert.equal(tags.length, 0);
  });

  it('sweeps expired ranking snapshots apart from searches, in batches (SQLite; PostgreSQL pages by keyset)', async () => {
    const db = t.ctx.database.db;
    if (t.ctx.database.dialect === 'postgres') {
      await assert.rejects(db.selectFrom('search_snapshots').select('id').execute(), /does not exist/, 'no snapshots on PostgreSQL');
      return;
    }
    const hits = [
      { mediaId: 'a', score: 2 },
      { mediaId: 'b', score: 1 },
    ];
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await saveSnapshot(db, t.tenant.id, 'fp', hits));
    assert.deepEqual(await loadSnapshot(db, t.tenant.id, 'fp', ids[0]!), hits);
    assert.equal(await sweepSnapshots(db), 0, 'none has expired yet');
    // Earlier searches of this file left snapshots too: an hour on, every one has expired.
    const all = (await db.selectFrom('search_snapshots').select('id').execute()).length;
    assert.ok(all >= 5);
    const later = Date.now() + SNAPSHOT_TTL_MS + 1000;
    assert.equal(await sweepSnapshots(db, later, 2), all, 'every expired one, two per statement');
    assert.deepEqual(await db.selectFrom('search_snapshots').select('id').execute(), []);
  });

  it('is described in the OpenAPI document', async () => {
    const doc = (await t.app.inject({ url: '/openapi.json' })).json();
    for (const p of ['/api/v1/search', '/api/v1/feed/new', '/api/v1/feed/recommended', '/api/v1/feed/search', '/api/v1/media/{media_id}/related']) {
      assert.ok(doc.paths[p]?.get, p);
    }
  });
});

describe('search of a very common word (SEARCH_RANK_CANDIDATES)', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ SEARCH_RANK_CANDIDATES: '10' });
  });
  after(() => t.close());

  it('ranks only the most recent matches past the cap, and every match when filters leave too few', async () => {
    const base = Date.now() - 60_000;
    const at = (i: number) => new Date(base + i * 1000).toISOString();
    // The two oldest are the best matches by far; twelve newer ones mention the word once.
    const oldest = [
      await insertMedia(t, { title: 'heron heron', caption: 'heron heron heron', labels: ['wader'], createdAt: at(0) }),
      await insertMedia(t, { title: 'heron heron', caption: 'heron heron heron', labels: ['wader'], createdAt: at(1) }),
    ];
    const newer: string[] = [];
    for (let i = 0; i < 12; i++)
      newer.push(await insertMedia(t, { caption: `a walk by the lake, heron number ${i}, and more words to make it longer`, createdAt: at(2 + i) }));
    const get = async (query: string) => {
      const res = await t.app.inject({ url: `/api/v1/search?${query}`, headers: t.auth(t.tenant.userKey) });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json().items as { id: string }[]).map((i) => i.id);
    };
    const capped = await get('q=heron&limit=50');
    if (t.ctx.database.dialect === 'sqlite') {
      assert.equal(capped.length, 10, 'fourteen match; on SQLite the ten most recent are ranked');
      assert.deepEqual(new Set(capped), new Set(newer.slice(2)));
    } else {
      assert.deepEqual(capped.slice(0, 2).sort(), [...oldest].sort(), 'PostgreSQL ranks every match: the best two first');
      assert.equal(capped.length, 14);
    }
    // A filter that the recent candidates do not pass: every match is filtered, then ranked.
    assert.deepEqual(new Set(await get('q=heron&label=wader')), new Set(oldest));
    // Filters that keep at least half of the recent candidates stay within them.
    assert.deepEqual(new Set(await get('q=heron&kind=video&limit=50')), new Set(capped));
  });
});
