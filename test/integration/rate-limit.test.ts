import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKEND, expectProblem, startTestApp, type TestApp } from '../support/harness.js';

describe('request rate limits', () => {
  let t: TestApp;

  before(async () => {
    t = await startTestApp({ RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW: '1m' });
  });
  after(() => t.close());

  it('answers 429 rate-limited with Retry-After once one key is over its limit; other keys go on', async () => {
    for (let i = 0; i < 5; i++) {
      const ok = await t.app.inject({ url: '/api/v1/media', headers: t.auth(t.tenant.userKey) });
      assert.equal(ok.statusCode, 200, ok.body);
    }
    const over = await t.app.inject({ url: '/api/v1/media', headers: t.auth(t.tenant.userKey) });
    const problem = expectProblem(over, 429, 'rate-limited');
    assert.ok(Number(over.headers['retry-after']) > 0, 'says when to retry');
    assert.ok(problem.request_id);
    // Another key (of the same tenant, from the same address) has a bucket of its own.
    const other = await t.app.inject({ url: '/api/v1/media', headers: t.auth(t.tenant.adminKey) });
    assert.equal(other.statusCode, 200);
  });

  it('counts requests without a key per client address, and never counts playback URLs or health checks', async () => {
    for (let i = 0; i < 8; i++) {
      const play = await t.app.inject({ url: '/play/not-a-token/hls/master.m3u8' });
      assert.notEqual(play.statusCode, 429);
    }
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push((await t.app.inject({ url: '/problems', remoteAddress: '192.0.2.7' })).statusCode);
    assert.deepEqual(codes, [200, 200, 200, 200, 200, 429]);
    assert.equal((await t.app.inject({ url: '/problems', remoteAddress: '192.0.2.8' })).statusCode, 200);
    // A proxy's liveness checks share the address of the clients behind it: an address over its
    // limit still gets them answered.
    for (const url of ['/healthz', '/healthz/', '/healthz?probe=1']) {
      for (let i = 0; i < 7; i++) assert.equal((await t.app.inject({ url, remoteAddress: '192.0.2.7' })).statusCode, 200, url);
    }
  });

  it('counts made-up keys by client address: rotating junk tokens get 429 after the address limit', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await t.app.inject({ url: '/api/v1/media', remoteAddress: '192.0.2.20', headers: t.auth(`qsr_junk${i}${'x'.repeat(30)}`) });
      codes.push(res.statusCode);
    }
    assert.deepEqual(codes, [401, 401, 401, 401, 401, 429, 429]);
    expectProblem(await t.app.inject({ url: '/api/v1/media', remoteAddress: '192.0.2.20', headers: t.auth('junk') }), 429, 'rate-limited');
    // A valid key from that address has its own bucket.
    const key = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' });
    const ok = await t.app.inject({ url: '/api/v1/media', remoteAddress: '192.0.2.20', headers: t.auth(key.key) });
    assert.equal(ok.statusCode, 200, ok.body);
  });

  it("does not forget a key's count under junk traffic from many addresses", { skip: BACKEND !== 'embedded' && 'in-memory store only' }, async () => {
    const key = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'carol' });
    for (let i = 0; i < 5; i++) assert.equal((await t.app.inject({ url: '/api/v1/media', headers: t.auth(key.key) })).statusCode, 200);
    // More distinct buckets than @fastify/rate-limit's default in-memory store holds (5,000),
    // with made-up keys from many addresses.
    for (let i = 0; i < 5200; i++) {
      const remoteAddress = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      await t.app.inject({ url: '/healthz', remoteAddress, headers: t.auth(`qsr_junk${i}${'y'.repeat(30)}`) });
    }
    expectProblem(await t.app.inject({ url: '/api/v1/media', headers: t.auth(key.key) }), 429, 'rate-limited');
  });

  it('keeps the counts in Redis when REDIS_URL is set', { skip: BACKEND !== 'scale' && 'Redis backend only' }, async () => {
    const keys = await t.ctx.redis!.keys(`${t.env.settings.redisPrefix}:rate-limit:*`);
    assert.ok(keys.length >= 2, `rate-limit keys in Redis: ${keys.join(', ')}`);
  });
});
