import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labelIdsMatchingTerm, labelWithAncestors } from '../../src/labels/hierarchy.js';
import { ensureModelBanks } from '../../src/processing/labeling/model-banks.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const API = '/api/v1';

describe('labels and label banks', () => {
  let t: TestApp;
  let bobKey: string;

  before(async () => {
    t = await startTestApp();
    bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
  });
  after(() => t.close());

  function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, key: string, payload?: unknown) {
    return t.app.inject({
      method,
      url: `${API}${url}`,
      headers: t.auth(key),
      ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}),
    });
  }

  async function upload(key: string, extra: Record<string, unknown> = {}): Promise<string> {
    const client = new SessionClient(t.app, key);
    const { completed } = await client.uploadWhole(randomBytes(1000), { filename: 'notes.bin', chunkSize: 1024, extra });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }

  async function createBank(key: string, body: Record<string, unknown>, base = '/label-banks') {
    const res = await call('POST', base, key, body);
    assert.equal(res.statusCode, 201, res.body);
    return res.json();
  }

  const entryNamed = (bank: { entries: Array<{ name: string }> }, name: string) => bank.entries.find((e) => e.name === name) as any;

  it('creates, lists, reads, renames and deletes banks; entries carry phrases and children', async () => {
    const bank = await createBank(t.tenant.adminKey, {
      name: 'Animals',
      description: 'things with legs',
      entries: [{ name: 'Animal' }, { name: 'Dog', parent: 'animal', phrases: ['Puppy', 'canine', 'dog'] }, { name: 'cat', parent: 'animal' }],
    });
    assert.equal(bank.name, 'Animals', 'names keep their case');
    assert.equal(bank.kind, 'general');
    assert.equal(bank.scope, 'tenant');
    assert.equal(bank.entry_count, 3);
    const animal = entryNamed(bank, 'Animal');
    const dog = entryNamed(bank, 'Dog');
    assert.deepEqual(dog.phrases, ['canine', 'Puppy'], 'phrases keep their case, are deduplicated case-insensitively, and are never the entry name');
    assert.equal(dog.parent_id, animal.id, 'a parent is named in any case');
    assert.deepEqual(animal.children.map((c: { name: string }) => c.name).sort(), ['Dog', 'cat']);
    assert.ok(dog.label_id, 'a tenant entry is linked to a label of its name');

    const listed = await call('GET', '/label-banks', t.tenant.userKey);
    assert.equal(listed.statusCode, 200);
    assert.deepEqual(
      listed.json().items.map((b: { name: string }) => b.name),
      ['Animals'],
    );
    assert.deepEqual((await call('GET', '/moderation-label-banks', t.tenant.userKey)).json().items, [], 'kinds are separate');
    assert.equal((await call('GET', `/label-banks/${bank.id}`, t.tenant.userKey)).json().entries.length, 3);
    expectProblem(await call('GET', `/moderation-label-banks/${bank.id}`, t.tenant.adminKey), 404, 'not-found');

    const renamed = await call('PATCH', `/label-banks/${bank.id}`, t.tenant.adminKey, { name: 'Fauna', description: null });
    assert.equal(renamed.statusCode, 200, renamed.body);
    assert.equal(renamed.json().name, 'Fauna');
    assert.equal(renamed.json().description, null);

    // Bank names are unique case-insensitively.
    expectProblem(await call('POST', '/label-banks', t.tenant.adminKey, { name: 'fauna' }), 409, 'conflict');
    expectProblem(await call('POST', '/label-banks', t.tenant.adminKey, { name: '' }), 400, 'validation-failed');
    expectProblem(await call('POST', '/label-banks', t.tenant.adminKey, { name: 'x', colour: 'red' }), 400, 'validation-failed');
    expectProblem(await call('POST', '/label-banks', t.tenant.adminKey, { name: 'y', entries: [{ name: 'a', parent: 'b' }] }), 400, 'validation-failed');
    expectProblem(
      await call('POST', '/label-banks', t.tenant.adminKey, {
        name: 'z',
        entries: [
          { name: 'a', parent: 'b' },
          { name: 'b', parent: 'a' },
        ],
      }),
      422,
      'bank-entry-cycle',
    );
    expectProblem(await call('POST', '/label-banks', t.tenant.adminKey, { name: 'w', entries: [{ name: 'a', threshold: 0.5 }] }), 400, 'validation-failed');
    assert.deepEqual(
      (await call('GET', '/label-banks', t.tenant.adminKey)).json().items.map((b: { name: string }) => b.name),
      ['Fauna'],
      'failed creates leave nothing',
    );

    const del = await call('DELETE', `/label-banks/${bank.id}`, t.tenant.adminKey);
    assert.equal(del.statusCode, 204);
    expectProblem(await call('GET', `/label-banks/${bank.id}`, t.tenant.adminKey), 404, 'not-found');
  });

  it('edits entries: add, read, rename, re-parent, phrases, delete (children move up); refuses cycles and duplicates', async () => {
    const bank = await createBank(t.tenant.adminKey, { name: 'vehicles' });
    const add = (body: Record<string, unknown>) => call('POST', `/label-banks/${bank.id}/entries`, t.tenant.adminKey, body);
    const vehicle = (await add({ name: 'vehicle' })).json();
    const car = await add({ name: 'car', parent_id: vehicle.id, phrases: ['automobile'] });
    assert.equal(car.statusCode, 201, car.body);
    const suv = (await add({ name: 'suv', parent_id: car.json().id })).json();
    expectProblem(await add({ name: 'car' }), 409, 'conflict');
    expectProblem(await add({ name: 'CAR' }), 409, 'conflict');
    expectProblem(await add({ name: 'bike', parent_id: 'no-such-entry' }), 400, 'validation-failed');
    expectProblem(await add({ name: 'bike', threshold: 0.4 }), 400, 'validation-failed');
    expectProblem(await add({ name: 'bike', phrases: Array.from({ length: 101 }, (_, i) => `p${i}`) }), 400, 'validation-failed');

    const entryUrl = (id: string) => `/label-banks/${bank.id}/entries/${id}`;
    expectProblem(await call('PATCH', entryUrl(vehicle.id), t.tenant.adminKey, { parent_id: suv.id }), 422, 'bank-entry-cycle');
    expectProblem(await call('PATCH', entryUrl(vehicle.id), t.tenant.adminKey, { parent_id: vehicle.id }), 422, 'bank-entry-cycle');
    expectProblem(await call('PATCH', entryUrl(suv.id), t.tenant.adminKey, { name: 'car' }), 409, 'conflict');
    const patched = await call('PATCH', entryUrl(car.json().id), t.tenant.adminKey, { name: 'Motor Car', phrases: ['auto', 'automobile'] });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(patched.json().name, 'Motor Car');
    assert.deepEqual(patched.json().phrases, ['auto', 'automobile']);
    assert.equal(patched.json().parent_id, vehicle.id);

    assert.equal((await call('DELETE', entryUrl(car.json().id), t.tenant.adminKey)).statusCode, 204);
    const suvNow = await call('GET', entryUrl(suv.id), t.tenant.userKey);
    assert.equal(suvNow.json().parent_id, vehicle.id, 'a removed entry hands its children to its parent');
    expectProblem(await call('GET', entryUrl(car.json().id), t.tenant.userKey), 404, 'not-found');
    const root = await call('PATCH', entryUrl(suv.id), t.tenant.adminKey, { parent_id: null });
    assert.equal(root.json().parent_id, null);
  });

  it('lets only admin keys write banks; every key of the tenant reads them', async () => {
    const bank = await createBank(t.tenant.adminKey, { name: 'readonly-for-users', entries: [{ name: 'a' }] });
    const entry = bank.entries[0];
    for (const [method, url, body] of [
      ['POST', '/label-banks', { name: 'mine' }],
      ['POST', '/label-banks/import', { format: 'qasar.label-bank', version: 1, name: 'imp', entries: [] }],
      ['PATCH', `/label-banks/${bank.id}`, { name: 'b' }],
      ['DELETE', `/label-banks/${bank.id}`, undefined],
      ['POST', `/label-banks/${bank.id}/entries`, { name: 'b' }],
      ['PATCH', `/label-banks/${bank.id}/entries/${entry.id}`, { name: 'c' }],
      ['DELETE', `/label-banks/${bank.id}/entries/${entry.id}`, undefined],
    ] as const) {
      expectProblem(await call(method, url, t.tenant.userKey, body), 403, 'forbidden');
    }
    for (const url of [
      `/label-banks/${bank.id}`,
      `/label-banks/${bank.id}/export`,
      `/label-banks/${bank.id}/stats`,
      `/label-banks/${bank.id}/entries/${entry.id}`,
    ]) {
      assert.equal((await call('GET', url, t.tenant.userKey)).statusCode, 200, url);
    }
  });

  it('shows global banks read-only, and a tenant bank of the same name overrides one', async () => {
    const global = await t.ctx.labelBanks.create({ global: true }, 'general', { name: 'objects', entries: [{ name: 'chair' }, { name: 'table' }] });
    const onlyGlobal = await t.ctx.labelBanks.create({ global: true }, 'general', { name: 'plants', entries: [{ name: 'tree' }] });
    const names = async (key: string) =>
      (await call('GET', '/label-banks', key)).json().items.map((b: { name: string; scope: string }) => `${b.name}:${b.scope}`);
    assert.ok((await names(t.tenant.userKey)).includes('objects:global'));
    assert.ok((await names(t.other.userKey)).includes('plants:global'));
    expectProblem(await call('PATCH', `/label-banks/${global.id}`, t.tenant.adminKey, { name: 'mine-now' }), 403, 'forbidden');
    expectProblem(await call('DELETE', `/label-banks/${global.id}`, t.tenant.adminKey), 403, 'forbidden');
    expectProblem(await call('POST', `/label-banks/${global.id}/entries`, t.tenant.adminKey, { name: 'lamp' }), 403, 'forbidden');

    const own = await createBank(t.tenant.adminKey, { name: 'objects', entries: [{ name: 'lamp' }] });
    const mine = await names(t.tenant.userKey);
    assert.ok(mine.includes('objects:tenant') && !mine.includes('objects:global'), 'the tenant bank replaces the global one');
    assert.ok(mine.includes('plants:global'));
    assert.ok((await names(t.other.userKey)).includes('objects:global'), 'other tenants still see the global bank');

    // The override decides which entries count: a chair label matches nothing for this tenant.
    const media = await upload(t.tenant.userKey);
    await call('POST', `/media/${media}/labels`, t.tenant.userKey, { labels: [{ name: 'chair' }, { name: 'lamp' }] });
    const ownStats = (await call('GET', `/label-banks/${own.id}/stats`, t.tenant.userKey)).json();
    assert.equal(ownStats.entries[0].match_count, 1);
    const globalStats = await t.ctx.labelBanks.stats(t.tenant.id, 'general', global.id);
    assert.equal(globalStats.entries.find((e) => e.name === 'chair')!.match_count, 0);
    await t.ctx.labelBanks.delete({ global: true }, 'general', onlyGlobal.id);
  });

  it('exports a versioned document and imports it back (create, conflict, replace keeping statistics)', async () => {
    const bank = await createBank(t.tenant.adminKey, {
      name: 'kitchen',
      description: 'cookware',
      entries: [{ name: 'Pan', parent: 'cookware', phrases: ['Skillet'] }, { name: 'Cookware' }, { name: 'pot', parent: 'COOKWARE' }],
    });
    const exported = await call('GET', `/label-banks/${bank.id}/export`, t.tenant.userKey);
    assert.equal(exported.statusCode, 200);
    const doc = exported.json();
    assert.equal(doc.format, 'qasar.label-bank');
    assert.equal(doc.version, 1);
    assert.equal(doc.kind, 'general');
    assert.equal(doc.entries[0].name, 'Cookware', 'parents come first');
    assert.deepEqual(
      doc.entries.find((e: { name: string }) => e.name === 'Pan'),
      { name: 'Pan', parent: 'Cookware', phrases: ['Skillet'], threshold: null },
      'names as they were given',
    );

    // Round trip into another tenant: same document out.
    const imported = await call('POST', '/label-banks/import', t.other.adminKey, doc);
    assert.equal(imported.statusCode, 201, imported.body);
    const again = (await call('GET', `/label-banks/${imported.json().id}/export`, t.other.adminKey)).json();
    assert.deepEqual(again, doc);

    expectProblem(await call('POST', '/label-banks/import', t.tenant.adminKey, doc), 409, 'conflict');
    expectProblem(await call('POST', '/label-banks/import', t.tenant.adminKey, { ...doc, version: 2 }), 400, 'validation-failed');
    expectProblem(await call('POST', '/moderation-label-banks/import', t.tenant.adminKey, doc), 400, 'validation-failed');

    const media = await upload(t.tenant.userKey);
    await call('POST', `/media/${media}/labels`, t.tenant.userKey, { labels: [{ name: 'skillet', confidence: 0.5 }] });
    const replaced = await call('POST', '/label-banks/import?replace=true', t.tenant.adminKey, {
      ...doc,
      entries: [{ name: 'cookware' }, { name: 'pan', parent: 'cookware', phrases: ['skillet', 'wok'] }, { name: 'kettle' }],
    });
    assert.equal(replaced.statusCode, 200, replaced.body);
    assert.equal(replaced.json().id, bank.id, 'replace updates the bank in place');
    assert.deepEqual(
      replaced.json().entries.map((e: { name: string }) => e.name),
      ['cookware', 'kettle', 'pan'],
      'entries matched case-insensitively take the spelling of the document',
    );
    const stats = (await call('GET', `/label-banks/${bank.id}/stats`, t.tenant.userKey)).json();
    assert.equal(stats.entries.find((e: { name: string }) => e.name === 'pan').match_count, 1, 'statistics of kept entries survive');
  });

  it('labels media by hand: add, list, repeat, remove; owner or admin only; validated', async () => {
    const media = await upload(t.tenant.userKey);
    const url = `/media/${media}/labels`;
    const added = await call('POST', url, t.tenant.userKey, {
      labels: [{ name: '  Sunset ' }, { name: 'beach', confidence: 0.7, frames: [{ t: 1.5, box: [0.1, 0.1, 0.5, 0.5] }] }],
    });
    assert.equal(added.statusCode, 200, added.body);
    const items = added.json().items;
    assert.deepEqual(
      items.map((l: { name: string; source: string }) => `${l.name}:${l.source}`),
      ['beach:user', 'Sunset:user'],
      'trimmed, in the case given',
    );
    const beach = items[0];
    assert.equal(beach.confidence, 0.7);
    assert.deepEqual(beach.frames, [{ t: 1.5, box: [0.1, 0.1, 0.5, 0.5] }]);
    assert.equal(beach.count, 1);

    const repeat = (await call('POST', url, t.tenant.adminKey, { labels: [{ name: 'BEACH', confidence: 0.9 }] })).json().items[0];
    assert.equal(repeat.name, 'beach', 'the same label, matched case-insensitively, keeps its first spelling');
    assert.equal(repeat.count, 2);
    assert.equal(repeat.confidence, 0.9, 'the highest confidence is kept');
    assert.equal(repeat.first_seen_at, beach.first_seen_at);
    assert.ok(repeat.last_seen_at >= beach.last_seen_at);
    assert.deepEqual(repeat.frames, beach.frames, 'frames stay when a write gives none');

    const record = (await call('GET', `/media/${media}`, t.tenant.userKey)).json();
    assert.deepEqual(record.labels.map((l: { name: string }) => l.name).sort(), ['Sunset', 'beach'], 'the media record lists them');

    expectProblem(await call('POST', url, bobKey, { labels: [{ name: 'mine' }] }), 403, 'forbidden');
    expectProblem(await call('POST', url, t.tenant.userKey, { labels: [{ name: 'x', kind: 'moderation', confidence: 0.1 }] }), 403, 'forbidden');
    expectProblem(await call('POST', url, t.tenant.userKey, { labels: [] }), 400, 'validation-failed');
    expectProblem(await call('POST', url, t.tenant.userKey, { labels: [{ name: 'x', confidence: 1.5 }] }), 400, 'validation-failed');
    expectProblem(await call('POST', url, t.tenant.userKey, { labels: [{ name: 'x', source: 'model' }] }), 400, 'validation-failed');
    expectProblem(await call('POST', url, t.tenant.userKey, { labels: [{ name: '\u0007' }] }), 400, 'validation-failed');
    assert.equal((await call('GET', url, bobKey)).statusCode, 200, 'any key of the tenant reads labels of visible media');

    const sunsetId = items[1].label_id;
    expectProblem(await call('DELETE', `${url}/${sunsetId}`, bobKey), 403, 'forbidden');
    assert.equal((await call('DELETE', `${url}/${sunsetId}`, t.tenant.userKey)).statusCode, 204);
    expectProblem(await call('DELETE', `${url}/${sunsetId}`, t.tenant.userKey), 404, 'not-found');
    assert.deepEqual(
      (await call('GET', url, t.tenant.userKey)).json().items.map((l: { name: string }) => l.name),
      ['beach'],
    );

    // The worker's path: model labels on the system's authority.
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, media, [{ name: 'beach', confidence: 0.66, source: 'model', frames: [{ t: 3 }] }]);
    const both = (await call('GET', url, t.tenant.userKey)).json().items;
    assert.deepEqual(
      both.map((l: { source: string }) => l.source),
      ['model', 'user'],
    );
    expectProblem(await call('DELETE', `${url}/${both[0].label_id}?source=model`, t.tenant.userKey), 403, 'forbidden');
    assert.equal((await call('DELETE', `${url}/${both[0].label_id}?source=model`, t.tenant.adminKey)).statusCode, 204);
  });

  it('keeps statistics per bank entry: usage, matches, mean and max confidence, last matched (by name and by phrase)', async () => {
    const bank = await createBank(t.tenant.adminKey, { name: 'weather', entries: [{ name: 'rain', phrases: ['drizzle'] }, { name: 'snow' }] });
    const [m1, m2] = [await upload(t.tenant.userKey), await upload(t.tenant.userKey)];
    const before = new Date().toISOString();
    await call('POST', `/media/${m1}/labels`, t.tenant.userKey, { labels: [{ name: 'rain', confidence: 0.4 }] });
    await call('POST', `/media/${m1}/labels`, t.tenant.userKey, { labels: [{ name: 'rain', confidence: 0.6 }] });
    await call('POST', `/media/${m2}/labels`, t.tenant.userKey, { labels: [{ name: 'drizzle', confidence: 0.8 }] });
    const stats = await call('GET', `/label-banks/${bank.id}/stats`, t.tenant.userKey);
    assert.equal(stats.statusCode, 200);
    const rain = stats.json().entries.find((e: { name: string }) => e.name === 'rain');
    assert.equal(rain.usage_count, 2, 'applied to two media');
    assert.equal(rain.match_count, 3, 'matched three times');
    assert.ok(Math.abs(rain.mean_confidence - 0.6) < 1e-9, `mean ${rain.mean_confidence}`);
    assert.equal(rain.max_confidence, 0.8);
    assert.ok(rain.last_matched_at >= before);
    const snow = stats.json().entries.find((e: { name: string }) => e.name === 'snow');
    assert.deepEqual([snow.usage_count, snow.match_count, snow.mean_confidence, snow.max_confidence, snow.last_matched_at], [0, 0, null, null, null]);

    // Labels given at upload count too.
    await upload(t.tenant.userKey, { labels: ['Snow'] });
    const after = (await call('GET', `/label-banks/${bank.id}/stats`, t.tenant.userKey)).json();
    assert.equal(after.entries.find((e: { name: string }) => e.name === 'snow').usage_count, 1);
    // Another tenant's statistics of the same (global-like) names are its own.
    expectProblem(await call('GET', `/label-banks/${bank.id}/stats`, t.other.adminKey), 404, 'not-found');
  });

  it("takes a removed label out of its entries' statistics (by name and by phrase, user and model)", async () => {
    const bank = await createBank(t.tenant.adminKey, { name: 'climate', entries: [{ name: 'hail', phrases: ['sleet'] }, { name: 'fog' }] });
    const [m1, m2] = [await upload(t.tenant.userKey), await upload(t.tenant.userKey)];
    await call('POST', `/media/${m1}/labels`, t.tenant.userKey, { labels: [{ name: 'hail', confidence: 0.4 }] });
    await call('POST', `/media/${m1}/labels`, t.tenant.userKey, { labels: [{ name: 'hail', confidence: 0.6 }] });
    await call('POST', `/media/${m2}/labels`, t.tenant.userKey, {
      labels: [
        { name: 'sleet', confidence: 0.8 },
        { name: 'fog', confidence: 0.3 },
      ],
    });
    const statsOf = async (name: string) => {
      const res = await call('GET', `/label-banks/${bank.id}/stats`, t.tenant.userKey);
      assert.equal(res.statusCode, 200, res.body);
      const e = res.json().entries.find((x: { name: string }) => x.name === name);
      return {
        usage: e.usage_count,
        matches: e.match_count,
        mean: e.mean_confidence === null ? null : Math.round(e.mean_confidence * 1e9) / 1e9,
        max: e.max_confidence,
        last: e.last_matched_at,
      };
    };
    const labelsOf = async (media: string) =>
      (await call('GET', `/media/${media}/labels`, t.tenant.userKey)).json().items as Array<{
        label_id: string;
        name: string;
        source: string;
        last_seen_at: string;
      }>;
    assert.deepEqual({ ...(await statsOf('hail')), last: undefined }, { usage: 2, matches: 3, mean: 0.6, max: 0.8, last: undefined });
    const fogBefore = await statsOf('fog');

    // The phrase's label is the entry's: listed and removed as hail.
    const sleet = (await labelsOf(m2)).find((l) => l.name === 'hail')!;
    assert.equal((await call('DELETE', `/media/${m2}/labels/${sleet.label_id}`, t.tenant.userKey)).statusCode, 204);
    const hailOnM1 = (await labelsOf(m1)).find((l) => l.name === 'hail')!;
    assert.deepEqual(await statsOf('hail'), { usage: 1, matches: 2, mean: 0.5, max: 0.6, last: hailOnM1.last_seen_at }, 'the phrase label is taken out');
    assert.deepEqual(await statsOf('fog'), fogBefore, 'other entries are untouched');

    // A model label on the same media counts on its own, and its removal takes only its share.
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, m1, [{ name: 'hail', confidence: 0.9, source: 'model' }]);
    assert.deepEqual({ ...(await statsOf('hail')), last: undefined }, { usage: 2, matches: 3, mean: 0.633333333, max: 0.9, last: undefined });
    assert.equal((await call('DELETE', `/media/${m1}/labels/${hailOnM1.label_id}?source=model`, t.tenant.adminKey)).statusCode, 204);
    assert.deepEqual(await statsOf('hail'), { usage: 1, matches: 2, mean: 0.5, max: 0.6, last: hailOnM1.last_seen_at });

    expectProblem(await call('DELETE', `/media/${m1}/labels/${hailOnM1.label_id}`, t.other.adminKey), 404, 'not-found');
    expectProblem(await call('DELETE', `/media/${m1}/labels/${hailOnM1.label_id}`, bobKey), 403, 'forbidden');
    expectProblem(await call('DELETE', `/media/${m1}/labels/no-such-label`, t.tenant.userKey), 404, 'not-found');
    assert.equal((await statsOf('hail')).usage, 1, 'refused removals change nothing');

    assert.equal((await call('DELETE', `/media/${m1}/labels/${hailOnM1.label_id}`, t.tenant.userKey)).statusCode, 204);
    assert.deepEqual(await statsOf('hail'), { usage: 0, matches: 0, mean: null, max: null, last: null }, 'nothing left');
    assert.deepEqual(await statsOf('fog'), fogBefore);

    // Deleting a media takes its labels out too.
    assert.equal((await call('DELETE', `/media/${m2}`, t.tenant.userKey)).statusCode, 204);
    assert.deepEqual(await statsOf('fog'), { usage: 0, matches: 0, mean: null, max: null, last: null }, 'the deleted media was the only one labelled fog');
  });

  it('moderation label banks: entries with thresholds, PATCH, export and import, statistics; validated; admin only; 404 for other tenants', async () => {
    const base = '/moderation-label-banks';
    const bank = await createBank(
      t.tenant.adminKey,
      {
        name: 'Safety',
        description: 'house rules',
        entries: [
          { name: 'violence', threshold: 0.9 },
          { name: 'gore', parent: 'violence', phrases: ['blood'], threshold: 0.95 },
        ],
      },
      base,
    );
    assert.equal(bank.kind, 'moderation');
    assert.equal(bank.name, 'Safety');
    const violence = entryNamed(bank, 'violence');
    const gore = entryNamed(bank, 'gore');
    assert.equal(violence.threshold, 0.9);
    assert.deepEqual([gore.parent_id, gore.threshold, gore.phrases], [violence.id, 0.95, ['blood']]);
    assert.ok((await call('GET', base, t.tenant.userKey)).json().items.some((b: { id: string }) => b.id === bank.id));
    assert.ok(
      !(await call('GET', '/label-banks', t.tenant.userKey)).json().items.some((b: { id: string }) => b.id === bank.id),
      'general banks do not list it',
    );
    expectProblem(await call('GET', `/label-banks/${bank.id}`, t.tenant.userKey), 404, 'not-found');

    // Entries.
    const add = (body: Record<string, unknown>, key = t.tenant.adminKey) => call('POST', `${base}/${bank.id}/entries`, key, body);
    const weapons = await add({ name: 'Weapons', threshold: 0.7, phrases: ['gun', 'Knife'] });
    assert.equal(weapons.statusCode, 201, weapons.body);
    assert.deepEqual([weapons.json().name, weapons.json().threshold, weapons.json().phrases], ['Weapons', 0.7, ['gun', 'Knife']]);
    expectProblem(await add({ name: 'x', threshold: 1.5 }), 400, 'validation-failed');
    expectProblem(await add({ name: 'x', threshold: -0.1 }), 400, 'validation-failed');
    expectProblem(await add({ name: 'weapons' }), 409, 'conflict');
    expectProblem(await add({ name: 'x', parent_id: 'nope' }), 400, 'validation-failed');
    expectProblem(await add({ name: 'x', extra: true }), 400, 'validation-failed');
    expectProblem(await add({ name: 'x' }, t.tenant.userKey), 403, 'forbidden');
    const entryUrl = (id: string) => `${base}/${bank.id}/entries/${id}`;
    const patched = await call('PATCH', entryUrl(weapons.json().id), t.tenant.adminKey, { name: 'arms', threshold: null, parent_id: violence.id });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual(
      [patched.json().name, patched.json().threshold, patched.json().parent_id, patched.json().phrases],
      ['arms', null, violence.id, ['gun', 'Knife']],
    );
    const read = await call('GET', entryUrl(weapons.json().id), t.tenant.userKey);
    assert.equal(read.statusCode, 200);
    assert.equal(read.json().name, 'arms');
    expectProblem(await call('PATCH', entryUrl(violence.id), t.tenant.adminKey, { parent_id: gore.id }), 422, 'bank-entry-cycle');
    expectProblem(await call('PATCH', entryUrl(violence.id), t.tenant.adminKey, { threshold: 2 }), 400, 'validation-failed');
    expectProblem(await call('PATCH', entryUrl(violence.id), t.tenant.adminKey, { name: 'gore' }), 409, 'conflict');
    expectProblem(await call('PATCH', entryUrl(violence.id), t.tenant.userKey, { threshold: 0.5 }), 403, 'forbidden');
    expectProblem(await call('PATCH', entryUrl('no-such-entry'), t.tenant.adminKey, { threshold: 0.5 }), 404, 'not-found');
    expectProblem(await call('GET', entryUrl('no-such-entry'), t.tenant.userKey), 404, 'not-found');

    // The bank itself.
    await createBank(t.tenant.adminKey, { name: 'other rules' }, base);
    const renamed = await call('PATCH', `${base}/${bank.id}`, t.tenant.adminKey, { name: 'Safety Rules', description: null });
    assert.equal(renamed.statusCode, 200, renamed.body);
    assert.deepEqual([renamed.json().name, renamed.json().description, renamed.json().entries.length], ['Safety Rules', null, 3]);
    expectProblem(await call('PATCH', `${base}/${bank.id}`, t.tenant.adminKey, { name: 'other rules' }), 409, 'conflict');
    expectProblem(await call('PATCH', `${base}/${bank.id}`, t.tenant.adminKey, { kind: 'general' }), 400, 'validation-failed');
    expectProblem(await call('PATCH', `${base}/${bank.id}`, t.tenant.userKey, { name: 'mine' }), 403, 'forbidden');
    expectProblem(await call('PATCH', `${base}/no-such-bank`, t.tenant.adminKey, { name: 'x' }), 404, 'not-found');

    // Export and import.
    const exported = await call('GET', `${base}/${bank.id}/export`, t.tenant.userKey);
    assert.equal(exported.statusCode, 200);
    const doc = exported.json();
    assert.deepEqual([doc.format, doc.version, doc.kind, doc.name], ['qasar.label-bank', 1, 'moderation', 'Safety Rules']);
    assert.equal(doc.entries[0].name, 'violence', 'parents first');
    assert.deepEqual(
      doc.entries.find((e: { name: string }) => e.name === 'gore'),
      { name: 'gore', parent: 'violence', phrases: ['blood'], threshold: 0.95 },
    );
    const imported = await call('POST', `${base}/import`, t.other.adminKey, doc);
    assert.equal(imported.statusCode, 201, imported.body);
    assert.equal(imported.json().kind, 'moderation');
    assert.deepEqual((await call('GET', `${base}/${imported.json().id}/export`, t.other.adminKey)).json(), doc, 'the round trip gives the same document');
    assert.equal((await call('DELETE', `${base}/${imported.json().id}`, t.other.adminKey)).statusCode, 204);
    expectProblem(await call('POST', `${base}/import`, t.tenant.adminKey, doc), 409, 'conflict');
    expectProblem(await call('POST', '/label-banks/import', t.tenant.adminKey, doc), 400, 'validation-failed');
    expectProblem(await call('POST', `${base}/import`, t.tenant.adminKey, { ...doc, entries: [{ name: 'a', threshold: 3 }] }), 400, 'validation-failed');
    expectProblem(await call('POST', `${base}/import`, t.tenant.userKey, { ...doc, name: 'new' }), 403, 'forbidden');

    // Statistics: moderation labels (admin keys) under the threshold, by name and by phrase.
    const media = await upload(t.tenant.userKey);
    await call('POST', `/media/${media}/labels`, t.tenant.adminKey, {
      labels: [
        { name: 'violence', kind: 'moderation', confidence: 0.5 },
        { name: 'blood', kind: 'moderation', confidence: 0.6 },
      ],
    });
    await call('POST', `/media/${media}/labels`, t.tenant.adminKey, { labels: [{ name: 'blood', kind: 'moderation', confidence: 0.2 }] });
    await call('POST', `/media/${media}/labels`, t.tenant.userKey, { labels: [{ name: 'violence', confidence: 0.99 }] });
    const stats = async () => {
      const res = await call('GET', `${base}/${bank.id}/stats`, t.tenant.userKey);
      assert.equal(res.statusCode, 200, res.body);
      return Object.fromEntries(
        res
          .json()
          .entries.map((e: { name: string; usage_count: number; match_count: number; max_confidence: number | null }) => [
            e.name,
            [e.usage_count, e.match_count, e.max_confidence],
          ]),
      );
    };
    assert.deepEqual(await stats(), { arms: [0, 0, null], gore: [1, 2, 0.6], violence: [1, 1, 0.5] }, 'a general label of the same name does not count');
    assert.equal((await call('GET', `/media/${media}`, t.tenant.userKey)).json().moderation_state, 'none', 'under the thresholds');
    // Blood is gore's phrase: its label is listed (and removed) as gore's.
    const blood = (await call('GET', `/media/${media}/labels`, t.tenant.adminKey)).json().items.find((l: { name: string }) => l.name === 'gore');
    expectProblem(await call('DELETE', `/media/${media}/labels/${blood.label_id}`, t.tenant.userKey), 403, 'forbidden');
    assert.equal((await call('DELETE', `/media/${media}/labels/${blood.label_id}`, t.tenant.adminKey)).statusCode, 204);
    assert.deepEqual(await stats(), { arms: [0, 0, null], gore: [0, 0, null], violence: [1, 1, 0.5] });

    // Replace: entries matched by name keep their statistics; missing ones go.
    const replaced = await call('POST', `${base}/import?replace=true`, t.tenant.adminKey, {
      ...doc,
      entries: [
        { name: 'violence', threshold: 0.6 },
        { name: 'nudity', threshold: 0.8 },
      ],
    });
    assert.equal(replaced.statusCode, 200, replaced.body);
    assert.equal(replaced.json().id, bank.id);
    assert.deepEqual(
      replaced.json().entries.map((e: { name: string; threshold: number }) => [e.name, e.threshold]),
      [
        ['nudity', 0.8],
        ['violence', 0.6],
      ],
    );
    assert.deepEqual(await stats(), { nudity: [0, 0, null], violence: [1, 1, 0.5] });

    // Another tenant: 404 everywhere, nothing changed.
    const nudity = entryNamed(replaced.json(), 'nudity');
    for (const [method, url, body] of [
      ['GET', `${base}/${bank.id}`],
      ['PATCH', `${base}/${bank.id}`, { name: 'theirs' }],
      ['GET', `${base}/${bank.id}/export`],
      ['GET', `${base}/${bank.id}/stats`],
      ['POST', `${base}/${bank.id}/entries`, { name: 'x', threshold: 0.5 }],
      ['GET', entryUrl(nudity.id)],
      ['PATCH', entryUrl(nudity.id), { threshold: 0.1 }],
      ['DELETE', entryUrl(nudity.id)],
      ['DELETE', `${base}/${bank.id}`],
    ] as Array<['GET' | 'POST' | 'PATCH' | 'DELETE', string, unknown?]>) {
      const res = await call(method, url, t.other.adminKey, body);
      expectProblem(res, 404, 'not-found');
      assert.doesNotMatch(res.body, new RegExp(`${t.tenant.id}|safety|nudity`));
    }
    assert.ok(!(await call('GET', base, t.other.adminKey)).json().items.some((b: { id: string }) => b.id === bank.id));
    const mine = (await call('GET', `${base}/${bank.id}`, t.tenant.userKey)).json();
    assert.deepEqual([mine.name, mine.entries.length, entryNamed(mine, 'nudity').threshold], ['Safety Rules', 2, 0.8]);

    assert.equal((await call('DELETE', entryUrl(nudity.id), t.tenant.adminKey)).statusCode, 204);
    expectProblem(await call('GET', entryUrl(nudity.id), t.tenant.userKey), 404, 'not-found');
    assert.equal((await call('DELETE', `${base}/${bank.id}`, t.tenant.adminKey)).statusCode, 204);
    expectProblem(await call('GET', `${base}/${bank.id}`, t.tenant.userKey), 404, 'not-found');
  });

  it('applies the hierarchy: a child label implies its ancestors, a search term finds descendants and synonyms', async () => {
    await createBank(t.tenant.adminKey, {
      name: 'taxonomy',
      entries: [{ name: 'mammal' }, { name: 'feline', parent: 'mammal', phrases: ['big cat'] }, { name: 'lion', parent: 'feline' }],
    });
    const lionMedia = await upload(t.tenant.userKey);
    const catMedia = await upload(t.tenant.userKey);
    await call('POST', `/media/${lionMedia}/labels`, t.tenant.userKey, { labels: [{ name: 'lion' }] });
    await call('POST', `/media/${catMedia}/labels`, t.tenant.userKey, { labels: [{ name: 'Big Cat' }] });
    const db = t.ctx.database.db;
    const mediaWith = async (labelIds: string[]) =>
      labelIds.length
        ? (await db.selectFrom('asset_labels').select('media_id').distinct().where('tenant_id', '=', t.tenant.id).where('label_id', 'in', labelIds).execute())
            .map((r) => r.media_id)
            .sort()
        : [];

    assert.deepEqual(
      await mediaWith(await labelIdsMatchingTerm(db, t.tenant.id, 'Mammal')),
      [lionMedia, catMedia].sort(),
      'a parent finds children and synonyms',
    );
    assert.deepEqual(await mediaWith(await labelIdsMatchingTerm(db, t.tenant.id, 'feline')), [lionMedia, catMedia].sort());
    assert.deepEqual(await mediaWith(await labelIdsMatchingTerm(db, t.tenant.id, 'big cat')), [lionMedia, catMedia].sort(), 'a phrase stands for its entry');
    assert.deepEqual(await mediaWith(await labelIdsMatchingTerm(db, t.tenant.id, 'lion')), [lionMedia]);
    assert.deepEqual(await labelIdsMatchingTerm(db, t.other.id, 'mammal'), [], "another tenant's hierarchy is not visible");
    assert.deepEqual(await labelIdsMatchingTerm(db, t.tenant.id, '   '), []);

    const lionLabel = (await call('GET', `/media/${lionMedia}/labels`, t.tenant.userKey)).json().items[0].label_id;
    const implied = await labelWithAncestors(db, t.tenant.id, [lionLabel]);
    assert.deepEqual(implied.map((l) => l.name).sort(), ['feline', 'lion', 'mammal']);
    assert.deepEqual(await labelWithAncestors(db, t.other.id, [lionLabel]), []);

    // The dictionary mirrors it.
    const mammal = implied.find((l) => l.name === 'mammal')!;
    const children = (await call('GET', `/labels?parent_id=${mammal.id}`, t.tenant.userKey)).json().items.map((l: { name: string }) => l.name);
    assert.deepEqual(children, ['feline']);
  });

  it('lists the label dictionary by kind with pagination', async () => {
    const media = await upload(t.tenant.userKey);
    await call('POST', `/media/${media}/labels`, t.tenant.adminKey, { labels: [{ name: 'aaa-flag', kind: 'moderation', confidence: 0.1 }] });
    const mod = (await call('GET', '/labels?kind=moderation', t.tenant.userKey)).json().items.map((l: { name: string }) => l.name);
    assert.ok(mod.includes('aaa-flag'));
    assert.ok(!(await call('GET', '/labels?kind=general', t.tenant.userKey)).json().items.some((l: { name: string }) => l.name === 'aaa-flag'));
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = (await call('GET', `/labels?limit=3${cursor ? `&cursor=${cursor}` : ''}`, t.tenant.userKey)).json();
      assert.ok(page.items.length <= 3);
      seen.push(...page.items.map((l: { id: string }) => l.id));
      cursor = page.next_cursor;
    } while (cursor);
    const all = (await call('GET', '/labels?limit=500', t.tenant.userKey)).json().items.map((l: { id: string }) => l.id);
    assert.deepEqual(seen, all);
    expectProblem(await call('GET', '/labels?cursor=nonsense', t.tenant.userKey), 400, 'validation-failed');
    expectProblem(await call('GET', '/labels?kind=other', t.tenant.userKey), 400, 'validation-failed');
    assert.deepEqual(
      (await call('GET', '/labels', t.other.userKey)).json().items.filter((l: { name: string }) => l.name === 'aaa-flag'),
      [],
    );
  });

  it("never shows another tenant's media labels or banks: 404 as if absent", async () => {
    const media = await upload(t.tenant.userKey);
    await call('POST', `/media/${media}/labels`, t.tenant.userKey, { labels: [{ name: 'secret' }] });
    const labelId = (await call('GET', `/media/${media}/labels`, t.tenant.userKey)).json().items[0].label_id;
    const bank = await createBank(t.tenant.adminKey, { name: 'private', entries: [{ name: 'secret' }] });
    const modBank = await createBank(t.tenant.adminKey, { name: 'private-moderation', entries: [{ name: 'bad', threshold: 0.5 }] }, '/moderation-label-banks');
    const entryId = bank.entries[0].id;
    const endpoints: Array<['GET' | 'POST' | 'PATCH' | 'DELETE', string, unknown?]> = [
      ['GET', `/media/${media}/labels`],
      ['POST', `/media/${media}/labels`, { labels: [{ name: 'x' }] }],
      ['DELETE', `/media/${media}/labels/${labelId}`],
      ['GET', `/label-banks/${bank.id}`],
      ['PATCH', `/label-banks/${bank.id}`, { name: 'mine' }],
      ['DELETE', `/label-banks/${bank.id}`],
      ['GET', `/label-banks/${bank.id}/export`],
      ['GET', `/label-banks/${bank.id}/stats`],
      ['POST', `/label-banks/${bank.id}/entries`, { name: 'x' }],
      ['GET', `/label-banks/${bank.id}/entries/${entryId}`],
      ['PATCH', `/label-banks/${bank.id}/entries/${entryId}`, { name: 'x' }],
      ['DELETE', `/label-banks/${bank.id}/entries/${entryId}`],
      ['GET', `/moderation-label-banks/${modBank.id}`],
      ['DELETE', `/moderation-label-banks/${modBank.id}`],
    ];
    for (const [method, url, body] of endpoints) {
      const res = await call(method, url, t.other.adminKey, body);
      expectProblem(res, 404, 'not-found');
      assert.doesNotMatch(res.body, new RegExp(t.tenant.id));
    }
    const names = (await call('GET', '/label-banks', t.other.adminKey)).json().items.map((b: { name: string }) => b.name);
    assert.ok(!names.includes('private'));
    assert.deepEqual((await call('GET', '/moderation-label-banks', t.other.adminKey)).json().items, []);
    assert.ok(!(await call('GET', '/labels?limit=500', t.other.adminKey)).json().items.some((l: { name: string }) => l.name === 'secret'));
    // Untouched for the owner.
    assert.equal((await call('GET', `/media/${media}/labels`, t.tenant.userKey)).json().items.length, 1);
    assert.equal((await call('GET', `/label-banks/${bank.id}`, t.tenant.userKey)).json().entries.length, 1);
  });

  it('shows names as their entries spell them, wherever labels are listed; matches them in any case', async () => {
    const bank = await createBank(t.tenant.adminKey, {
      name: 'Dog Breeds',
      entries: [{ name: 'Dog Breed' }, { name: '  Golden   Retriever ', parent: 'dog breed', phrases: ['Goldie'] }],
    });
    const golden = entryNamed(bank, 'Golden Retriever');
    assert.ok(golden, 'trimmed, white space folded, case kept');
    const media = await upload(t.tenant.userKey);
    const added = await call('POST', `/media/${media}/labels`, t.tenant.userKey, { labels: [{ name: 'golden retriever', confidence: 0.9 }] });
    assert.equal(added.statusCode, 200, added.body);
    const label = added.json().items[0];
    assert.deepEqual([label.name, label.parent], ['Golden Retriever', 'Dog Breed'], 'the label of an entry is shown as the entry is');
    assert.equal(label.label_id, golden.label_id);
    const record = (await call('GET', `/media/${media}`, t.tenant.userKey)).json();
    assert.deepEqual(
      record.labels.map((l: { name: string }) => l.name),
      ['Golden Retriever'],
    );
    const dictionary = (await call('GET', '/labels?limit=500', t.tenant.userKey)).json().items;
    assert.ok(dictionary.some((l: { name: string }) => l.name === 'Golden Retriever'));
    const breed = dictionary.find((l: { name: string }) => l.name === 'Dog Breed');
    assert.deepEqual(
      (await call('GET', `/labels?parent_id=${breed.id}`, t.tenant.userKey)).json().items.map((l: { name: string }) => l.name),
      ['Golden Retriever'],
    );
    const stats = (await call('GET', `/label-banks/${bank.id}/stats`, t.tenant.userKey)).json();
    assert.deepEqual(
      stats.entries.map((e: { name: string; match_count: number }) => [e.name, e.match_count]),
      [
        ['Dog Breed', 0],
        ['Golden Retriever', 1],
      ],
    );
    // Matching stays case-insensitive: list filters and search terms in any case.
    for (const term of ['GOLDEN RETRIEVER', 'goldie', 'Dog breed']) {
      const listed = await call('GET', `/media?label=${encodeURIComponent(term)}`, t.tenant.userKey);
      assert.equal(listed.statusCode, 200, listed.body);
      assert.deepEqual(
        listed.json().items.map((m: { id: string }) => m.id),
        [media],
        term,
      );
    }
    // Renaming an entry in another case renames its label as shown.
    const renamed = await call('PATCH', `/label-banks/${bank.id}/entries/${golden.id}`, t.tenant.adminKey, { name: 'golden RETRIEVER' });
    assert.equal(renamed.statusCode, 200, renamed.body);
    assert.equal(renamed.json().label_id, golden.label_id, 'the same label');
    assert.equal((await call('GET', `/media/${media}/labels`, t.tenant.userKey)).json().items[0].name, 'golden RETRIEVER');
  });

  it('takes a label named like a phrase as its entry: listed, counted, searched and removed as the entry, until the phrase goes', async () => {
    const [early, pup, dog, both] = [
      await upload(t.tenant.userKey),
      await upload(t.tenant.userKey),
      await upload(t.tenant.userKey),
      await upload(t.tenant.userKey),
    ];
    // Labelled before any bank says what a whelp is.
    await call('POST', `/media/${early}/labels`, t.tenant.userKey, { labels: [{ name: 'Whelp', confidence: 0.6 }] });
    const bank = await createBank(t.tenant.adminKey, {
      name: 'Canines',
      entries: [{ name: 'Canine' }, { name: 'Hound', parent: 'Canine', phrases: ['whelp', 'Pup'] }],
    });
    const hound = entryNamed(bank, 'Hound');
    await call('POST', `/media/${pup}/labels`, t.tenant.userKey, { labels: [{ name: 'pup', confidence: 0.8 }] });
    await call('POST', `/media/${dog}/labels`, t.tenant.userKey, { labels: [{ name: 'hound', confidence: 0.7 }] });
    await call('POST', `/media/${both}/labels`, t.tenant.userKey, {
      labels: [
        { name: 'hound', confidence: 0.5, frames: [{ t: 2 }] },
        { name: 'pup', confidence: 0.9, frames: [{ t: 1 }] },
      ],
    });

    const labelsOf = async (media: string) => (await call('GET', `/media/${media}/labels`, t.tenant.userKey)).json().items;
    for (const media of [early, pup, dog]) {
      const items = await labelsOf(media);
      assert.deepEqual(
        items.map((l: { label_id: string; name: string; parent: string }) => [l.label_id, l.name, l.parent]),
        [[hound.label_id, 'Hound', 'Canine']],
        'the entry, not a label of its own',
      );
    }
    const merged = (await labelsOf(both))[0];
    assert.deepEqual(
      [merged.name, merged.count, merged.confidence, merged.mean_confidence, merged.frames.map((f: { t: number }) => f.t)],
      ['Hound', 2, 0.9, 0.7, [1, 2]],
      'one label of the source, both rows in it',
    );
    assert.deepEqual(
      (await call('GET', `/media/${both}`, t.tenant.userKey)).json().labels.map((l: { name: string; count: number }) => [l.name, l.count]),
      [['Hound', 2]],
    );

    // The dictionary lists the entry only, with no child named like its phrase.
    const dictionary = (await call('GET', '/labels?limit=500', t.tenant.userKey)).json().items.map((l: { name: string }) => l.name);
    assert.ok(dictionary.includes('Hound'));
    assert.ok(!dictionary.some((n: string) => ['whelp', 'Whelp', 'pup'].includes(n)), dictionary.join(', '));
    assert.deepEqual((await call('GET', `/labels?parent_id=${hound.label_id}`, t.tenant.userKey)).json().items, []);
    const stats = (await call('GET', `/label-banks/${bank.id}/stats`, t.tenant.userKey)).json().entries;
    assert.deepEqual(
      stats.map((e: { name: string; usage_count: number }) => [e.name, e.usage_count]),
      [
        ['Canine', 0],
        ['Hound', 4],
      ],
      'the phrase labels written since the entry count under it (one per media and label)',
    );

    // Searching the entry, its phrase or its parent finds them all.
    const found = async (term: string) =>
      ((await call('GET', `/media?label=${encodeURIComponent(term)}`, t.tenant.userKey)).json().items as Array<{ id: string }>).map((m) => m.id).sort();
    const all = [early, pup, dog, both].sort();
    for (const term of ['hound', 'Pup', 'whelp', 'canine']) assert.deepEqual(await found(term), all, term);
    const searched = (await call('GET', '/search?q=whelp&limit=100', t.tenant.userKey)).json().items.map((m: { id: string }) => m.id);
    assert.deepEqual([...searched].sort(), all);
    const db = t.ctx.database.db;
    assert.deepEqual((await labelWithAncestors(db, t.tenant.id, [hound.label_id])).map((l) => l.name).sort(), ['canine', 'hound']);
    // Feeds show the entry and its parent; related media are those of the entry, the phrase's included.
    const feed = (await call('GET', '/feed/new?limit=100', t.tenant.userKey)).json().items;
    assert.deepEqual(feed.find((i: { id: string }) => i.id === pup).labels, ['Canine', 'Hound']);
    const related = (await call('GET', `/media/${pup}/related?limit=100`, t.tenant.userKey)).json().items.map((m: { id: string }) => m.id);
    assert.deepEqual(related.slice(0, 3).sort(), [early, dog, both].sort(), related.join(', '));

    // Removing the entry's label removes its phrase's row too.
    assert.equal((await call('DELETE', `/media/${both}/labels/${hound.label_id}`, t.tenant.userKey)).statusCode, 204);
    assert.deepEqual(await labelsOf(both), []);

    // Without the phrase, the label is its own again.
    const edited = await call('PATCH', `/label-banks/${bank.id}/entries/${hound.id}`, t.tenant.adminKey, { phrases: ['whelp'] });
    assert.equal(edited.statusCode, 200, edited.body);
    assert.deepEqual(
      (await labelsOf(pup)).map((l: { name: string; parent: string | null }) => [l.name, l.parent]),
      [['pup', null]],
    );
    assert.deepEqual(await found('hound'), [early, dog].sort());
    assert.deepEqual(await found('pup'), [pup]);
    assert.ok((await call('GET', '/labels?limit=500', t.tenant.userKey)).json().items.some((l: { name: string }) => l.name === 'pup'));
    assert.equal((await call('DELETE', `/label-banks/${bank.id}`, t.tenant.adminKey)).statusCode, 204);
  });

  it("shows the models' labels as their global banks spell them, also banks stored before names kept their case", async () => {
    await ensureModelBanks(t.ctx.labelBanks);
    const db = t.ctx.database.db;
    const objects = (await t.ctx.labelBanks.findGlobalByName('model-objects'))!;
    const moderation = (await t.ctx.labelBanks.findGlobalByName('model-moderation'))!;
    // As a database from before 0016 holds them: no display names.
    await db.updateTable('label_bank_entries').set({ display_name: null }).where('bank_id', 'in', [objects.id, moderation.id]).execute();
    await db.updateTable('labels').set({ display_name: null }).where('name', 'in', ['bicycle', 'vehicle']).execute();
    // The other tenant: this one spells vehicle its own way, in a bank of its own (tenant banks come first).
    const media = await upload(t.other.userKey);
    await t.ctx.labels.addLabels({ system: true, tenantId: t.other.id }, media, [{ name: 'bicycle', confidence: 0.9, source: 'model' }]);
    assert.deepEqual(
      (await call('GET', `/media/${media}/labels`, t.other.userKey)).json().items.map((l: { name: string; parent: string }) => [l.name, l.parent]),
      [['bicycle', 'vehicle']],
      'not known yet',
    );
    await ensureModelBanks(t.ctx.labelBanks);
    assert.deepEqual(
      (await call('GET', `/media/${media}/labels`, t.other.userKey)).json().items.map((l: { name: string; parent: string }) => [l.name, l.parent]),
      [['Bicycle', 'Vehicle']],
      'the taxonomy spells them at start-up',
    );
    const exported = (await call('GET', `/label-banks/${objects.id}/export`, t.other.userKey)).json();
    assert.deepEqual(
      exported.entries.find((e: { name: string }) => e.name === 'Bicycle'),
      { name: 'Bicycle', parent: 'Vehicle', phrases: [], threshold: null },
    );
    // An operator's spelling stays.
    await db.updateTable('label_bank_entries').set({ display_name: 'BICYCLE' }).where('bank_id', '=', objects.id).where('name', '=', 'bicycle').execute();
    await ensureModelBanks(t.ctx.labelBanks);
    const entry = await db
      .selectFrom('label_bank_entries')
      .select('display_name')
      .where('bank_id', '=', objects.id)
      .where('name', '=', 'bicycle')
      .executeTakeFirstOrThrow();
    assert.equal(entry.display_name, 'BICYCLE');
    for (const b of [objects, moderation]) await t.ctx.labelBanks.delete({ global: true }, b.kind, b.id);
  });

  it('imports global banks from the command line only', async () => {
    const file = path.join(t.env.tmp, 'global-bank.json');
    await fs.writeFile(
      file,
      JSON.stringify({
        format: 'qasar.label-bank',
        version: 1,
        name: 'landmarks',
        kind: 'general',
        entries: [{ name: 'tower' }, { name: 'bridge', phrases: ['span'] }],
      }),
    );
    const cli = (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', path.resolve(import.meta.dirname, '../../src/cli/main.ts'), 'label-bank', ...args], {
        env: { ...process.env, ...t.env.env, LOG_LEVEL: 'silent' },
        encoding: 'utf8',
        timeout: 30_000,
      });
    const refused = cli(['import', file]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--global/);
    const done = cli(['import', '--global', file]);
    assert.equal(done.status, 0, done.stderr);
    assert.equal(JSON.parse(done.stdout).bank.scope, 'global');
    const seen = (await call('GET', '/label-banks', t.other.userKey)).json().items.find((b: { name: string }) => b.name === 'landmarks');
    assert.equal(seen.scope, 'global');
    assert.equal(seen.entry_count, 2);
    expectProblem(await call('DELETE', `/label-banks/${seen.id}`, t.other.adminKey), 403, 'forbidden');
    const exported = cli(['export', '--global', 'landmarks']);
    assert.equal(exported.status, 0, exported.stderr);
    assert.deepEqual(
      JSON.parse(exported.stdout)
        .entries.map((e: { name: string }) => e.name)
        .sort(),
      ['bridge', 'tower'],
    );
    assert.equal(cli(['delete', '--global', 'landmarks']).status, 0);
    assert.equal((await call('GET', `/label-banks/${seen.id}`, t.other.userKey)).statusCode, 404);
  });
});
