import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { PROBLEMS } from '../../src/shared/errors.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';

describe('HTTP surface', () => {
  let t: TestApp;

  before(async () => {
    t = await startTestApp({ CORS_ORIGINS: 'https://app.example.org', TRUST_PROXY: 'true' });
  });
  after(() => t.close());

  it('answers liveness and readiness', async () => {
    const live = await t.app.inject({ url: '/healthz' });
    assert.equal(live.statusCode, 200);
    assert.deepEqual(live.json(), { status: 'ok' });
    const ready = await t.app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 200, ready.body);
    assert.deepEqual(ready.json(), { status: 'ready', checks: { database: { ok: true }, queue: { ok: true }, storage: { ok: true } } });
  });

  it('reports not ready when storage is not writable', async () => {
    const root = t.ctx.layout.root;
    await fs.rm(root, { recursive: true, force: true });
    // A plain file where the storage root should be: it can be neither created nor written.
    await fs.writeFile(root, 'not a folder');
    try {
      const res = await t.app.inject({ url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().status, 'unavailable');
      assert.equal(res.json().checks.storage.ok, false);
      assert.equal(res.json().checks.database.ok, true);
    } finally {
      await fs.rm(root, { force: true });
      await fs.mkdir(root, { recursive: true });
    }
  });

  it('publishes the OpenAPI document and browsable docs', async () => {
    const doc = (await t.app.inject({ url: '/openapi.json' })).json();
    assert.equal(doc.openapi, '3.0.3');
    for (const p of [
      '/api/v1/upload',
      '/api/v1/upload/{session_id}',
      '/api/v1/upload/{session_id}/chunk',
      '/api/v1/upload/{session_id}/complete',
      '/api/v1/media',
      '/api/v1/media/{media_id}',
    ]) {
      assert.ok(doc.paths[p], `OpenAPI documents ${p}`);
    }
    assert.ok(doc.paths['/api/v1/upload'].post.requestBody, 'request bodies come from the route schemas');
    assert.ok(doc.components.securitySchemes.apiKey);
    const docs = await t.app.inject({ url: '/docs/' });
    assert.equal(docs.statusCode, 200);
    assert.match(String(docs.headers['content-type']), /text\/html/);
    assert.match(docs.body, /swagger/i);
  });

  it('documents every problem type at its type URI', async () => {
    for (const slug of Object.keys(PROBLEMS)) {
      const res = await t.app.inject({ url: `/problems/${slug}` });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().type, `/problems/${slug}`);
      assert.ok(res.json().description);
    }
    expectProblem(await t.app.inject({ url: '/problems/nope' }), 404, 'not-found');
  });

  it('answers unknown routes with a problem, and echoes or makes a request id', async () => {
    const res = await t.app.inject({ url: '/nowhere', headers: { 'x-request-id': 'trace-abc.123' } });
    expectProblem(res, 404, 'not-found');
    assert.equal(res.headers['x-request-id'], 'trace-abc.123');
    assert.equal(res.json().request_id, 'trace-abc.123');
    const made = await t.app.inject({ url: '/healthz', headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(String(made.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });

  it('allows CORS for configured origins only', async () => {
    const pre = await t.app.inject({
      method: 'OPTIONS',
      url: '/api/v1/upload',
      headers: { origin: 'https://app.example.org', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example.org');
    assert.match(String(pre.headers['access-control-allow-headers']), /Authorization/i);
    const get = await t.app.inject({ url: '/api/v1/me', headers: { origin: 'https://app.example.org', ...t.auth(t.tenant.userKey) } });
    assert.equal(get.headers['access-control-allow-origin'], 'https://app.example.org');
    const evil = await t.app.inject({ url: '/api/v1/me', headers: { origin: 'https://evil.example', ...t.auth(t.tenant.userKey) } });
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
  });

  it('honours proxy headers when configured (tus Location behind a TLS proxy)', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tus',
      headers: {
        ...t.auth(t.tenant.userKey),
        'tus-resumable': '1.0.0',
        'upload-length': '10',
        'upload-metadata': `filename ${Buffer.from('a.bin').toString('base64')}`,
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'media.example.org',
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.match(String(res.headers.location), /^https:\/\/media\.example\.org\/api\/v1\/tus\/[0-9a-f-]{36}$/);
  });
});
