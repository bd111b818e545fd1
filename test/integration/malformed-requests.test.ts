import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../support/harness.js';
import { httpHead, rawRequest } from '../support/raw-http.js';

describe('malformed requests', () => {
  let t: TestApp;
  let port: number;

  before(async () => {
    t = await startTestApp({ REQUEST_MAX_HEADER_SIZE: '8KiB' });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as AddressInfo).port;
  });
  after(() => t.close());

  it('answers an undecodable URL with a problem that has a request id and does not echo the URL', async () => {
    const res = await rawRequest(
      port,
      httpHead('GET', '/api/v1/media/%c0%ae', { authorization: `Bearer ${t.tenant.userKey}`, connection: 'close' }),
      () => undefined,
    );
    assert.equal(res.status, 400, res.body);
    assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
    const body = JSON.parse(res.body);
    assert.equal(body.type, '/problems/malformed-url');
    assert.ok(body.request_id);
    assert.equal(res.headers['x-request-id'], body.request_id);
    assert.doesNotMatch(res.body, /%c0|media|FST_/i);
  });

  it('answers oversized headers with a problem that has a request id', async () => {
    const res = await rawRequest(
      port,
      httpHead('GET', '/api/v1/media', { authorization: `Bearer ${t.tenant.userKey}`, 'x-filler': 'a'.repeat(16 * 1024) }),
      () => undefined,
    );
    assert.equal(res.error, undefined);
    assert.equal(res.status, 431, res.body);
    assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
    const body = JSON.parse(res.body);
    assert.equal(body.type, '/problems/headers-too-large');
    assert.ok(body.request_id);
    assert.equal(res.headers['x-request-id'], body.request_id);
    assert.ok(res.closed);
  });

  it('answers a request that is not HTTP with a problem', async () => {
    const res = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n', () => undefined);
    assert.equal(res.status, 400, res.body);
    assert.equal(JSON.parse(res.body).type, '/problems/malformed-request');
  });

  it('does not echo an unknown path either', async () => {
    const res = await t.app.inject({ url: '/api/v1/<script>nope', headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 404);
    assert.doesNotMatch(JSON.parse(res.body).detail, /script/);
  });
});
