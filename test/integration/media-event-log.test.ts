/**
 * The media event log (src/events/media-events.ts) on the backend QASAR_TEST_BACKEND names:
 * per-tenant numbering, reading in order, events that exist iff their change committed, no gaps
 * under concurrent writers (several processes), and the migration of the status events kept before.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Migrator, sql, type Migration } from 'kysely';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest, migrationNames } from '../../src/db/migrate.js';
import { nowIso, toJson } from '../../src/db/schema.js';
import { MediaChanges, type MediaChange } from '../../src/events/media-changes.js';
import { appendMediaEvents, mediaEventsSince, writeWithEvents } from '../../src/events/media-events.js';
import { newId } from '../../src/shared/ids.js';
import { killAndWait, waitForLine } from '../support/child-process.js';
import { BACKEND, testEnv, type TestEnv } from '../support/harness.js';

const CHILD = path.resolve(import.meta.dirname, '../support/event-writer-child.ts');
const MIGRATIONS = path.resolve(import.meta.dirname, '../../src/db/migrations');

describe(`media event log (${BACKEND} backend)`, () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function open(opts: { migrate?: boolean } = {}): Promise<{ env: TestEnv; handle: DatabaseHandle; tenant(name?: string): Promise<string> }> {
    const env = await testEnv();
    cleanups.push(() => env.cleanup());
    const handle = await openDatabase(env.settings);
    cleanups.push(() => handle.close());
    if (opts.migrate !== false) await migrateToLatest(handle);
    return {
      env,
      handle,
      tenant: async (name = `t-${newId()}`) => {
        const id = newId();
        await handle.db.insertInto('tenants').values({ id, name, created_at: nowIso() }).execute();
        return id;
      },
    };
  }

  it("numbers each tenant's events 1, 2, 3… and reads them back in order, a page at a time", async () => {
    const { handle, tenant } = await open();
    const [a, b] = [await tenant(), await tenant()];
    const media = newId();
    const db = handle.db;
    const first = await db.transaction().execute((tx) =>
      appendMediaEvents(tx, [
        { tenantId: a, mediaId: media, type: 'created', data: { kind: 'video' } },
        { tenantId: b, mediaId: media, type: 'labels' },
        { tenantId: a, mediaId: media, type: 'status', data: { status: 'queued', error_code: null } },
      ]),
    );
    assert.deepEqual(
      first.map((e) => [e.tenantId === a ? 'a' : 'b', e.seq, e.type]),
      [
        ['a', 1, 'created'],
        ['a', 2, 'status'],
        ['b', 1, 'labels'],
      ],
    );
    await db.transaction().execute((tx) => appendMediaEvents(tx, [{ tenantId: a, mediaId: media, type: 'metadata', data: { fields: ['title'] } }]));

    const all = await mediaEventsSince(db, a, 0);
    assert.deepEqual(
      all.map((e) => [e.seq, e.type]),
      [
        [1, 'created'],
        [2, 'status'],
        [3, 'metadata'],
      ],
    );
    assert.deepEqual(
      all.map((e) => e.data),
      [{ kind: 'video' }, { status: 'queued', error_code: null }, { fields: ['title'] }],
    );
    assert.ok(all.every((e) => e.tenantId === a && e.mediaId === media && !Number.isNaN(Date.parse(e.at))));
    assert.deepEqual(
      [...all.map((e) => e.id)].sort(),
      all.map((e) => e.id),
      'ids are time-ordered as well',
    );
    assert.deepEqual(
      (await mediaEventsSince(db, a, 1, 1)).map((e) => e.seq),
      [2],
      'after a seq, at most limit',
    );
    assert.deepEqual(await mediaEventsSince(db, a, 3), []);
    assert.deepEqual(
      (await mediaEventsSince(db, b, 0)).map((e) => e.seq),
      [1],
      "another tenant's log is its own",
    );

    // A status event is what the status history and event streams read.
    const status = await db.selectFrom('media_status_events').selectAll().where('media_id', '=', media).execute();
    assert.deepEqual(status, [{ id: all[1]!.id, tenant_id: a, media_id: media, status: 'queued', error_code: null, at: all[1]!.at }]);
  });

  it('keeps an event iff the change it records commits, and announces it only then', async () => {
    const { handle, tenant } = await open();
    const t = await tenant();
    const media = newId();
    const heard: MediaChange[] = [];
    const changes = new MediaChanges();
    changes.on((c) => void heard.push(c));
    await assert.rejects(
      writeWithEvents(handle.db, changes, async (tx, record) => {
        await tx.updateTable('tenants').set({ name: 'renamed' }).where('id', '=', t).execute();
        record({ tenantId: t, mediaId: media, type: 'metadata' });
        throw new Error('the change fails after its event was named');
      }),
      /the change fails/,
    );
    assert.deepEqual(await mediaEventsSince(handle.db, t, 0), [], 'no event of a change that rolled back');
    assert.deepEqual(heard, [], 'nothing announced');
    assert.notEqual((await handle.db.selectFrom('tenants').select('name').where('id', '=', t).executeTakeFirstOrThrow()).name, 'renamed');

    const result = await writeWithEvents(handle.db, changes, async (tx, record) => {
      await tx.updateTable('tenants').set({ name: 'renamed' }).where('id', '=', t).execute();
      record({ tenantId: t, mediaId: media, type: 'metadata', data: { fields: ['name'] } });
      return 'done';
    });
    assert.equal(result, 'done');
    const events = await mediaEventsSince(handle.db, t, 0);
    assert.deepEqual(
      events.map((e) => [e.seq, e.type]),
      [[1, 'metadata']],
      'the rolled-back number was given back',
    );
    assert.deepEqual(heard, [{ tenantId: t, mediaId: media, reason: 'metadata', seq: 1 }], 'announced after the commit, with its seq');
  });

  it('gives out numbers without gaps or repeats under concurrent writers, in several processes', async () => {
    const { env, handle, tenant } = await open();
    const t = await tenant();
    const other = await tenant();
    const media = newId();
    const perChild = 30;
    const children = [0, 1].map(() =>
      spawn(process.execPath, ['--import', 'tsx', CHILD, t, media, String(perChild)], {
        env: { ...process.env, ...env.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    for (const c of children) cleanups.push(() => killAndWait(c));
    await Promise.all(children.map((c) => waitForLine(c, /^READY$/, 30_000)));
    const done = children.map((c) => waitForLine(c, /^DONE$/, 60_000));
    for (const c of children) c.stdin!.write('go\n');
    // Meanwhile this process writes too, many transactions at once (on PostgreSQL on several connections).
    let committed = 0;
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        try {
          await writeWithEvents(handle.db, undefined, async (_tx, record) => {
            record({ tenantId: t, mediaId: media, type: 'labels', data: { i } });
            record({ tenantId: other, mediaId: media, type: 'labels', data: { i } });
            if (i % 4 === 3) throw new Error('rolled back');
          });
          committed++;
        } catch (err) {
          if ((err as Error).message !== 'rolled back') throw err;
        }
      }),
    );
    await Promise.all(done);
    const committedByChildren = 2 * (perChild - Math.floor(perChild / 3));
    const events = await mediaEventsSince(handle.db, t, 0, 10_000);
    const total = committed + committedByChildren;
    assert.equal(events.length, total);
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: total }, (_, i) => i + 1),
      'exactly 1..n',
    );
    assert.deepEqual(
      (await mediaEventsSince(handle.db, other, 0, 10_000)).map((e) => e.seq),
      Array.from({ length: committed }, (_, i) => i + 1),
    );
    const counter = await handle.db.selectFrom('media_event_seqs').select('seq').where('tenant_id', '=', t).executeTakeFirstOrThrow();
    assert.equal(Number(counter.seq), total);
  });

  it('migration 0011 moves the status events kept before into the log, numbered per tenant in time order', async () => {
    const { handle, tenant } = await open({ migrate: false });
    const files = (await fs.readdir(MIGRATIONS)).filter((f) => /^\d{4}_.*\.ts$/.test(f)).sort();
    const migrations: Record<string, Migration> = {};
    for (const f of files) {
      const m = (await import(path.join(MIGRATIONS, f))) as { up(db: unknown, dialect: string): Promise<void> };
      migrations[f.replace(/\.ts$/, '')] = { up: (db) => m.up(db, handle.dialect) };
    }
    const before = new Migrator({
      db: handle.db,
      provider: { getMigrations: async () => migrations },
      ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
    });
    const res = await before.migrateTo('0010_upload_recovery_quotas');
    assert.equal(res.error, undefined);
    const [a, b] = [await tenant(), await tenant()];
    const db = handle.db as any;
    const addMedia = async (tenantId: string) => {
      const id = newId();
      const at = nowIso();
      await db
        .insertInto('mediaassets')
        .values({
          id,
          tenant_id: tenantId,
          user_id: 'alice',
          status: 'ready',
          kind: 'image',
          original_filename: 'a.png',
          mime_type: 'image/png',
          size: 1,
          sha256: '0',
          user_tags: toJson([]),
          file_metadata: toJson({}),
          created_at: at,
          updated_at: at,
        })
        .execute();
      return id;
    };
    const [ma, mb] = [await addMedia(a), await addMedia(b)];
    const old = [
      { tenant_id: a, media_id: ma, status: 'queued', error_code: null },
      { tenant_id: b, media_id: mb, status: 'queued', error_code: null },
      { tenant_id: a, media_id: ma, status: 'processing', error_code: null },
      { tenant_id: a, media_id: ma, status: 'error', error_code: 'processing-failed' },
    ].map((e) => ({ ...e, id: newId(), at: nowIso() }));
    for (const e of old) await db.insertInto('media_status_events').values(e).execute();

    assert.deepEqual(
      await migrateToLatest(handle),
      migrationNames.filter((n) => n > '0010_upload_recovery_quotas'),
    );
    const events = await mediaEventsSince(handle.db, a, 0);
    assert.deepEqual(
      events.map((e) => [e.seq, e.id, e.mediaId, e.type, e.data, e.at]),
      old.filter((e) => e.tenant_id === a).map((e, i) => [i + 1, e.id, ma, 'status', { status: e.status, error_code: e.error_code }, e.at]),
    );
    assert.deepEqual(
      (await mediaEventsSince(handle.db, b, 0)).map((e) => [e.seq, e.id]),
      [[1, old[1]!.id]],
    );
    const view = await handle.db.selectFrom('media_status_events').selectAll().orderBy('id').execute();
    assert.deepEqual(view, old, 'the status events read as before, ids and all');
    // The counter goes on from the events moved in.
    const [next] = await handle.db.transaction().execute((tx) => appendMediaEvents(tx, [{ tenantId: a, mediaId: ma, type: 'metadata' }]));
    assert.equal(next!.seq, 4);
    if (handle.dialect === 'sqlite') assert.equal((await sql<{ ok: string }>`pragma foreign_key_check`.execute(handle.db)).rows.length, 0);
  });
});
