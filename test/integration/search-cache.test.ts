import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildDocuments } from '../../src/search/documents.js';
import { createSearchIndex } from '../../src/search/search-index.js';
import { ManualClock } from '../../src/shared/clock.js';
import { startTestApp, type TestApp } from '../support/harness.js';
import { insertMedia } from '../support/media-seed.js';

describe('search result cache (SEARCH_CACHE_TTL)', () => {
  let t: TestApp;
  const ids = async (query: string, key?: string) => {
    const res = await t.app.inject({ url: `/api/v1/search?${query}`, headers: t.auth(key ?? t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    return (res.json() as { items: { id: string }[] }).items.map((i) => i.id);
  };
  /** Indexes a media the way another process would: straight into the index, telling no one here. */
  const indexQuietly = async (mediaId: string) => {
    const index = createSearchIndex(t.ctx.database, t.ctx.settings.searchRankCandidates);
    await index.upsert(t.ctx.database.db, await buildDocuments(t.ctx.database.db, t.tenant.id, [mediaId]));
  };

  const clock = new ManualClock();
  before(async () => {
    t = await startTestApp({ SEARCH_CACHE_TTL: '1s' }, { clock });
  });
  after(() => t.close());

  it('reuses a ranking until a write through this process, which shows at once', async () => {
    const first = await insertMedia(t, { caption: 'okapi in the rain forest' });
    const quiet = await insertMedia(t, { caption: 'placeholder' });
    assert.deepEqual(await ids('q=okapi'), [first]);
    // Written past this process: the ranking made a moment ago is reused, without the new match.
    await t.ctx.database.db.updateTable('mediaassets').set({ caption: 'okapi calf' }).where('id', '=', quiet).execute();
    await indexQuietly(quiet);
    assert.deepEqual(await ids('q=okapi'), [first], 'a match indexed by another process waits for the cached ranking to expire');
    const told = await insertMedia(t, { caption: 'okapi mother and okapi calf' });
    assert.deepEqual((await ids('q=okapi')).sort(), [first, quiet, told].sort(), 'a write through this process forgets the cached ranking');
  });

  it('shows writes of other processes once the ranking expires, serving it meanwhile while it is ranked again', async () => {
    const seen = await insertMedia(t, { caption: 'quokka smiling' });
    const other = await insertMedia(t, { caption: 'placeholder' });
    assert.deepEqual(await ids('q=quokka'), [seen]);
    await t.ctx.database.db.updateTable('mediaassets').set({ caption: 'quokka jumping' }).where('id', '=', other).execute();
    await indexQuietly(other);
    assert.deepEqual(await ids('q=quokka'), [seen], 'still the cached ranking');
    clock.advance(999);
    assert.deepEqual(await ids('q=quokka'), [seen], 'still fresh just before its time');
    // Past its time (1 s) but within as long again: served once more while it is ranked anew.
    clock.advance(1);
    assert.deepEqual(await ids('q=quokka'), [seen], 'the expired ranking, while a new one is made');
    // The new ranking replaces it once made in the background (no clock move needed).
    const deadline = Date.now() + 10_000;
    let now = await ids('q=quokka');
    while (now.length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      now = await ids('q=quokka');
    }
    assert.deepEqual(now.sort(), [seen, other].sort());
  });

  it('forgets rankings after the index write commits, so a search during the write is not kept', async () => {
    const first = await insertMedia(t, { caption: 'tapir by the river' });
    const second = await insertMedia(t, { caption: 'placeholder' });
    assert.deepEqual(await ids('q=tapir'), [first]);
    await t.ctx.database.db.updateTable('mediaassets').set({ caption: 'tapir calf' }).where('id', '=', second).execute();
    // A search started while the write's transaction is open (on PostgreSQL it runs on another
    // connection and sees the old index) must not leave its ranking behind.
    const index = (t.ctx.discovery.indexer as unknown as { index: { upsert: (...a: unknown[]) => Promise<void> } }).index;
    const upsert = index.upsert.bind(index);
    let during: Promise<string[]> | undefined;
    index.upsert = async (...a: unknown[]) => {
      await upsert(...a);
      during = ids('q=tapir');
      await new Promise((r) => setTimeout(r, 50));
    };
    try {
      await t.ctx.discovery.indexer.reindexMedia(t.tenant.id, second);
    } finally {
      index.upsert = upsert;
    }
    await during;
    assert.deepEqual((await ids('q=tapir')).sort(), [first, second].sort());
  });

  it('pages a reused ranking at any page size, whichever size ranked it', async () => {
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await insertMedia(t, { caption: `gecko number ${i}` }));
    const bigPage = await t.app.inject({ url: '/api/v1/search?q=gecko&limit=10', headers: t.auth(t.tenant.userKey) });
    assert.equal(bigPage.json().items.length, 5);
    assert.equal(bigPage.json().next_cursor, null);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { json(): { items: { id: string }[]; next_cursor: string | null } } = await t.app.inject({
        url: `/api/v1/search?q=gecko&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        headers: t.auth(t.tenant.userKey),
      });
      seen.push(...res.json().items.map((i) => i.id));
      cursor = res.json().next_cursor;
    } while (cursor && seen.length < 10);
    assert.deepEqual(seen.sort(), [...made].sort());
  });

  it('never shows media deleted or hidden since the ranking was made, and keeps users apart', async () => {
    const a = await insertMedia(t, { caption: 'narwhal tusk', userId: 'carol' });
    const b = await insertMedia(t, { caption: 'narwhal pod', userId: 'carol' });
    const mine = await insertMedia(t, { caption: 'narwhal sketch', moderation: 'held', userId: 'alice' });
    const bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    assert.deepEqual((await ids('q=narwhal')).sort(), [a, b, mine].sort(), 'alice sees her own held media');
    assert.deepEqual((await ids('q=narwhal', bobKey)).sort(), [a, b].sort(), 'bob does not, though alice ranked first');
    // Hidden by moderation and deleted (processes that announce nothing: see media-record-cache).
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, a, [{ name: 'gore', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${b}`, headers: t.auth(t.tenant.adminKey) });
    assert.equal(del.statusCode, 204, del.body);
    assert.deepEqual(await ids('q=narwhal', bobKey), []);
    assert.deepEqual(await ids('q=narwhal'), [mine]);
  });
});
