import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { nowIso, toJson } from '../../src/db/schema.js';
import { newId } from '../../src/shared/ids.js';
import { ensureLabel } from '../../src/labels/media-label-store.js';
import { startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const API = '/api/v1';

/**
 * Search documents hold each media's label words: label names, their ancestors' names and the
 * bank phrases of all of them. These tests write banks after media were labelled and check,
 * over HTTP, that search follows every bank, entry, phrase and hierarchy change.
 */
describe('search follows label banks', () => {
  let t: TestApp;

  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  function call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, key: string, payload?: unknown) {
    return t.app.inject({
      method,
      url: `${API}${url}`,
      headers: t.auth(key),
      ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}),
    });
  }

  async function ok(method: 'POST' | 'PATCH' | 'DELETE', url: string, key: string, payload?: unknown) {
    const res = await call(method, url, key, payload);
    assert.ok(res.statusCode >= 200 && res.statusCode < 300, `${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.statusCode === 204 ? undefined : res.json();
  }

  const ids = async (query: string, key = t.tenant.userKey) => {
    const res = await call('GET', `/search?${query}`, key);
    assert.equal(res.statusCode, 200, res.body);
    return (res.json().items as { id: string }[]).map((i) => i.id);
  };

  /** A media uploaded through the API (an opaque file: ready at once). */
  async function upload(key: string, caption: string): Promise<string> {
    const client = new SessionClient(t.app, key);
    const { completed } = await client.uploadWhole(randomBytes(600), { filename: 'clip.bin', chunkSize: 1024, extra: { caption } });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }

  const label = (media: string, names: string[], key = t.tenant.userKey) =>
    ok('POST', `/media/${media}/labels`, key, { labels: names.map((name) => ({ name })) });

  async function staleMarks(): Promise<number> {
    const row = await t.ctx.database.db
      .selectFrom('search_stale')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  it('labelled first, then a bank gives the label parents and phrases: search finds it by them; renames and deletes take the old words away', async () => {
    const lion = await upload(t.tenant.userKey, 'savanna at noon');
    const theirs = await upload(t.other.userKey, 'savanna at noon');
    await label(lion, ['lion']);
    await label(theirs, ['lion'], t.other.userKey);
    assert.deepEqual(await ids('q=lion'), [lion]);
    assert.deepEqual(await ids('q=mammal'), [], 'no bank yet');

    const bank = await ok('POST', '/label-banks', t.tenant.adminKey, {
      name: 'zoo',
      entries: [{ name: 'mammal' }, { name: 'feline', parent: 'mammal', phrases: ['big cat'] }, { name: 'lion', parent: 'feline' }],
    });
    assert.deepEqual(await ids('q=mammal'), [lion], 'a grandparent added after the label finds it');
    assert.deepEqual(await ids('q=feline'), [lion]);
    assert.deepEqual(await ids(`q=${encodeURIComponent('big cat')}`), [lion], 'a phrase of the parent finds it');
    assert.deepEqual(await ids('q=savanna&label=mammal'), [lion], 'the label filter includes descendants');
    assert.deepEqual(await ids(`q=savanna&label=${encodeURIComponent('big cat')}`), [lion]);
    assert.deepEqual(await ids('q=mammal', t.other.userKey), [], "another tenant's media is untouched by this tenant's bank");

    const feline = bank.entries.find((e: { name: string }) => e.name === 'feline');
    await ok('PATCH', `/label-banks/${bank.id}/entries/${feline.id}`, t.tenant.adminKey, { name: 'felid', phrases: ['panthera'] });
    assert.deepEqual(await ids('q=feline'), [], 'the old entry name stops matching');
    assert.deepEqual(await ids(`q=${encodeURIComponent('big cat')}`), [], 'the replaced phrase stops matching');
    assert.deepEqual(await ids('q=felid'), [lion]);
    assert.deepEqual(await ids('q=panthera'), [lion]);
    assert.deepEqual(await ids('q=mammal'), [lion], 'the renamed entry keeps its parent');

    const carnivore = await ok('POST', `/label-banks/${bank.id}/entries`, t.tenant.adminKey, { name: 'carnivore', phrases: ['meat eater'] });
    await ok('PATCH', `/label-banks/${bank.id}/entries/${feline.id}`, t.tenant.adminKey, { parent_id: carnivore.id });
    assert.deepEqual(await ids('q=carnivore'), [lion], 'a new grandparent');
    assert.deepEqual(await ids(`q=${encodeURIComponent('meat eater')}`), [lion]);
    assert.deepEqual(await ids('q=mammal'), [], 'the old grandparent stops matching');
    assert.deepEqual(await ids('q=savanna&label=mammal'), []);
    assert.deepEqual(await ids('q=savanna&label=carnivore'), [lion]);

    await ok('DELETE', `/label-banks/${bank.id}/entries/${carnivore.id}`, t.tenant.adminKey);
    assert.deepEqual(await ids('q=carnivore'), [], 'a deleted entry stops matching');
    assert.deepEqual(await ids('q=felid'), [lion]);

    await ok('DELETE', `/label-banks/${bank.id}`, t.tenant.adminKey);
    for (const word of ['felid', 'panthera', 'mammal']) assert.deepEqual(await ids(`q=${word}`), [], `${word} after the bank is gone`);
    assert.deepEqual(await ids('q=lion'), [lion], 'the label itself stays');
    assert.equal(await staleMarks(), 0, 'every marked document was rebuilt');
  });

  it('labels named like a phrase of an existing bank, and labels a later phrase names, are found by the entry', async () => {
    const bank = await ok('POST', '/label-banks', t.tenant.adminKey, { name: 'birds', entries: [{ name: 'raptor', phrases: ['eagle'] }] });
    const eagle = await upload(t.tenant.userKey, 'cliff nest');
    const hawk = await upload(t.tenant.userKey, 'cliff ledge');
    await label(eagle, ['Eagle']);
    await label(hawk, ['hawk']);
    assert.deepEqual(await ids('q=raptor'), [eagle], 'a new label named like a phrase is the entry');
    assert.deepEqual(await ids('q=cliff&label=raptor'), [eagle]);
    await ok('PATCH', `/label-banks/${bank.id}/entries/${bank.entries[0].id}`, t.tenant.adminKey, { phrases: ['eagle', 'hawk'] });
    assert.deepEqual(new Set(await ids('q=raptor')), new Set([eagle, hawk]), 'an existing label a new phrase names');
    assert.deepEqual(new Set(await ids('q=cliff&label=raptor')), new Set([eagle, hawk]));
    assert.equal(await staleMarks(), 0);
  });

  it('a label on a child implies its ancestors in search: q and label filter, three levels, siblings apart', async () => {
    await ok('POST', '/label-banks', t.tenant.adminKey, {
      name: 'vehicles',
      entries: [
        { name: 'vehicle', phrases: ['conveyance'] },
        { name: 'car', parent: 'vehicle' },
        { name: 'sedan', parent: 'car', phrases: ['saloon'] },
        { name: 'bicycle', parent: 'vehicle' },
      ],
    });
    const sedan = await upload(t.tenant.userKey, 'parked by the river');
    const bicycle = await upload(t.tenant.userKey, 'parked by the river');
    const car = await upload(t.tenant.userKey, 'parked by the river');
    await label(sedan, ['saloon']);
    await label(bicycle, ['bicycle']);
    await label(car, ['car']);
    const set = async (q: string) => new Set(await ids(q));
    assert.deepEqual(await set('q=vehicle'), new Set([sedan, bicycle, car]), 'the grandparent finds all');
    assert.deepEqual(await set('q=conveyance'), new Set([sedan, bicycle, car]), "the grandparent's phrase too");
    assert.deepEqual(await set('q=car'), new Set([sedan, car]), 'the parent finds the child, not the sibling');
    assert.deepEqual(await set('q=sedan'), new Set([sedan]), 'a phrase label finds its entry');
    assert.deepEqual(await set('q=river&label=vehicle'), new Set([sedan, bicycle, car]));
    assert.deepEqual(await set('q=river&label=conveyance'), new Set([sedan, bicycle, car]));
    assert.deepEqual(await set('q=river&label=car'), new Set([sedan, car]));
    assert.deepEqual(await set('q=river&label=sedan'), new Set([sedan]), 'a child label filter does not find the parent');
    assert.deepEqual(await set('q=river&label=bicycle'), new Set([bicycle]));
    assert.deepEqual(await set('q=vehicle'), new Set([sedan, bicycle, car]));
    assert.deepEqual(await ids('q=vehicle', t.other.userKey), []);
    assert.deepEqual(await ids('q=river&label=vehicle', t.other.userKey), []);
  });

  it('global banks reach every tenant; a tenant bank of the same name overrides it, and import replace rewrites it', async () => {
    const mine = await upload(t.tenant.userKey, 'open water');
    const theirs = await upload(t.other.userKey, 'open water');
    await label(mine, ['orca']);
    await label(theirs, ['orca'], t.other.userKey);
    const global = await t.ctx.labelBanks.create({ global: true }, 'general', {
      name: 'sea',
      entries: [{ name: 'cetacean' }, { name: 'orca', parent: 'cetacean', phrases: ['killer whale'] }],
    });
    assert.deepEqual(await ids('q=cetacean'), [mine]);
    assert.deepEqual(await ids('q=cetacean', t.other.userKey), [theirs]);
    assert.deepEqual(await ids(`q=${encodeURIComponent('killer whale')}`, t.other.userKey), [theirs]);

    await ok('POST', '/label-banks', t.tenant.adminKey, { name: 'sea', entries: [{ name: 'dolphin' }, { name: 'orca', parent: 'dolphin' }] });
    assert.deepEqual(await ids('q=cetacean'), [], 'the override replaces the global hierarchy');
    assert.deepEqual(await ids(`q=${encodeURIComponent('killer whale')}`), []);
    assert.deepEqual(await ids('q=dolphin'), [mine]);
    assert.deepEqual(await ids('q=cetacean', t.other.userKey), [theirs], 'other tenants keep the global bank');

    const doc = { format: 'qasar.label-bank', version: 1, name: 'sea', entries: [{ name: 'orca', phrases: ['blackfish'] }] };
    assert.equal((await call('POST', '/label-banks/import?replace=true', t.tenant.adminKey, doc)).statusCode, 200);
    assert.deepEqual(await ids('q=dolphin'), [], 'the replaced bank no longer has the parent');
    assert.deepEqual(await ids('q=blackfish'), [mine]);

    await t.ctx.labelBanks.delete({ global: true }, 'general', global.id);
    assert.deepEqual(await ids('q=cetacean', t.other.userKey), []);
    assert.deepEqual(await ids('q=blackfish'), [mine], "the tenant's own bank stays");
    assert.equal(await staleMarks(), 0);
  });

  it('rebuilds every document a bank edit touches, in batches, in one request', async () => {
    const db = t.ctx.database.db;
    const sparrow = await ensureLabel(db, t.tenant.id, 'sparrow');
    const words = ['alpha', 'beta', 'gamma'];
    const made = new Map<string, string[]>(words.map((w) => [w, []]));
    const at = nowIso();
    for (let b = 0; b < 1200; b += 200) {
      const rows = [];
      const links = [];
      for (let i = b; i < b + 200; i++) {
        const id = newId();
        const w = words[i % 3]!;
        made.get(w)!.push(id);
        rows.push({
          id,
          tenant_id: t.tenant.id,
          user_id: 'alice',
          status: 'ready' as const,
          error_code: null,
          error_reason: null,
          kind: 'image' as const,
          original_filename: `bird-${i}.jpg`,
          mime_type: 'image/jpeg',
          size: 10,
          sha256: 'x'.repeat(64),
          caption: `flock ${w}`,
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
        });
        links.push({
          id: newId(),
          tenant_id: t.tenant.id,
          user_id: 'alice',
          media_id: id,
          label_id: sparrow,
          source: 'model' as const,
          count: 1,
          confidence: 0.8,
          frame_data: '[]',
          first_seen_at: at,
          last_seen_at: at,
        });
      }
      await db.insertInto('mediaassets').values(rows).execute();
      await db.insertInto('asset_labels').values(links).execute();
      await t.ctx.discovery.indexer.reindexMany(
        t.tenant.id,
        rows.map((r) => r.id),
      );
    }
    assert.deepEqual(await ids('q=passerine'), []);
    await ok('POST', '/label-banks', t.tenant.adminKey, {
      name: 'songbirds',
      entries: [
        { name: 'passerine', phrases: ['perching bird'] },
        { name: 'sparrow', parent: 'passerine' },
      ],
    });
    for (const w of words) {
      const found: string[] = [];
      let cursor: string | null = null;
      do {
        const res = await call('GET', `/search?q=passerine%20${w}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, t.tenant.userKey);
        assert.equal(res.statusCode, 200, res.body);
        found.push(...res.json().items.map((i: { id: string }) => i.id));
        cursor = res.json().next_cursor;
      } while (cursor);
      assert.deepEqual(found.sort(), [...made.get(w)!].sort(), w);
    }
    assert.equal(await staleMarks(), 0);
  });
});
