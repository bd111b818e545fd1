/**
 * Every write to a media records its event in the media event log, in the transaction of the
 * write: ingest, metadata, labels, moderation, captions, processing results and deletion. A write
 * that fails or is refused records none, and each announcement carries its event's seq.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { MediaChange } from '../../src/events/media-changes.js';
import { mediaEventsSince, type MediaEvent } from '../../src/events/media-events.js';
import { saveFileMetadata } from '../../src/processing/steps/scratch-step.js';
import type { Principal } from '../../src/tenancy/principal.js';
import { insertMedia } from '../support/media-seed.js';
import { BACKEND, expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const SRT = '1\n00:00:01,000 --> 00:00:02,000\nHello\n';

describe(`media event writers (${BACKEND} backend)`, () => {
  let t: TestApp;
  let owner: Principal;
  let admin: Principal;
  let bobKey: string;
  const heard: MediaChange[] = [];

  before(async () => {
    t = await startTestApp({}, { worker: false });
    t.ctx.changes.on((c) => void heard.push(c));
    owner = { tenantId: t.tenant.id, userId: 'alice', keyId: 'k-alice', isAdmin: false };
    admin = { tenantId: t.tenant.id, userId: 'alice', keyId: 'k-admin', isAdmin: true };
    bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
  });
  after(async () => {
    await t.close();
  });

  /** The media's events in the tenant's log, oldest first. */
  const eventsOf = async (mediaId: string): Promise<MediaEvent[]> =>
    (await mediaEventsSince(t.ctx.database.db, t.tenant.id, 0, 10_000)).filter((e) => e.mediaId === mediaId);
  const typesOf = async (mediaId: string) => (await eventsOf(mediaId)).map((e) => [e.type, e.data]);

  async function upload(): Promise<string> {
    const client = new SessionClient(t.app, t.tenant.userKey);
    const { completed } = await client.uploadWhole(Buffer.alloc(3000, 7), { filename: 'plain.bin', chunkSize: 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    return completed.json().id;
  }

  it('records ingest, metadata, labels and moderation changes, and none for refused writes', async () => {
    const id = await upload();
    assert.deepEqual(await typesOf(id), [
      ['status', { status: 'ready', error_code: null }],
      ['created', { kind: 'other' }],
    ]);

    const patch = (key: string, body: object) => t.app.inject({ method: 'PATCH', url: `/api/v1/media/${id}`, headers: t.auth(key), payload: body });
    assert.equal((await patch(t.tenant.userKey, { title: 'A title', tags: ['x'] })).statusCode, 200);
    expectProblem(await patch(bobKey, { title: 'Not yours' }), 403, 'forbidden');
    assert.equal((await patch(t.tenant.userKey, {})).statusCode, 200, 'an empty patch');
    assert.deepEqual((await typesOf(id)).slice(2), [['metadata', { fields: ['title', 'tags'] }]], 'one event: none for the refused or empty patch');

    await t.ctx.labels.addLabels(owner, id, [{ name: 'Cats', source: 'user' }]);
    const [added] = (await eventsOf(id)).slice(3);
    assert.equal(added!.type, 'labels');
    const labelId = (added!.data.added as string[])[0]!;
    await t.ctx.labels.removeLabel(owner, id, labelId);
    await assert.rejects(t.ctx.labels.removeLabel(owner, id, labelId), /not found/i);
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [{ name: 'nudity', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    await t.ctx.moderation.decide(admin, id, 'approve', null);
    await assert.rejects(t.ctx.moderation.decide(owner, id, 'reject', null), /admin/);
    const rest = (await eventsOf(id)).slice(4);
    // A moderation event names its decision, which holds the labels and the note.
    const decisions = (await t.ctx.moderation.ofMedia(admin, id)).decisions.map((d) => d.id);
    assert.deepEqual(
      rest.map((e) => [e.type, e.type === 'labels' ? Object.keys(e.data).sort() : e.data]),
      [
        ['labels', ['removed', 'source']],
        ['labels', ['added']],
        ['moderation', { decision: 'hold', previous_state: 'none', state: 'held', decision_id: decisions[0] }],
        ['moderation', { decision: 'approve', previous_state: 'held', state: 'approved', decision_id: decisions[1] }],
      ],
    );
    assert.deepEqual(rest[0]!.data, { removed: [labelId], source: 'user' });
  });

  it('records caption changes, processing results and the deletion, which outlives the media', async () => {
    const id = await insertMedia(t, { kind: 'video', status: 'ready' });
    await t.ctx.captions.put(owner, id, { language: 'en', body: Buffer.from(SRT) });
    await t.ctx.captions.put(owner, id, { language: 'en', body: Buffer.from(SRT.replace('Hello', 'Hi')) });
    await t.ctx.captions.delete(owner, id, 'en');
    await assert.rejects(t.ctx.captions.delete(owner, id, 'en'), /not found/i);
    await saveFileMetadata(
      { db: t.ctx.database.db, changes: t.ctx.changes },
      { id, tenant_id: t.tenant.id, user_id: 'alice', kind: 'video', status: 'ready' },
      { artifacts: {} },
    );
    assert.equal((await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) })).statusCode, 204);
    await saveFileMetadata(
      { db: t.ctx.database.db, changes: t.ctx.changes },
      { id, tenant_id: t.tenant.id, user_id: 'alice', kind: 'video', status: 'ready' },
      { artifacts: {} },
    );
    assert.deepEqual(
      await typesOf(id),
      [
        ['captions', { language: 'en', change: 'added' }],
        ['captions', { language: 'en', change: 'replaced' }],
        ['captions', { language: 'en', change: 'removed' }],
        ['artifacts', {}],
        ['deleted', {}],
      ],
      'nothing for the missing track, nor for processing results of a deleted media',
    );
  });

  it('announces each change with the seq of its event', async () => {
    heard.length = 0;
    const id = await upload();
    await t.app.inject({ method: 'PATCH', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey), payload: { caption: 'hello' } });
    await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) });
    const log = await eventsOf(id);
    assert.deepEqual(
      heard.filter((c) => c.mediaId === id).map((c) => [c.reason, c.seq]),
      log.map((e) => [e.type, e.seq]),
    );
  });

  it('leaves the media as it was when its event cannot be written', async () => {
    const id = await upload();
    const db = t.ctx.database.db;
    if (t.ctx.database.dialect === 'postgres') {
      await sql`create function refuse_event() returns trigger language plpgsql as $$ begin raise exception 'the log refuses'; end $$`.execute(db);
      await sql
        .raw(`create trigger refuse_event before insert on media_events for each row when (new.media_id = '${id}') execute function refuse_event()`)
        .execute(db);
    } else {
      await sql
        .raw(`create trigger refuse_event before insert on media_events when new.media_id = '${id}' begin select raise(abort, 'the log refuses'); end`)
        .execute(db);
    }
    const before = await eventsOf(id);
    heard.length = 0;
    try {
      const res = await t.app.inject({ method: 'PATCH', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey), payload: { title: 'Never' } });
      assert.equal(res.statusCode, 500, res.body);
      await assert.rejects(t.ctx.labels.addLabels(owner, id, [{ name: 'dogs', source: 'user' }]), /the log refuses/);
    } finally {
      await sql`drop trigger refuse_event ${sql.raw(t.ctx.database.dialect === 'postgres' ? 'on media_events' : '')}`.execute(db);
    }
    const m = (await t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) })).json();
    assert.equal(m.title, null);
    assert.deepEqual(m.labels, []);
    assert.deepEqual(await eventsOf(id), before);
    assert.deepEqual(
      heard.filter((c) => c.mediaId === id),
      [],
    );
  });
});
