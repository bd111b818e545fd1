import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { expectProblem, listFiles, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

describe('media API', () => {
  let t: TestApp;
  let client: SessionClient;
  const ids: string[] = [];

  before(async () => {
    t = await startTestApp();
    client = new SessionClient(t.app, t.tenant.userKey);
    for (let i = 0; i < 7; i++) {
      const { completed } = await client.uploadWhole(randomBytes(1500 + i), { filename: `f${i}.bin`, chunkSize: 1024 });
      assert.equal(completed.statusCode, 201, completed.body);
      ids.push(completed.json().id);
    }
  });
  after(() => t.close());

  it('lists newest first with stable cursor pagination', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { statusCode: number; body: string; json(): any } = await t.app.inject({
        url: `/api/v1/media?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        headers: t.auth(t.tenant.userKey),
      });
      assert.equal(res.statusCode, 200, res.body);
      const page = res.json();
      assert.ok(page.items.length <= 3);
      seen.push(...page.items.map((m: { id: string }) => m.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...ids].reverse());
  });

  it('filters by status and refuses a forged cursor', async () => {
    const ready = await t.app.inject({ url: '/api/v1/media?status=ready', headers: t.auth(t.tenant.userKey) });
    assert.equal(ready.json().items.length, 7, '"other" files are ready at once');
    const queued = await t.app.inject({ url: '/api/v1/media?status=queued', headers: t.auth(t.tenant.userKey) });
    assert.equal(queued.json().items.length, 0);
    expectProblem(await t.app.inject({ url: '/api/v1/media?cursor=garbage', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(await t.app.inject({ url: '/api/v1/media?limit=0', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
  });

  it('returns the record with its status', async () => {
    const res = await t.app.inject({ url: `/api/v1/media/${ids[0]}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 200);
    const m = res.json();
    assert.equal(m.id, ids[0]);
    assert.equal(m.status, 'ready');
    assert.equal(m.kind, 'other');
    assert.equal(m.tenant_id, t.tenant.id);
    assert.equal(m.user_id, 'alice');
    assert.equal(m.error, null);
    assert.match(m.created_at, /^\d{4}-\d\d-\d\dT/);
  });

  it('deletes the row and every file', async () => {
    const id = ids[3]!;
    const dir = t.ctx.layout.mediaDir({ tenantId: t.tenant.id, userId: 'alice', mediaId: id });
    await fs.access(dir);
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 204);
    await assert.rejects(fs.access(dir));
    expectProblem(await t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) }), 404, 'not-found');
    expectProblem(await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) }), 404, 'not-found');
    const files = await listFiles(t.ctx.layout.root);
    assert.ok(!files.some((f) => f.includes(id)));
    assert.equal(files.length, 6);
  });
});
