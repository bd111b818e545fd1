import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MediaChange } from '../../src/events/media-changes.js';
import { toJson } from '../../src/db/schema.js';
import { newId } from '../../src/shared/ids.js';
import { patchedTags } from '../../src/media/media-service.js';
import { expectProblem, SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

/** Uploads through the chunked API. */
async function upload(client: SessionClient, data: Buffer, opts: Parameters<SessionClient['uploadWhole']>[1]): Promise<string> {
  const { completed } = await client.uploadWhole(data, opts);
  assert.equal(completed.statusCode, 201, completed.body);
  return completed.json().id;
}

describe('the whole media record and metadata edits', () => {
  let t: TestApp;
  let bobKey: string;
  let videoId: string;
  let fileId: string;
  const changes: MediaChange[] = [];

  const get = (id: string, key = t.tenant.userKey) => t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(key) });
  const patch = (id: string, payload: unknown, key = t.tenant.userKey) =>
    t.app.inject({ method: 'PATCH', url: `/api/v1/media/${id}`, headers: t.auth(key), payload: payload as Record<string, unknown> });

  before(async () => {
    t = await startTestApp({}, { worker: true });
    bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    t.ctx.changes.on((c) => {
      changes.push(c);
    });
    const client = new SessionClient(t.app, t.tenant.userKey);
    videoId = await upload(client, await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), {
      filename: 'bikes.mp4',
      chunkSize: 256 * 1024,
      extra: { caption: 'Bikes', user_tags: ['Street'], labels: ['cycling'] },
    });
    fileId = await upload(client, randomBytes(3000), { filename: 'notes.bin', chunkSize: 1024 });
    await waitFor('video ready', async () => ['ready', 'error'].includes((await get(videoId)).json().status), 60_000);
  });
  after(() => t.close());

  it('returns status, probe facts, artifacts and URLs, labels with confidence, history and timestamps', async () => {
    const res = await get(videoId);
    assert.equal(res.statusCode, 200, res.body);
    const m = res.json();
    assert.equal(m.status, 'ready', JSON.stringify(m.error));
    assert.equal(m.kind, 'video');
    assert.equal(m.caption, 'Bikes');
    assert.deepEqual(m.user_tags, ['Street']);
    assert.equal(m.title, null);
    assert.equal(m.description, null);
    assert.equal(m.moderation_state, 'none');
    assert.equal(m.moderation, null);
    assert.deepEqual(
      m.labels.map((l: { name: string; source: string; confidence: number }) => [l.name, l.source, l.confidence]),
      [['cycling', 'user', 1]],
    );
    assert.equal(m.probe.video.width, 640);
    assert.equal(m.probe.video.height, 272);
    assert.ok(Math.abs(m.probe.duration - 10) < 0.2, `duration ${m.probe.duration}`);
    assert.equal(m.file_metadata.width, 640);
    assert.equal(m.artifacts.hls, 'hls/master.m3u8');
    assert.equal(m.artifacts.dash, 'dash/manifest.mpd');
    assert.equal(m.urls.hls, `/api/v1/media/${videoId}/files/hls/master.m3u8`);
    assert.deepEqual(m.pending, []);
    assert.deepEqual(m.caption_tracks, []);

    assert.deepEqual(
      m.status_history.map((h: { status: string }) => h.status),
      ['queued', 'processing', 'ready'],
    );
    const times = m.status_history.map((h: { at: string }) => Date.parse(h.at));
    assert.ok(
      times.every((x: number, i: number) => i === 0 || x >= times[i - 1]),
      `history in order: ${JSON.stringify(m.status_history)}`,
    );
    assert.ok(m.status_history.every((h: { error_code: unknown }) => h.error_code === null));
    assert.ok(Date.parse(m.processing_started_at) >= Date.parse(m.created_at));
    assert.ok(Date.parse(m.ready_at) >= Date.parse(m.processing_started_at));
    // The API URL of an artifact serves it.
    const master = await t.app.inject({ url: m.urls.hls, headers: t.auth(t.tenant.userKey) });
    assert.equal(master.statusCode, 200);
    assert.match(master.body, /^#EXTM3U/);
  });

  it('keeps the list light: no history, no caption tracks', async () => {
    const res = await t.app.inject({ url: '/api/v1/media', headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    const item = res.json().items.find((i: { id: string }) => i.id === videoId);
    assert.equal(item.status_history, undefined);
    assert.equal(item.caption_tracks, undefined);
    assert.equal(item.title, null);
    assert.equal(item.moderation_state, 'none');
  });

  it('edits caption, title, description and tags, normalised, and returns the whole record', async () => {
    const before = (await get(fileId)).json();
    changes.length = 0;
    const res = await patch(fileId, {
      caption: '  Meeting\r\nnotes  ',
      title: '  Quarterly   review ',
      description: 'Line one\r\nLine two\t(tabbed)',
      tags: ['  Work ', 'work', 'Q3   2024', 'Finance'],
    });
    assert.equal(res.statusCode, 200, res.body);
    const m = res.json();
    assert.equal(m.caption, 'Meeting\nnotes');
    assert.equal(m.title, 'Quarterly review');
    assert.equal(m.description, 'Line one\nLine two\t(tabbed)');
    assert.deepEqual(m.user_tags, ['Work', 'Q3 2024', 'Finance']);
    assert.ok(Array.isArray(m.status_history), 'the whole record comes back');
    assert.ok(m.updated_at > before.updated_at);
    assert.deepEqual(
      changes.map((c) => [c.mediaId, c.reason]),
      [[fileId, 'metadata']],
    );

    const edited = await patch(fileId, { tags: { remove: ['WORK', 'nope'], add: ['finance', 'Audit'] } });
    assert.equal(edited.statusCode, 200, edited.body);
    assert.deepEqual(edited.json().user_tags, ['Q3 2024', 'Finance', 'Audit'], 'removal and duplicates matched case-insensitively');
    const replaced = await patch(fileId, { tags: { replace: ['One'] }, title: null });
    assert.deepEqual(replaced.json().user_tags, ['One']);
    assert.equal(replaced.json().title, null);
    assert.equal(replaced.json().caption, 'Meeting\nnotes', 'fields not sent stay as they were');

    const again = (await get(fileId)).json();
    assert.deepEqual(again.user_tags, ['One']);
    assert.equal(again.description, 'Line one\nLine two\t(tabbed)');
  });

  it('refuses invalid edits with a problem and changes nothing', async () => {
    const before = (await get(fileId)).json();
    const cases: Array<[string, unknown]> = [
      ['title too long', { title: 'x'.repeat(201) }],
      ['title on two lines', { title: 'a\nb' }],
      ['caption too long', { caption: 'c'.repeat(5001) }],
      ['description with a control character', { description: 'bell \u0007' }],
      ['tag too long', { tags: ['t'.repeat(65)] }],
      ['too many tags', { tags: Array.from({ length: 51 }, (_v, i) => `tag${i}`) }],
      ['replace with add', { tags: { replace: ['a'], add: ['b'] } }],
      ['unknown field', { owner: 'bob' }],
      ['tags object with an unknown key', { tags: { rename: ['a'] } }],
    ];
    for (const [what, body] of cases) {
      const res = await patch(fileId, { caption: 'should not be written', ...(body as object) });
      assert.doesNotThrow(() => expectProblem(res, 400, 'validation-failed'), `${what}: ${res.statusCode} ${res.body}`);
    }
    const after = (await get(fileId)).json();
    assert.equal(after.caption, before.caption);
    assert.deepEqual(after.user_tags, before.user_tags);
    assert.equal(after.updated_at, before.updated_at);
  });

  it('lets only the owner or an admin edit; another tenant sees nothing', async () => {
    const asBob = await patch(fileId, { caption: 'bob was here' }, bobKey);
    expectProblem(asBob, 403, 'forbidden');
    assert.equal((await get(fileId, bobKey)).statusCode, 200, 'reading is tenant-wide');
    const asAdmin = await patch(fileId, { caption: 'approved by admin' }, t.tenant.adminKey);
    assert.equal(asAdmin.statusCode, 200, asAdmin.body);
    assert.equal(asAdmin.json().caption, 'approved by admin');

    expectProblem(await get(fileId, t.other.adminKey), 404, 'not-found');
    expectProblem(await patch(fileId, { caption: 'x' }, t.other.adminKey), 404, 'not-found');
    expectProblem(await patch(fileId, { caption: 'x' }, t.other.userKey), 404, 'not-found');
    expectProblem(await get('0190a0a0-0000-7000-8000-000000000000'), 404, 'not-found');
    assert.equal((await get(fileId)).json().caption, 'approved by admin');
  });

  it('applies concurrent tag additions without losing any', async () => {
    await patch(fileId, { tags: [] });
    const adds = Array.from({ length: 6 }, (_v, i) => patch(fileId, { tags: { add: [`parallel-${i}`] } }));
    const results = await Promise.all(adds);
    for (const r of results) assert.equal(r.statusCode, 200, r.body);
    const tags = (await get(fileId)).json().user_tags as string[];
    assert.deepEqual([...tags].sort(), Array.from({ length: 6 }, (_v, i) => `parallel-${i}`).sort());
  });

  it('includes the newest moderation decision', async () => {
    const db = t.ctx.database.db;
    const row = (at: string, decision: 'hold' | 'approve', state: 'held' | 'approved', id: string) => ({
      id,
      tenant_id: t.tenant.id,
      media_id: videoId,
      decision,
      previous_state: 'none' as const,
      state,
      note: decision === 'approve' ? 'fine' : null,
      labels: toJson([{ name: 'violence', confidence: 0.7 }]),
      actor_key_id: null,
      actor_user_id: decision === 'approve' ? 'mod' : null,
      at,
    });
    assert.equal((await get(videoId)).json().moderation, null, 'never moderated');
    // As two transitions leave them: each records a decision and moves the state.
    await db
      .insertInto('moderation_decisions')
      .values([row('2026-01-01T00:00:00.000Z', 'hold', 'held', newId()), row('2026-01-02T00:00:00.000Z', 'approve', 'approved', newId())])
      .execute();
    await db.updateTable('mediaassets').set({ moderation_state: 'approved' }).where('id', '=', videoId).execute();
    // As the moderation service does after its writes: readers forget what they cached.
    await t.ctx.changes.emit({ tenantId: t.tenant.id, mediaId: videoId, reason: 'moderation' });
    const m = (await get(videoId)).json();
    assert.deepEqual(m.moderation, {
      decision: 'approve',
      state: 'approved',
      note: 'fine',
      labels: [{ name: 'violence', confidence: 0.7 }],
      actor_user_id: 'mod',
      at: '2026-01-02T00:00:00.000Z',
    });
  });

  it('answers moderation-hidden for the record and caption tracks of held media to anyone but its owner and admins', async () => {
    const client = new SessionClient(t.app, t.tenant.userKey);
    const held = await upload(client, randomBytes(2000), { filename: 'held.bin', chunkSize: 1024 });
    const captions = (id: string, key: string) => t.app.inject({ url: `/api/v1/media/${id}/captions`, headers: t.auth(key) });
    assert.equal((await get(held, bobKey)).statusCode, 200, 'readable before it is held');
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, held, [{ name: 'nudity', kind: 'moderation', confidence: 0.95, source: 'model' }]);

    const asBob = expectProblem(await get(held, bobKey), 403, 'moderation-hidden');
    assert.equal(asBob.labels, undefined, 'nothing of the record');
    expectProblem(await captions(held, bobKey), 403, 'moderation-hidden');
    expectProblem(await t.app.inject({ url: `/api/v1/media/${held}/package`, headers: t.auth(bobKey) }), 403, 'moderation-hidden');
    for (const key of [t.tenant.userKey, t.tenant.adminKey]) {
      const res = await get(held, key);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().moderation_state, 'held');
      assert.deepEqual(
        res.json().labels.map((l: { name: string }) => l.name),
        ['nudity'],
      );
      assert.equal((await captions(held, key)).statusCode, 200);
    }
    expectProblem(await get(held, t.other.adminKey), 404, 'not-found');
    expectProblem(await captions(held, t.other.adminKey), 404, 'not-found');

    const rejected = await t.app.inject({
      method: 'POST',
      url: `/api/v1/media/${held}/moderation`,
      headers: t.auth(t.tenant.adminKey),
      payload: { decision: 'reject' },
    });
    assert.equal(rejected.statusCode, 200, rejected.body);
    expectProblem(await get(held, bobKey), 403, 'moderation-hidden');
    const approved = await t.app.inject({
      method: 'POST',
      url: `/api/v1/media/${held}/moderation`,
      headers: t.auth(t.tenant.adminKey),
      payload: { decision: 'approve' },
    });
    assert.equal(approved.statusCode, 200, approved.body);
    assert.equal((await get(held, bobKey)).statusCode, 200);
    assert.equal((await captions(held, bobKey)).statusCode, 200);
  });

  it('computes tag edits case-insensitively (unit)', () => {
    assert.deepEqual(patchedTags(['Alpha', 'Beta'], { remove: ['alpha'], add: ['BETA', 'Gamma '] }), ['Beta', 'Gamma']);
    assert.deepEqual(patchedTags(['Alpha'], ['  x ', 'X', '']), ['x']);
    assert.throws(() => patchedTags([], { replace: [], remove: ['a'] }), /replace cannot be combined/);
  });
});
