import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { preparedQuery } from '../../src/db/prepared.js';
import { startTestApp, type TestApp } from '../support/harness.js';
import { insertMedia } from '../support/media-seed.js';

describe('prepared queries (compiled once, bound per call)', () => {
  let t: TestApp;
  let other: TestApp;
  const ids: string[] = [];

  before(async () => {
    t = await startTestApp();
    other = await startTestApp();
    for (const [i, caption] of ['one', 'two', 'three', 'four'].entries()) {
      ids.push(await insertMedia(t, { caption, status: i === 3 ? 'error' : 'ready', createdAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString() }));
    }
  });
  after(async () => {
    await t.close();
    await other.close();
  });

  // Fixed values (the status, the limit) stay in the query; the arguments change per call.
  const readyByIds = preparedQuery((db, tenantId: string, mediaIds: readonly string[]) =>
    db
      .selectFrom('mediaassets')
      .select(['id', 'caption'])
      .where('tenant_id', '=', tenantId)
      .where('id', 'in', mediaIds)
      .where('status', '=', 'ready')
      .orderBy('created_at')
      .limit(3),
  );

  it('binds new arguments to the compiled query, an in-list per length, constants kept', async () => {
    const db = t.ctx.database.db;
    const captions = async (tenantId: string, list: string[]) => (await readyByIds.all(db, tenantId, list)).map((r) => r.caption);
    assert.deepEqual(await captions(t.tenant.id, [ids[1]!]), ['two']);
    assert.deepEqual(await captions(t.tenant.id, [ids[0]!]), ['one']);
    assert.deepEqual(await captions(t.tenant.id, [ids[2]!, ids[0]!]), ['one', 'three']);
    assert.deepEqual(await captions(t.tenant.id, [ids[3]!, ids[1]!]), ['two'], 'the fixed status filter still applies');
    assert.deepEqual(await captions(t.tenant.id, ids), ['one', 'two', 'three'], 'the fixed limit still applies');
    assert.deepEqual(await captions(t.other.id, ids), [], 'the tenant argument is bound, not the first one seen');
    assert.deepEqual(await readyByIds.first(db, t.tenant.id, [ids[2]!]), { id: ids[2], caption: 'three' });
    assert.equal(await readyByIds.first(db, t.tenant.id, ['no-such-id']), undefined);
  });

  it('keeps one template per database: another database gets its own answers', async () => {
    const theirs = await insertMedia(other, { caption: 'elsewhere' });
    assert.deepEqual(await readyByIds.all(t.ctx.database.db, t.tenant.id, [theirs]), []);
    assert.deepEqual(
      (await readyByIds.all(other.ctx.database.db, other.tenant.id, [theirs])).map((r) => r.caption),
      ['elsewhere'],
    );
  });

  it('refuses a query that does not bind every argument as a value', async () => {
    const stringified = preparedQuery((db, tags: string) =>
      db
        .selectFrom('mediaassets')
        .select('id')
        .where('user_tags', '=', JSON.stringify([tags])),
    );
    await assert.rejects(stringified.all(t.ctx.database.db, 'x'), /every argument must be bound/);
  });

  it('binds arguments as parameters, never as SQL text', async () => {
    const hostile = "x' or '1'='1";
    assert.deepEqual(await readyByIds.all(t.ctx.database.db, hostile, [hostile]), []);
  });
});
