import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest, migrateUpTo } from '../../src/db/migrate.js';
import { testEnv, type TestEnv } from '../support/harness.js';

// 0016 adds display names and turns the child links of phrases into alias links.
describe('migration 0016 on a database with labels and banks', () => {
  let env: TestEnv;
  let handle: DatabaseHandle;
  after(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('keeps every name and link, and turns labels named like a phrase from children of the entry into its aliases', async () => {
    env = await testEnv();
    handle = await openDatabase(env.settings);
    const db = handle.db as any;
    await migrateUpTo(handle, '0015_document_texts');
    const now = new Date().toISOString();
    for (const t of ['t1', 't2']) await sql`insert into tenants (id, name, created_at) values (${t}, ${t}, ${now})`.execute(db);
    await sql`insert into mediaassets (id, tenant_id, user_id, status, kind, original_filename, mime_type, size, sha256, user_tags, file_metadata, created_at, updated_at)
      values ('m1', 't1', 'alice', 'ready', 'image', 'a.jpg', 'image/jpeg', 1, 'x', '[]', '{}', ${now}, ${now})`.execute(db);
    const bank = (id: string, tenant: string | null, name: string, kind: string) =>
      sql`insert into label_banks (id, tenant_id, name, kind, created_at, updated_at) values (${id}, ${tenant}, ${name}, ${kind}, ${now}, ${now})`.execute(db);
    const entry = (id: string, bankId: string, tenant: string | null, name: string, parent: string | null = null) =>
      sql`insert into label_bank_entries (id, bank_id, tenant_id, name, parent_id, created_at) values (${id}, ${bankId}, ${tenant}, ${name}, ${parent}, ${now})`.execute(
        db,
      );
    const phrase = (id: string, entryId: string, tenant: string | null, text: string) =>
      sql`insert into label_bank_phrases (id, entry_id, tenant_id, phrase) values (${id}, ${entryId}, ${tenant}, ${text})`.execute(db);
    // A global moderation bank, and a general bank of t1's.
    await bank('b1', null, 'rules', 'moderation');
    await entry('e1', 'b1', null, 'violence');
    await phrase('p1', 'e1', null, 'gore');
    await bank('b2', 't1', 'animals', 'general');
    await entry('e2', 'b2', 't1', 'animal');
    await entry('e3', 'b2', 't1', 'dog', 'e2');
    await phrase('p2', 'e3', 't1', 'puppy');
    const label = (id: string, tenant: string, name: string, kind: string, parent: string | null) =>
      sql`insert into labels (id, tenant_id, name, kind, parent_id, created_at) values (${id}, ${tenant}, ${name}, ${kind}, ${parent}, ${now})`.execute(db);
    await label('violence', 't1', 'violence', 'moderation', null);
    await label('gore', 't1', 'gore', 'moderation', 'violence');
    await label('animal', 't1', 'animal', 'general', null);
    await label('dog', 't1', 'dog', 'general', 'animal');
    await label('puppy', 't1', 'puppy', 'general', 'dog');
    // A general label named like a moderation phrase, and t2's labels (t1's bank is not t2's).
    await label('gore-general', 't1', 'gore', 'general', 'dog');
    await label('t2-dog', 't2', 'dog', 'general', null);
    await label('t2-puppy', 't2', 'puppy', 'general', 't2-dog');
    await label('t2-violence', 't2', 'violence', 'moderation', null);
    await label('t2-gore', 't2', 'gore', 'moderation', 't2-violence');
    await sql`insert into asset_labels (id, tenant_id, user_id, media_id, label_id, source, count, confidence, frame_data, first_seen_at, last_seen_at)
      values ('a1', 't1', 'alice', 'm1', 'gore', 'model', 1, 0.9, '[]', ${now}, ${now})`.execute(db);

    assert.deepEqual(await migrateUpTo(handle, '0016_label_names'), ['0016_label_names']);
    await migrateToLatest(handle);
    assert.deepEqual(await migrateToLatest(handle), [], 'applied once');

    const rows = await sql<{ id: string; name: string; display_name: string | null; parent_id: string | null; alias_of: string | null }>`
      select id, name, display_name, parent_id, alias_of from labels order by id`.execute(db);
    const links = Object.fromEntries(rows.rows.map((r) => [r.id, [r.parent_id, r.alias_of]]));
    assert.deepEqual(links, {
      animal: [null, null],
      dog: ['animal', null],
      puppy: [null, 'dog'],
      gore: [null, 'violence'],
      violence: [null, null],
      'gore-general': ['dog', null],
      't2-dog': [null, null],
      't2-puppy': ['t2-dog', null],
      't2-violence': [null, null],
      't2-gore': [null, 't2-violence'],
    });
    assert.ok(
      rows.rows.every((r) => r.display_name === null),
      'the case of older names is not known',
    );
    for (const table of ['label_banks', 'label_bank_entries', 'label_bank_phrases']) {
      const names = await sql<{ display_name: string | null }>`select display_name from ${sql.table(table)}`.execute(db);
      assert.ok(names.rows.length > 0 && names.rows.every((r) => r.display_name === null), table);
    }
    assert.equal((await sql<{ label_id: string }>`select label_id from asset_labels`.execute(db)).rows[0]!.label_id, 'gore', 'media labels are untouched');

    // The new columns take values; an alias's entry label going away clears the link.
    await sql`update labels set display_name = 'Dog' where id = 'dog'`.execute(db);
    await sql`update label_bank_entries set display_name = 'Dog' where id = 'e3'`.execute(db);
    await assert.rejects(sql`update labels set alias_of = 'no-such-label' where id = 'animal'`.execute(db), /foreign key/i);
    await sql`delete from labels where id = 't2-violence'`.execute(db);
    assert.equal((await sql<{ alias_of: string | null }>`select alias_of from labels where id = 't2-gore'`.execute(db)).rows[0]!.alias_of, null);
  });
});
