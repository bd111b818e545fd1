/**
 * The media status state machine (src/media/status.ts) on the backend QASAR_TEST_BACKEND names:
 * the moves it has, the ones it refuses, and a status that changes iff its event is recorded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { nowIso, toJson, type MediaStatus } from '../../src/db/schema.js';
import { MediaChanges, type MediaChange } from '../../src/events/media-changes.js';
import { mediaEventsSince } from '../../src/events/media-events.js';
import { canMove, ForbiddenStatusMove, transition } from '../../src/media/status.js';
import { newId } from '../../src/shared/ids.js';
import { BACKEND, testEnv, type TestEnv } from '../support/harness.js';

const ALL: MediaStatus[] = ['queued', 'processing', 'ready', 'error'];

describe(`media status state machine (${BACKEND} backend)`, () => {
  let env: TestEnv;
  let handle: DatabaseHandle;
  let tenantId: string;
  const heard: MediaChange[] = [];
  const changes = new MediaChanges();
  changes.on((c) => void heard.push(c));

  before(async () => {
    env = await testEnv();
    handle = await openDatabase(env.settings);
    await migrateToLatest(handle);
    tenantId = newId();
    await handle.db.insertInto('tenants').values({ id: tenantId, name: 'acme', created_at: nowIso() }).execute();
  });
  after(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  async function insertMedia(status: MediaStatus): Promise<string> {
    const id = newId();
    const at = nowIso();
    await handle.db
      .insertInto('mediaassets')
      .values({
        id,
        tenant_id: tenantId,
        user_id: 'alice',
        status,
        error_code: status === 'error' ? 'processing-failed' : null,
        error_reason: status === 'error' ? 'it broke' : null,
        kind: 'video',
        original_filename: 'clip.mp4',
        mime_type: 'video/mp4',
        size: 1,
        sha256: '0'.repeat(64),
        caption: null,
        user_tags: toJson([]),
        file_metadata: toJson({}),
        upload_session_id: null,
        created_at: at,
        updated_at: at,
        processing_started_at: null,
        ready_at: null,
        playback_key: null,
        title: null,
        description: null,
      })
      .execute();
    return id;
  }

  const row = (id: string) =>
    handle.db
      .selectFrom('mediaassets')
      .select(['status', 'error_code', 'error_reason', 'processing_started_at', 'ready_at'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
  const statusEvents = (id: string) =>
    handle.db.selectFrom('media_status_events').select(['status', 'error_code']).where('media_id', '=', id).orderBy('id').execute();

  it('has exactly the moves queued → processing → ready | error, a new attempt, and reprocess or retry back to queued', () => {
    const allowed = ALL.flatMap((from) => ALL.filter((to) => canMove(from, to)).map((to) => `${from}→${to}`));
    assert.deepEqual(allowed, [
      'queued→processing',
      'queued→error',
      'processing→processing',
      'processing→ready',
      'processing→error',
      'ready→queued',
      'error→queued',
    ]);
  });

  it('refuses a move it does not have, without touching the media or its log', async () => {
    for (const [from, to] of [
      ['ready', 'processing'],
      ['queued', 'ready'],
      ['error', 'processing'],
      ['ready', 'error'],
      ['queued', 'queued'],
    ] as const) {
      const id = await insertMedia(from);
      const before = await row(id);
      await assert.rejects(
        transition(handle.db, changes, { tenantId, mediaId: id }, from, to, { code: 'x', reason: 'y' }),
        (err) => err instanceof ForbiddenStatusMove && err.from === from && err.to === to,
        `${from} → ${to}`,
      );
      assert.deepEqual(await row(id), before);
      assert.deepEqual(await statusEvents(id), []);
    }
    // One forbidden move among the allowed ones is refused as well.
    const id = await insertMedia('queued');
    await assert.rejects(transition(handle.db, changes, { tenantId, mediaId: id }, ['queued', 'ready'], 'processing'), ForbiddenStatusMove);
    assert.equal((await row(id)).status, 'queued');
  });

  it('moves, writes the row and the event together, and announces after commit', async () => {
    const id = await insertMedia('queued');
    heard.length = 0;
    assert.equal(await transition(handle.db, changes, { tenantId, mediaId: id }, 'queued', 'processing'), true);
    const processing = await row(id);
    assert.equal(processing.status, 'processing');
    assert.ok(processing.processing_started_at);
    assert.equal(
      await transition(handle.db, changes, { tenantId, mediaId: id }, 'processing', 'error', { code: 'unsupported-media', reason: 'not a video' }),
      true,
    );
    assert.deepEqual(
      { ...(await row(id)), processing_started_at: null },
      { status: 'error', error_code: 'unsupported-media', error_reason: 'not a video', processing_started_at: null, ready_at: null },
    );
    assert.equal(await transition(handle.db, changes, { tenantId, mediaId: id }, ['ready', 'error'], 'queued'), true);
    assert.deepEqual([(await row(id)).error_code, (await row(id)).error_reason], [null, null], 'queued again: the error is cleared');
    assert.deepEqual(await statusEvents(id), [
      { status: 'processing', error_code: null },
      { status: 'error', error_code: 'unsupported-media' },
      { status: 'queued', error_code: null },
    ]);
    const log = (await mediaEventsSince(handle.db, tenantId, 0, 1000)).filter((e) => e.mediaId === id);
    assert.deepEqual(
      heard.map((c) => [c.reason, c.status, c.seq]),
      log.map((e) => ['status', e.data.status, e.seq]),
      'each move announced with its status and its place in the log',
    );
  });

  it('does not move a media whose status is no longer one of `from` (or that is gone), and records nothing', async () => {
    const id = await insertMedia('ready');
    heard.length = 0;
    assert.equal(await transition(handle.db, changes, { tenantId, mediaId: id }, 'queued', 'processing'), false);
    assert.equal(await transition(handle.db, changes, { tenantId: newId(), mediaId: id }, ['ready', 'error'], 'queued'), false, "another tenant's id");
    assert.equal(await transition(handle.db, changes, { tenantId, mediaId: newId() }, 'queued', 'processing'), false);
    assert.equal((await row(id)).status, 'ready');
    assert.deepEqual(await statusEvents(id), []);
    assert.deepEqual(heard, []);
  });

  it('lets one of two concurrent movers win', async () => {
    const id = await insertMedia('processing');
    const results = await Promise.all([
      transition(handle.db, changes, { tenantId, mediaId: id }, 'processing', 'ready'),
      transition(handle.db, changes, { tenantId, mediaId: id }, 'processing', 'error', { code: 'processing-failed', reason: 'gone' }),
    ]);
    assert.deepEqual(results.filter(Boolean).length, 1);
    const events = await statusEvents(id);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.status, (await row(id)).status);
  });

  it('keeps the old status when its event cannot be written (one transaction)', async () => {
    const id = await insertMedia('queued');
    // A log that refuses this media's events.
    if (handle.dialect === 'postgres') {
      await sql`create function refuse_event() returns trigger language plpgsql as $$ begin raise exception 'the log refuses'; end $$`.execute(handle.db);
      await sql
        .raw(`create trigger refuse_event before insert on media_events for each row when (new.media_id = '${id}') execute function refuse_event()`)
        .execute(handle.db);
    } else {
      await sql
        .raw(`create trigger refuse_event before insert on media_events when new.media_id = '${id}' begin select raise(abort, 'the log refuses'); end`)
        .execute(handle.db);
    }
    heard.length = 0;
    const seqBefore = await handle.db.selectFrom('media_event_seqs').select('seq').where('tenant_id', '=', tenantId).executeTakeFirst();
    try {
      await assert.rejects(transition(handle.db, changes, { tenantId, mediaId: id }, 'queued', 'processing'), /the log refuses/);
    } finally {
      await sql`drop trigger refuse_event ${sql.raw(handle.dialect === 'postgres' ? 'on media_events' : '')}`.execute(handle.db);
    }
    assert.equal((await row(id)).status, 'queued', 'the move was rolled back with its event');
    assert.deepEqual(heard, [], 'and not announced');
    assert.deepEqual(await handle.db.selectFrom('media_event_seqs').select('seq').where('tenant_id', '=', tenantId).executeTakeFirst(), seqBefore);
    assert.equal(await transition(handle.db, changes, { tenantId, mediaId: id }, 'queued', 'processing'), true, 'and can be made once the log takes it');
  });
});
