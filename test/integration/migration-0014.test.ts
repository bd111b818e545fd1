import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest, migrateUpTo } from '../../src/db/migrate.js';
import { up as up0014 } from '../../src/db/migrations/0014_local_models.js';
import { testEnv, type TestEnv } from '../support/harness.js';

// 0014 changes CHECK constraints, which SQLite can only do by rebuilding the tables.
describe('migration 0014 on a database with data', () => {
  let env: TestEnv;
  let handle: DatabaseHandle;
  after(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('keeps every row and reference, and allows the new states and decisions only', async () => {
    env = await testEnv();
    handle = await openDatabase(env.settings);
    const db = handle.db as any;
    await migrateUpTo(handle, '0013_media_locks');
    const indexes = async () =>
      handle.dialect === 'postgres'
        ? (
            await sql<{
              n: string;
            }>`select indexname as n from pg_indexes where schemaname = current_schema() and tablename in ('mediaassets', 'moderation_decisions', 'asset_labels') order by 1`.execute(
              db,
            )
          ).rows.map((r) => r.n)
        : (
            await sql<{
              n: string;
            }>`select name as n from sqlite_master where type = 'index' and tbl_name in ('mediaassets', 'moderation_decisions', 'asset_labels') order by 1`.execute(
              db,
            )
          ).rows.map((r) => r.n);
    const before = await indexes();
    const now = new Date().toISOString();
    await sql`insert into tenants (id, name, created_at) values ('t1', 'acme', ${now})`.execute(db);
    for (const id of ['m1', 'm2']) {
      await sql`insert into mediaassets (id, tenant_id, user_id, status, kind, original_filename, mime_type, size, sha256, user_tags, file_metadata, created_at, updated_at, moderation_state)
        values (${id}, 't1', 'alice', 'ready', 'image', 'a.jpg', 'image/jpeg', 1, 'x', '[]', '{}', ${now}, ${now}, 'held')`.execute(db);
    }
    await sql`insert into labels (id, tenant_id, name, kind, created_at) values ('l1', 't1', 'dog', 'general', ${now})`.execute(db);
    await sql`insert into asset_labels (id, tenant_id, user_id, media_id, label_id, source, count, confidence, frame_data, first_seen_at, last_seen_at)
      values ('a1', 't1', 'alice', 'm1', 'l1', 'model', 1, 0.9, '[]', ${now}, ${now})`.execute(db);
    await sql`insert into moderation_decisions (id, tenant_id, media_id, decision, previous_state, state, labels, at)
      values ('d1', 't1', 'm1', 'hold', 'none', 'held', '[]', ${now})`.execute(db);
    await sql`insert into caption_tracks (id, tenant_id, user_id, media_id, language, label, kind, text, cue_count, created_at, updated_at)
      values ('c1', 't1', 'alice', 'm1', 'en', 'English', 'captions', 'hello', 1, ${now}, ${now})`.execute(db);

    assert.deepEqual(await migrateUpTo(handle, '0014_local_models'), ['0014_local_models']);
    await migrateToLatest(handle);
    assert.deepEqual(await migrateToLatest(handle), [], 'applied once');
    assert.deepEqual(await indexes(), before, 'the rebuilt tables keep their indexes');
    // Run again (a process that stopped half-way): nothing changes, nothing fails.
    await up0014(db, handle.dialect);
    assert.deepEqual(await indexes(), before);

    const media = await sql<{ id: string; moderation_state: string }>`select id, moderation_state from mediaassets order by id`.execute(db);
    assert.deepEqual(
      media.rows.map((r) => [r.id, r.moderation_state]),
      [
        ['m1', 'held'],
        ['m2', 'held'],
      ],
    );
    assert.equal((await sql`select id from moderation_decisions`.execute(db)).rows.length, 1);
    assert.equal((await sql<{ source: string }>`select source from caption_tracks`.execute(db)).rows[0]!.source, 'user', 'uploaded tracks are `user`');

    await sql`update mediaassets set moderation_state = 'pending' where id = 'm2'`.execute(db);
    await sql`insert into moderation_decisions (id, tenant_id, media_id, decision, previous_state, state, labels, at)
      values ('d2', 't1', 'm2', 'await', 'none', 'pending', '[]', ${now})`.execute(db);
    await assert.rejects(sql`update mediaassets set moderation_state = 'bogus' where id = 'm2'`.execute(db), /check/i);
    await assert.rejects(
      sql`insert into moderation_decisions (id, tenant_id, media_id, decision, previous_state, state, labels, at)
        values ('d3', 't1', 'm2', 'bogus', 'none', 'none', '[]', ${now})`.execute(db),
      /check/i,
    );
    await assert.rejects(sql`update caption_tracks set source = 'bogus'`.execute(db), /check/i);
    await sql`update asset_labels set source = 'ocr'`.execute(db);
    await assert.rejects(sql`update asset_labels set source = 'bogus'`.execute(db), /check/i);

    // The rebuilt table is still the one the others refer to: a delete cascades, a dangling reference is refused.
    await sql`delete from mediaassets where id = 'm1'`.execute(db);
    assert.equal((await sql`select id from asset_labels`.execute(db)).rows.length, 0);
    assert.equal((await sql`select id from moderation_decisions where media_id = 'm1'`.execute(db)).rows.length, 0);
    assert.equal((await sql`select id from caption_tracks`.execute(db)).rows.length, 0);
    await assert.rejects(
      sql`insert into asset_labels (id, tenant_id, user_id, media_id, label_id, source, count, confidence, frame_data, first_seen_at, last_seen_at)
        values ('a2', 't1', 'alice', 'nope', 'l1', 'model', 1, 0.9, '[]', ${now}, ${now})`.execute(db),
      /foreign key/i,
    );
  });
});
