import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/shared/clock.js';
import type { AppError } from '../../src/shared/errors.js';
import { hashApiKey } from '../../src/tenancy/api-keys.js';
import { TenancyService } from '../../src/tenancy/tenancy-service.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

type Inject = { method: 'GET' | 'POST' | 'PUT' | 'DELETE'; url: string; payload?: Buffer | Record<string, unknown>; contentType?: string };

describe('tenants and API keys', () => {
  let t: TestApp;
  let sessionId: string;
  let mediaId: string;
  let bobKey: string;

  before(async () => {
    t = await startTestApp();
    const alice = new SessionClient(t.app, t.tenant.userKey);
    const open = await alice.create({ filename: 'open.bin', total_size: 4096, chunk_size: 2048 });
    sessionId = open.json().session_id;
    const { completed } = await alice.uploadWhole(randomBytes(3000), { filename: 'done.bin', chunkSize: 1024 });
    mediaId = completed.json().id;
    bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
  });
  after(() => t.close());

  function call(req: Inject, key?: string, extra: Record<string, string> = {}) {
    const headers: Record<string, string> = { ...extra };
    if (key) headers.authorization = `Bearer ${key}`;
    if (req.contentType) headers['content-type'] = req.contentType;
    return t.app.inject({ method: req.method, url: req.url, headers, ...(req.payload ? { payload: req.payload } : {}) });
  }

  const sessionEndpoints = (): Inject[] => [
    { method: 'GET', url: `/api/v1/upload/${sessionId}` },
    { method: 'PUT', url: `/api/v1/upload/${sessionId}/chunk?index=0`, payload: randomBytes(2048), contentType: 'application/octet-stream' },
    { method: 'POST', url: `/api/v1/upload/${sessionId}/complete` },
    { method: 'DELETE', url: `/api/v1/upload/${sessionId}` },
  ];
  const mediaEndpoints = (): Inject[] => [
    { method: 'GET', url: `/api/v1/media/${mediaId}` },
    { method: 'DELETE', url: `/api/v1/media/${mediaId}` },
  ];
  const everyEndpoint = (): Inject[] => [
    { method: 'POST', url: '/api/v1/upload', payload: { filename: 'a.bin', total_size: 10 } },
    ...sessionEndpoints(),
    { method: 'GET', url: '/api/v1/media' },
    ...mediaEndpoints(),
    { method: 'GET', url: '/api/v1/me' },
    { method: 'GET', url: '/api/v1/admin/jobs/failed' },
    { method: 'POST', url: '/api/v1/admin/jobs/x/retry' },
    { method: 'POST', url: '/api/v1/tus' },
  ];

  it('needs a key on every API endpoint', async () => {
    for (const req of everyEndpoint()) {
      expectProblem(await call(req), 401, 'unauthenticated');
      expectProblem(await call(req, `qsr_${'x'.repeat(43)}`), 401, 'unauthenticated');
      expectProblem(await call(req, undefined, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }), 401, 'unauthenticated');
    }
  });

  it("never shows another tenant's sessions or media: 404, as if they did not exist", async () => {
    for (const key of [t.other.adminKey, t.other.userKey]) {
      for (const req of [...sessionEndpoints(), ...mediaEndpoints()]) {
        const res = await call(req, key);
        expectProblem(res, 404, 'not-found');
        assert.doesNotMatch(res.body, new RegExp(t.tenant.id), 'the other tenant is not named');
      }
      const list = await call({ method: 'GET', url: '/api/v1/media' }, key);
      assert.equal(list.statusCode, 200);
      assert.deepEqual(list.json().items, []);
      // An admin of the other tenant cannot reach in by naming one of our users either.
      const actAs = await call({ method: 'GET', url: `/api/v1/media/${mediaId}` }, t.other.adminKey, { 'x-qasar-user': 'alice' });
      expectProblem(actAs, 404, 'not-found');
    }
    // Still intact for the owner.
    assert.equal((await call({ method: 'GET', url: `/api/v1/upload/${sessionId}` }, t.tenant.userKey)).json().state, 'open');
    assert.equal((await call({ method: 'GET', url: `/api/v1/media/${mediaId}` }, t.tenant.userKey)).statusCode, 200);
  });

  it("keeps a user's upload sessions private within the tenant, but shares media for reading", async () => {
    for (const req of sessionEndpoints()) expectProblem(await call(req, bobKey), 404, 'not-found');
    assert.equal((await call({ method: 'GET', url: `/api/v1/media/${mediaId}` }, bobKey)).statusCode, 200);
    expectProblem(await call({ method: 'DELETE', url: `/api/v1/media/${mediaId}` }, bobKey), 403, 'forbidden');
    const bobsList = await call({ method: 'GET', url: '/api/v1/media' }, bobKey);
    assert.deepEqual(bobsList.json().items, [], "bob's own list holds only bob's media");
    expectProblem(await call({ method: 'GET', url: '/api/v1/media?user_id=alice' }, bobKey), 403, 'forbidden');
  });

  it('lets an admin key act for any user of its tenant', async () => {
    const asAdmin = await call({ method: 'GET', url: `/api/v1/upload/${sessionId}` }, t.tenant.adminKey);
    assert.equal(asAdmin.statusCode, 200);
    const all = await call({ method: 'GET', url: '/api/v1/media' }, t.tenant.adminKey);
    assert.deepEqual(
      all.json().items.map((m: { id: string }) => m.id),
      [mediaId],
    );
    const me = await call({ method: 'GET', url: '/api/v1/me' }, t.tenant.adminKey, { 'x-qasar-user': 'carol' });
    assert.deepEqual(
      { ...(me.json() as Record<string, unknown>), key_id: undefined, usage_bytes: undefined },
      { tenant_id: t.tenant.id, tenant_name: 'acme', user_id: 'carol', admin: true, key_id: undefined, quota_bytes: null, usage_bytes: undefined },
    );
    // An upload made for carol is stored under carol.
    const created = await call({ method: 'POST', url: '/api/v1/upload', payload: { filename: 'c.bin', total_size: 5 } }, t.tenant.adminKey, {
      'x-qasar-user': 'carol',
    });
    assert.equal(created.statusCode, 201);
    await fs.access(t.ctx.layout.sessionChunkDir(t.tenant.id, created.json().session_id));
    const row = await t.ctx.database.db
      .selectFrom('upload_sessions')
      .select(['user_id', 'tenant_id'])
      .where('id', '=', created.json().session_id)
      .executeTakeFirstOrThrow();
    assert.deepEqual(row, { user_id: 'carol', tenant_id: t.tenant.id });
  });

  it('refuses X-Qasar-User from a non-admin key, and a bad user id', async () => {
    expectProblem(await call({ method: 'GET', url: '/api/v1/me' }, t.tenant.userKey, { 'x-qasar-user': 'bob' }), 403, 'forbidden');
    expectProblem(await call({ method: 'GET', url: '/api/v1/me' }, t.tenant.adminKey, { 'x-qasar-user': '../etc' }), 400, 'validation-failed');
    // Naming itself is fine.
    assert.equal((await call({ method: 'GET', url: '/api/v1/me' }, t.tenant.userKey, { 'x-qasar-user': 'alice' })).statusCode, 200);
  });

  it('keeps the admin queue endpoints for admin keys', async () => {
    expectProblem(await call({ method: 'GET', url: '/api/v1/admin/jobs/failed' }, t.tenant.userKey), 403, 'forbidden');
    const ok = await call({ method: 'GET', url: '/api/v1/admin/jobs/failed' }, t.tenant.adminKey);
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json().items, []);
  });

  it('stores only a hash of each key, and a revoked key stops working', async () => {
    const created = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'dave', name: 'ci' });
    assert.match(created.key, /^qsr_[A-Za-z0-9_-]{43}$/);
    const rows = await t.ctx.database.db.selectFrom('api_keys').selectAll().execute();
    for (const r of rows) {
      assert.match(r.key_hash, /^[0-9a-f]{64}$/);
      assert.ok(!Object.values(r).includes(created.key), 'the key itself is stored nowhere');
    }
    assert.ok(rows.some((r) => r.key_hash === hashApiKey(created.key)));
    assert.equal((await call({ method: 'GET', url: '/api/v1/me' }, created.key)).statusCode, 200);
    assert.equal(await t.ctx.tenancy.revokeKey(t.other.id, created.id), false, 'another tenant cannot revoke it');
    assert.equal(await t.ctx.tenancy.revokeKey(t.tenant.id, created.id), true);
    expectProblem(await call({ method: 'GET', url: '/api/v1/me' }, created.key), 401, 'unauthenticated');
  });

  it('remembers a valid key for API_KEY_CACHE_TTL: a revocation by another process takes effect within it', async () => {
    const created = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'erin' });
    const clock = new ManualClock();
    const remembering = new TenancyService(t.ctx.database.db, 300, clock);
    const asking = new TenancyService(t.ctx.database.db, 0);
    assert.equal((await remembering.authenticate(created.key)).userId, 'erin');
    assert.equal((await asking.authenticate(created.key)).userId, 'erin');
    // Revoked as another process would: straight in the database, past both services.
    await t.ctx.database.db.updateTable('api_keys').set({ revoked_at: new Date().toISOString() }).where('id', '=', created.id).execute();
    await assert.rejects(asking.authenticate(created.key), (e: AppError) => e.slug === 'unauthenticated');
    clock.advance(299);
    assert.equal((await remembering.authenticate(created.key)).keyId, created.id, 'still remembered within the time');
    clock.advance(1);
    await assert.rejects(remembering.authenticate(created.key), (e: AppError) => e.slug === 'unauthenticated');
    // A revocation through the service itself is immediate, whatever the time.
    const second = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'erin' });
    const longMemory = new TenancyService(t.ctx.database.db, 60_000);
    await longMemory.authenticate(second.key);
    assert.equal(await longMemory.revokeKey(t.tenant.id, second.id), true);
    await assert.rejects(longMemory.authenticate(second.key), (e: AppError) => e.slug === 'unauthenticated');
  });

  it('refuses duplicate tenant names and keys for unknown tenants', async () => {
    await assert.rejects(t.ctx.tenancy.createTenant('acme'), /exists/);
    await assert.rejects(t.ctx.tenancy.createKey({ tenantId: 'no-such-tenant' }), /not found/);
    await assert.rejects(t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: '../x' }), /user id/);
  });
});
