import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MediaChange } from '../../src/events/media-changes.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { uploadWithPoster } from '../support/media-seed.js';

const API = '/api/v1';

describe('moderation workflow', () => {
  let t: TestApp;
  let bobKey: string;
  const changes: MediaChange[] = [];
  /** The first test's media flagged just below the server default. */
  let belowDefault: string;

  before(async () => {
    t = await startTestApp();
    bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    t.ctx.changes.on((c) => {
      changes.push(c);
    });
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

  /** A ready media of alice's with a poster file, so that its package has a playback URL. */
  async function upload(key = t.tenant.userKey): Promise<string> {
    return (await uploadWithPoster(t, key, 'jpeg bytes')).id;
  }

  const flag = (mediaId: string, name: string, confidence: number) =>
    t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, mediaId, [{ name, kind: 'moderation', confidence, source: 'model' }]);
  const stateOf = async (mediaId: string) => (await call('GET', `/media/${mediaId}/moderation`, t.tenant.adminKey)).json().state;
  const playUrl = async (mediaId: string, key: string) => {
    const res = await call('GET', `/media/${mediaId}/package`, key);
    assert.equal(res.statusCode, 200, res.body);
    return new URL(res.json().poster.jpeg).pathname;
  };
  const play = (pathname: string) => t.app.inject({ method: 'GET', url: pathname });

  it('holds existing media when a moderation bank entry gives its label a lower threshold', async () => {
    const media = await upload();
    await flag(media, 'weapons', 0.7);
    assert.equal(await stateOf(media), 'none', 'below the server default of 0.8');
    const bank = await call('POST', '/moderation-label-banks', t.tenant.adminKey, { name: 'arms', entries: [{ name: 'weapons', threshold: 0.65 }] });
    assert.equal(bank.statusCode, 201, bank.body);
    assert.equal(await stateOf(media), 'held', 'the entry threshold applies to media labelled before it existed');
    const other = await upload();
    await flag(other, 'weapons', 0.6);
    assert.equal(await stateOf(other), 'none', 'still below the entry threshold');
  });

  it('holds a media when a moderation label meets the threshold, not below it', async () => {
    const below = await upload();
    const at = await upload();
    await flag(below, 'nudity', 0.79);
    await flag(at, 'nudity', 0.8);
    assert.equal(await stateOf(below), 'none', 'the server default threshold is 0.8');
    belowDefault = below;
    assert.equal(await stateOf(at), 'held');
    const general = await upload();
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, general, [{ name: 'nudity', confidence: 1, source: 'model' }]);
    assert.equal(await stateOf(general), 'none', 'only moderation labels hold');
    assert.ok(changes.some((c) => c.mediaId === at && c.reason === 'moderation'));
    assert.ok(changes.some((c) => c.mediaId === below && c.reason === 'labels'));
    assert.ok(!changes.some((c) => c.mediaId === below && c.reason === 'moderation'));

    const moderation = (await call('GET', `/media/${at}/moderation`, t.tenant.userKey)).json();
    assert.equal(moderation.decisions.length, 1);
    assert.equal(moderation.decisions[0].decision, 'hold');
    assert.equal(moderation.decisions[0].decided_by, null, 'the system held it');
    assert.deepEqual(moderation.decisions[0].labels, [{ name: 'nudity', confidence: 0.8, threshold: 0.8 }]);
    expectProblem(await call('GET', `/media/${at}/moderation`, bobKey), 403, 'forbidden');
  });

  it('uses the per-label threshold before the bank entry, the tenant default and the server default', async () => {
    expectProblem(await call('PUT', '/moderation/thresholds', t.tenant.userKey, { default: 0.5, labels: [] }), 403, 'forbidden');
    expectProblem(await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { default: 1.5, labels: [] }), 400, 'validation-failed');
    expectProblem(
      await call('PUT', '/moderation/thresholds', t.tenant.adminKey, {
        labels: [
          { label: 'x', threshold: 0.1 },
          { label: 'X', threshold: 0.2 },
        ],
      }),
      400,
      'validation-failed',
    );
    const put = await call('PUT', '/moderation/thresholds', t.tenant.adminKey, {
      default: 0.5,
      labels: [
        { label: 'Violence', threshold: 0.95 },
        { label: 'weapon', threshold: 0 },
      ],
    });
    assert.equal(put.statusCode, 200, put.body);
    const { held, ...thresholds } = put.json() as Record<string, any>;
    assert.equal(held, 1, 'the tenant default 0.5 holds the media flagged nudity 0.79 before');
    assert.equal(await stateOf(belowDefault), 'held');
    assert.deepEqual(
      { ...thresholds, labels: thresholds.labels.map((l: { label: string; threshold: number }) => [l.label, l.threshold]) },
      {
        default: 0.5,
        server_default: 0.8,
        effective_default: 0.5,
        labels: [
          ['Violence', 0.95],
          ['weapon', 0],
        ],
      },
    );
    assert.equal((await call('GET', '/moderation/thresholds', t.tenant.userKey)).json().default, 0.5, 'every key reads them');
    const bank = await call('POST', '/moderation-label-banks', t.tenant.adminKey, {
      name: 'safety',
      entries: [{ name: 'gore', threshold: 0.7, phrases: ['blood'] }],
    });
    assert.equal(bank.statusCode, 201, bank.body);

    const violence = await upload();
    const gore = await upload();
    const drugs = await upload();
    await flag(violence, 'violence', 0.9);
    await flag(gore, 'blood', 0.6);
    await flag(drugs, 'drugs', 0.55);
    assert.equal(await stateOf(violence), 'none', 'its own 0.95 beats the tenant default 0.5');
    assert.equal(await stateOf(gore), 'none', "the bank entry's 0.7 (matched by phrase) beats the tenant default");
    assert.equal(await stateOf(drugs), 'held', 'the tenant default 0.5 beats the server default 0.8');
    await flag(gore, 'blood', 0.7);
    assert.equal(await stateOf(gore), 'held');

    // The other tenant keeps the server default.
    const other = (await call('GET', '/moderation/thresholds', t.other.adminKey)).json();
    assert.deepEqual(other, { default: null, server_default: 0.8, effective_default: 0.8, labels: [] });
    // Reset for the tests that follow.
    await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { default: null, labels: [] });
    assert.equal((await call('DELETE', `/moderation-label-banks/${bank.json().id}`, t.tenant.adminKey)).statusCode, 204);
  });

  it("an entry's threshold covers its phrases: a label named like a phrase is held as the entry", async () => {
    const bank = await call('POST', '/moderation-label-banks', t.tenant.adminKey, {
      name: 'house rules',
      entries: [
        { name: 'Violence', threshold: 0.5, phrases: ['Gore'] },
        { name: 'Drugs', phrases: ['cocaine'] },
      ],
    });
    assert.equal(bank.statusCode, 201, bank.body);

    // As found: the phrase, at 0.9 and at 0.6 (above the entry's 0.5, below the server default 0.8).
    for (const confidence of [0.9, 0.6]) {
      const media = await upload();
      const added = await call('POST', `/media/${media}/labels`, t.tenant.adminKey, { labels: [{ name: 'gore', kind: 'moderation', confidence }] });
      assert.equal(added.statusCode, 200, added.body);
      assert.equal(await stateOf(media), 'held', `gore at ${confidence}`);
      const hold = (await call('GET', `/media/${media}/moderation`, t.tenant.userKey)).json().decisions.at(-1);
      assert.deepEqual(hold.labels, [{ name: 'Violence', confidence, threshold: 0.5 }], 'held as the entry, named as it was given');
    }
    const below = await upload();
    await flag(below, 'gore', 0.4);
    assert.equal(await stateOf(below), 'none');

    // A per-label threshold on the entry's label covers its phrases too.
    const put = await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { labels: [{ label: 'drugs', threshold: 0.3 }] });
    assert.equal(put.statusCode, 200, put.body);
    const cocaine = await upload();
    await call('POST', `/media/${cocaine}/labels`, t.tenant.adminKey, { labels: [{ name: 'cocaine', kind: 'moderation', confidence: 0.4 }] });
    assert.equal(await stateOf(cocaine), 'held', "the threshold of drugs (0.3), not the server's 0.8");

    // Labels the system writes from other sources, by the phrase's name.
    for (const source of ['model', 'ocr', 'transcript', 'caption'] as const) {
      const media = await upload();
      await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, media, [{ name: 'Cocaine', kind: 'moderation', confidence: 0.35, source }]);
      assert.equal(await stateOf(media), 'held', source);
    }

    // One judgement: approved with the entry seen, its phrase later does not hold it again.
    const approved = await upload();
    await flag(approved, 'violence', 0.7);
    assert.equal(await stateOf(approved), 'held');
    await call('POST', `/media/${approved}/moderation`, t.tenant.adminKey, { decision: 'approve' });
    await flag(approved, 'gore', 0.95);
    assert.equal(await stateOf(approved), 'approved', 'gore is violence, which the moderator saw');
    const labels = (await call('GET', `/media/${approved}/moderation`, t.tenant.adminKey)).json().labels;
    assert.deepEqual(labels, [{ name: 'Violence', confidence: 0.95, threshold: 0.5 }], 'one label: the entry, at the best of its names');

    // Lowering the entry's threshold holds media labelled with the phrase before.
    const earlier = await upload();
    await flag(earlier, 'gore', 0.3);
    assert.equal(await stateOf(earlier), 'none');
    const violence = bank.json().entries.find((e: { name: string }) => e.name === 'Violence');
    const lowered = await call('PATCH', `/moderation-label-banks/${bank.json().id}/entries/${violence.id}`, t.tenant.adminKey, { threshold: 0.25 });
    assert.equal(lowered.statusCode, 200, lowered.body);
    assert.equal(await stateOf(earlier), 'held');

    await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { default: null, labels: [] });
    assert.equal((await call('DELETE', `/moderation-label-banks/${bank.json().id}`, t.tenant.adminKey)).statusCode, 204);
  });

  it('lets only admin keys add or remove moderation labels by hand', async () => {
    const media = await upload();
    expectProblem(await call('POST', `/media/${media}/labels`, t.tenant.userKey, { labels: [{ name: 'nudity', kind: 'moderation' }] }), 403, 'forbidden');
    const added = await call('POST', `/media/${media}/labels`, t.tenant.adminKey, { labels: [{ name: 'nudity', kind: 'moderation', confidence: 0.95 }] });
    assert.equal(added.statusCode, 200, added.body);
    assert.equal(await stateOf(media), 'held', 'a moderator flagging by hand holds too');
    const labelId = added.json().items[0].label_id;
    expectProblem(await call('DELETE', `/media/${media}/labels/${labelId}`, t.tenant.userKey), 403, 'forbidden');
    assert.equal((await call('DELETE', `/media/${media}/labels/${labelId}`, t.tenant.adminKey)).statusCode, 204);
    assert.equal(await stateOf(media), 'held', 'removing the label does not release the media: a moderator decides');
  });

  it("hides held media from other users' package and playback, not from the owner or admins", async () => {
    const media = await upload();
    const sharedBefore = await playUrl(media, bobKey);
    assert.equal((await play(sharedBefore)).statusCode, 200);
    await flag(media, 'nudity', 0.99);

    expectProblem(await call('GET', `/media/${media}/package`, bobKey), 403, 'moderation-hidden');
    expectProblem(await call('GET', `/media/${media}/labels`, bobKey), 403, 'moderation-hidden');
    expectProblem(await call('GET', `/media/${media}/files/posters/poster.jpg`, bobKey), 403, 'moderation-hidden');
    expectProblem(await play(sharedBefore), 403, 'moderation-hidden');

    // The owner and admins see the package, with no playback URL, and read the files with their key.
    for (const key of [t.tenant.userKey, t.tenant.adminKey]) {
      const pkg = await call('GET', `/media/${media}/package`, key);
      assert.equal(pkg.statusCode, 200, pkg.body);
      assert.deepEqual(pkg.json().poster, { jpeg: null, webp: null });
      const own = await call('GET', `/media/${media}/files/posters/poster.jpg`, key);
      assert.equal(own.statusCode, 200);
      assert.equal(own.body, 'jpeg bytes');
    }
    assert.equal((await call('GET', `/media/${media}/labels`, t.tenant.userKey)).statusCode, 200);

    // Approval releases it: earlier URLs play again, and the package hands out new ones.
    const approved = await call('POST', `/media/${media}/moderation`, t.tenant.adminKey, { decision: 'approve', note: 'art, fine' });
    assert.equal(approved.statusCode, 200, approved.body);
    assert.equal((await play(sharedBefore)).statusCode, 200);
    assert.equal((await play(await playUrl(media, t.tenant.userKey))).statusCode, 200);
    assert.equal((await call('GET', `/media/${media}/package`, bobKey)).statusCode, 200);
  });

  it('records approvals with who and when; the same labels do not hold it again, a new one does', async () => {
    const media = await upload();
    await flag(media, 'nudity', 0.85);
    expectProblem(await call('POST', `/media/${media}/moderation`, t.tenant.userKey, { decision: 'approve' }), 403, 'forbidden');
    expectProblem(await call('POST', `/media/${media}/moderation`, t.tenant.adminKey, { decision: 'maybe' }), 400, 'validation-failed');
    expectProblem(await call('POST', `/media/${media}/moderation`, t.tenant.adminKey, {}), 400, 'validation-failed');
    const startedAt = new Date().toISOString();
    const res = await call('POST', `/media/${media}/moderation`, t.tenant.adminKey, { decision: 'approve', note: 'reviewed' });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.state, 'approved');
    const decision = body.decisions.at(-1);
    assert.equal(decision.decision, 'approve');
    assert.equal(decision.previous_state, 'held');
    assert.equal(decision.note, 'reviewed');
    const adminKeyRow = await t.ctx.database.db
      .selectFrom('api_keys')
      .select('id')
      .where('tenant_id', '=', t.tenant.id)
      .where('is_admin', '=', 1)
      .executeTakeFirstOrThrow();
    assert.equal(decision.decided_by.key_id, adminKeyRow.id);
    assert.ok(decision.at >= startedAt);
    assert.deepEqual(decision.labels, [{ name: 'nudity', confidence: 0.85, threshold: 0.8 }], 'what the moderator saw');

    await flag(media, 'nudity', 0.97);
    assert.equal(await stateOf(media), 'approved', 'a higher confidence of a label the moderator saw does not re-hold');
    await flag(media, 'violence', 0.9);
    assert.equal(await stateOf(media), 'held', 'a label the moderator never saw does');
    const history = (await call('GET', `/media/${media}/moderation`, t.tenant.userKey)).json().decisions.map((d: { decision: string }) => d.decision);
    assert.deepEqual(history, ['hold', 'approve', 'hold']);
  });

  it('keeps rejected media hidden', async () => {
    const media = await upload();
    const before = await playUrl(media, bobKey);
    await flag(media, 'violence', 0.9);
    const rejected = await call('POST', `/media/${media}/moderation`, t.tenant.adminKey, { decision: 'reject', note: null });
    assert.equal(rejected.statusCode, 200, rejected.body);
    assert.equal(rejected.json().state, 'rejected');
    expectProblem(await call('GET', `/media/${media}/package`, bobKey), 403, 'moderation-hidden');
    expectProblem(await play(before), 403, 'moderation-hidden');
    assert.equal((await call('GET', `/media/${media}/package`, t.tenant.userKey)).statusCode, 200);
    await flag(media, 'weapon', 0.99);
    assert.equal(await stateOf(media), 'rejected', 'new labels do not move a rejected media');
  });

  it('lists held media only in the queue, longest held first, page by page; admin keys only', async () => {
    const start = (await call('GET', '/moderation/queue?limit=200', t.tenant.adminKey)).json().items.length;
    const held = [await upload(), await upload(), await upload()];
    for (const m of held) await flag(m, 'nudity', 0.9);
    const clean = await upload();
    await flag(clean, 'nudity', 0.1);
    await call('POST', `/media/${held[1]}/moderation`, t.tenant.adminKey, { decision: 'approve' });

    const all = (await call('GET', '/moderation/queue?limit=200', t.tenant.adminKey)).json();
    const ids = all.items.map((i: { media_id: string }) => i.media_id);
    assert.equal(ids.length, start + 2);
    assert.deepEqual(ids.slice(-2), [held[0], held[2]], 'oldest hold first; approved and clean media are not listed');
    const item = all.items.at(-1);
    assert.equal(item.user_id, 'alice');
    assert.deepEqual(item.labels, [{ name: 'nudity', confidence: 0.9, threshold: 0.8 }]);
    for (const i of all.items) assert.equal(await stateOf(i.media_id), 'held');

    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = (await call('GET', `/moderation/queue?limit=2${cursor ? `&cursor=${cursor}` : ''}`, t.tenant.adminKey)).json();
      paged.push(...page.items.map((i: { media_id: string }) => i.media_id));
      cursor = page.next_cursor;
    } while (cursor);
    assert.deepEqual(paged, ids);
    expectProblem(await call('GET', '/moderation/queue', t.tenant.userKey), 403, 'forbidden');
    expectProblem(await call('GET', '/moderation/queue?cursor=bad', t.tenant.adminKey), 400, 'validation-failed');
  });

  it("never shows another tenant's moderation: 404 as if absent, empty queue", async () => {
    const media = await upload();
    await flag(media, 'nudity', 0.9);
    for (const key of [t.other.adminKey, t.other.userKey]) {
      expectProblem(await call('GET', `/media/${media}/moderation`, key), 404, 'not-found');
      expectProblem(await call('POST', `/media/${media}/moderation`, key, { decision: 'approve' }), 404, 'not-found');
      expectProblem(await call('GET', `/media/${media}/package`, key), 404, 'not-found');
    }
    assert.deepEqual((await call('GET', '/moderation/queue', t.other.adminKey)).json().items, []);
    await assert.rejects(
      t.ctx.labels.addLabels({ system: true, tenantId: t.other.id }, media, [{ name: 'x', kind: 'moderation', confidence: 1, source: 'model' }]),
      /media not found/,
    );
    assert.equal(await stateOf(media), 'held', 'untouched');
  });

  it('holds existing media when a threshold is lowered, releases nothing when it is raised; other tenants untouched', async () => {
    const mild = await upload();
    const milder = await upload();
    const theirs = await upload(t.other.userKey);
    await flag(mild, 'smoking', 0.6);
    await flag(milder, 'smoking', 0.3);
    await t.ctx.labels.addLabels({ system: true, tenantId: t.other.id }, theirs, [{ name: 'smoking', kind: 'moderation', confidence: 0.6, source: 'model' }]);
    // Approved with the label at 0.6: lowering the threshold does not override the moderator.
    const approved = await upload();
    await flag(approved, 'smoking', 0.9);
    await call('POST', `/media/${approved}/moderation`, t.tenant.adminKey, { decision: 'approve' });
    await flag(approved, 'smoking', 0.6);
    for (const m of [mild, milder]) assert.equal(await stateOf(m), 'none');

    const lowered = await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { labels: [{ label: 'smoking', threshold: 0.5 }] });
    assert.equal(lowered.statusCode, 200, lowered.body);
    assert.equal(lowered.json().held, 1);
    assert.equal(await stateOf(mild), 'held');
    assert.equal(await stateOf(milder), 'none');
    assert.equal(await stateOf(approved), 'approved');
    const decision = (await call('GET', `/media/${mild}/moderation`, t.tenant.adminKey)).json().decisions.at(-1);
    assert.deepEqual([decision.decision, decision.decided_by, decision.labels], ['hold', null, [{ name: 'smoking', confidence: 0.6, threshold: 0.5 }]]);
    expectProblem(await call('GET', `/media/${mild}/package`, bobKey), 403, 'moderation-hidden');
    const queue = (await call('GET', '/moderation/queue?limit=200', t.tenant.adminKey)).json().items.map((i: { media_id: string }) => i.media_id);
    assert.ok(queue.includes(mild));
    const theirState = (await call('GET', `/media/${theirs}/moderation`, t.other.adminKey)).json().state;
    assert.equal(theirState, 'none', "another tenant's media keeps its own thresholds");

    const raised = await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { default: null, labels: [] });
    assert.equal(raised.json().held, 0);
    assert.equal(await stateOf(mild), 'held', 'a moderator releases it, not a threshold');
  });

  it('hides media held through the workflow from feeds, search and related media of other users until approved', async () => {
    const put = await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { labels: [{ label: 'graphic', threshold: 0.6 }] });
    assert.equal(put.statusCode, 200, put.body);
    const media = await upload();
    const sibling = await upload();
    for (const [id, caption] of [
      [media, 'lighthouse keeper at dusk'],
      [sibling, 'another lighthouse'],
    ] as const) {
      assert.equal((await call('PATCH', `/media/${id}`, t.tenant.userKey, { caption })).statusCode, 200);
      assert.equal((await call('POST', `/media/${id}/labels`, t.tenant.userKey, { labels: [{ name: 'lighthouse' }] })).statusCode, 200);
    }
    const seenBy = async (key: string) => {
      const ids = async (url: string) => {
        const res = await call('GET', url, key);
        assert.equal(res.statusCode, 200, res.body);
        return res.json().items.map((i: { id: string }) => i.id) as string[];
      };
      return {
        feed: (await ids('/feed/new?limit=100')).includes(media),
        search: (await ids('/search?q=lighthouse&limit=100')).includes(media),
        feedSearch: (await ids('/feed/search?q=lighthouse&limit=100')).includes(media),
        related: (await ids(`/media/${sibling}/related?limit=100`)).includes(media),
      };
    };
    const everywhere = { feed: true, search: true, feedSearch: true, related: true };
    assert.deepEqual(await seenBy(bobKey), everywhere, 'visible before');

    const flagged = await call('POST', `/media/${media}/labels`, t.tenant.adminKey, { labels: [{ name: 'graphic', kind: 'moderation', confidence: 0.7 }] });
    assert.equal(flagged.statusCode, 200, flagged.body);
    assert.equal(await stateOf(media), 'held');
    assert.deepEqual(await seenBy(bobKey), { feed: false, search: false, feedSearch: false, related: false }, 'hidden from bob');
    assert.deepEqual(await seenBy(t.tenant.userKey), { feed: false, search: true, feedSearch: false, related: false }, 'the owner finds it in search only');
    expectProblem(await call('GET', `/media/${media}`, bobKey), 403, 'moderation-hidden');
    expectProblem(await call('GET', `/media/${media}/related`, bobKey), 403, 'moderation-hidden');

    const approved = await call('POST', `/media/${media}/moderation`, t.tenant.adminKey, { decision: 'approve', note: 'a painting' });
    assert.equal(approved.statusCode, 200, approved.body);
    assert.deepEqual(await seenBy(bobKey), everywhere, 'back after approval');
    assert.equal((await call('GET', `/media/${media}`, bobKey)).statusCode, 200);
    await call('PUT', '/moderation/thresholds', t.tenant.adminKey, { default: null, labels: [] });
  });

  it('documents the endpoints in the OpenAPI description', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const p of [
      '/api/v1/moderation/queue',
      '/api/v1/moderation/thresholds',
      '/api/v1/media/{media_id}/moderation',
      '/api/v1/label-banks/{bank_id}/stats',
      '/api/v1/moderation-label-banks/import',
    ]) {
      assert.ok(doc.paths[p], p);
    }
  });
});
