import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { BACKEND, TEST_DATABASE_URL, testEnv, type TestEnv } from '../support/harness.js';

// Several deployments (or test runs) may share one PostgreSQL database, each in its schema.
describe('migrations on a PostgreSQL database shared by other schemas', { skip: BACKEND !== 'scale' && 'needs PostgreSQL (the scale run)' }, () => {
  const envs: TestEnv[] = [];
  const handles: DatabaseHandle[] = [];
  const open = async () => {
    const env = await testEnv();
    envs.push(env);
    const handle = await openDatabase(env.settings);
    handles.push(handle);
    return { env, handle };
  };
  after(async () => {
    for (const h of handles) await h.close();
    for (const e of envs) await e.cleanup();
  });

  it("see only their own schema: another schema's tables neither hide ours nor get read", async () => {
    const a = await open();
    assert.ok((await migrateToLatest(a.handle)).length > 0);
    const b = await open();
    const applied = await migrateToLatest(b.handle);
    assert.ok(applied.length > 0, "the other schema's migration table does not count as ours");
    const tables = await b.handle.db.introspection.getTables();
    assert.ok(tables.some((t) => t.name === 'mediaassets'));
    assert.ok(!tables.some((t) => t.name === 'kysely_migration'), "Kysely's own tables only when asked for");
    assert.ok((await b.handle.db.introspection.getTables({ withInternalKyselyTables: true })).some((t) => t.name === 'kysely_migration'));
    // A table only the other schema has is not ours.
    await sql`create table ${sql.table(`${a.env.settings.databaseSchema}.only_there`)} (id int)`.execute(a.handle.db);
    assert.ok((await a.handle.db.introspection.getTables()).some((t) => t.name === 'only_there'));
    const ours = await b.handle.db.introspection.getTables();
    assert.ok(!ours.some((t) => t.name === 'only_there'), 'only our schema is introspected');
    assert.ok(ours.every((t) => t.schema === b.env.settings.databaseSchema));
    assert.deepEqual(await migrateToLatest(b.handle), [], 'nothing left to apply');
  });

  it('succeed while other schemas are created and dropped meanwhile', async () => {
    const churn = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await churn.connect();
    let stop = false;
    let dropped = 0;
    const churning = (async () => {
      while (!stop) {
        const name = `qasar_churn_${randomBytes(4).toString('hex')}`;
        await churn.query(`create schema "${name}"; create table "${name}".t (id serial primary key, v text); create table "${name}".u (id int)`);
        await churn.query(`drop schema "${name}" cascade`);
        dropped++;
      }
    })();
    try {
      for (let i = 0; i < 4; i++) {
        const { handle } = await open();
        assert.ok((await migrateToLatest(handle)).length > 0);
      }
    } finally {
      stop = true;
      await churning;
      await churn.end();
    }
    assert.ok(dropped > 0, 'schemas were dropped while migrating');
  });
});
