import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { httpHead, openDescriptors, rawRequest, trickle, type RawResponse } from '../support/raw-http.js';
import { SessionClient } from '../support/upload-client.js';

const CHUNK = 4096;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function expectRawProblem(res: RawResponse, status: number, slug: string): Record<string, any> {
  assert.equal(res.error, undefined, `answered, not ${res.error}`);
  assert.equal(res.status, status, `${res.status} ${res.body.slice(0, 300)}`);
  assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
  const body = JSON.parse(res.body);
  assert.equal(body.type, `/problems/${slug}`);
  assert.ok(body.request_id, 'the answer names its request');
  return body;
}

describe('slow and oversized request bodies', () => {
  let t: TestApp;
  let port: number;
  let client: SessionClient;
  let descriptors: number;

  const newSession = async () => {
    const res = await client.create({ filename: 'slow.bin', total_size: CHUNK * 2, chunk_size: CHUNK });
    assert.equal(res.statusCode, 201, res.body);
    return res.json().session_id as string;
  };
  const chunkHead = (sessionId: string, headers: Record<string, string | number>) =>
    httpHead('PUT', `/api/v1/upload/${sessionId}/chunk?index=0`, {
      authorization: `Bearer ${t.tenant.userKey}`,
      'content-type': 'application/octet-stream',
      ...headers,
    });

  before(async () => {
    t = await startTestApp({ REQUEST_IDLE_TIMEOUT: '400ms', REQUEST_MIN_RATE: '1KiB', REQUEST_MIN_RATE_WINDOW: '1s' });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    port = (t.app.server.address() as AddressInfo).port;
    client = new SessionClient(t.app, t.tenant.userKey);
    // One whole chunk over a socket first, so what a send opens once and keeps is counted.
    const warm = await newSession();
    const data = randomBytes(CHUNK);
    const res = await rawRequest(port, chunkHead(warm, { 'content-length': CHUNK, connection: 'close' }), (s) => void s.write(data));
    assert.equal(res.status, 200, res.body);
    await new Promise((r) => setTimeout(r, 200));
    descriptors = openDescriptors();
  });
  after(() => t.close());

  it('cuts a chunk body that stops sending with 408, and the chunk can be sent again at once', { timeout: 30_000 }, async () => {
    const id = await newSession();
    const res = await rawRequest(port, chunkHead(id, { 'content-length': CHUNK }), (s) => void s.write(Buffer.alloc(10, 1)));
    const body = expectRawProblem(res, 408, 'request-timeout');
    assert.ok(res.closed, 'the connection is closed after the answer');
    assert.doesNotMatch(JSON.stringify(body), /\/tmp|\.chunks|storage/);
    // The chunk lock is released: the same index is accepted straight away, not 409 for minutes.
    const again = await client.putChunk(id, 0, randomBytes(CHUNK));
    assert.equal(again.statusCode, 200, again.body);
  });

  it('cuts a chunk body trickling one byte at a time (slower than REQUEST_MIN_RATE) with 408', { timeout: 30_000 }, async () => {
    const id = await newSession();
    // A byte every 100 ms is never idle for 400 ms, but 10 bytes/s is far under 1 KiB/s.
    const res = await rawRequest(port, chunkHead(id, { 'content-length': CHUNK }), (s) => trickle(s, CHUNK, 100));
    expectRawProblem(res, 408, 'request-timeout');
    const again = await client.putChunk(id, 0, randomBytes(CHUNK));
    assert.equal(again.statusCode, 200, again.body);
  });

  it('cuts a trickling tus PATCH with 408 and releases the upload for the next PATCH', { timeout: 30_000 }, async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tus',
      headers: { ...t.auth(t.tenant.userKey), 'tus-resumable': '1.0.0', 'upload-length': String(CHUNK), 'upload-metadata': `filename ${b64('slow.bin')}` },
    });
    assert.equal(created.statusCode, 201, created.body);
    const path = new URL(String(created.headers.location), 'http://x').pathname;
    const head = httpHead('PATCH', path, {
      authorization: `Bearer ${t.tenant.userKey}`,
      'tus-resumable': '1.0.0',
      'upload-offset': 0,
      'content-type': 'application/offset+octet-stream',
      'content-length': CHUNK,
    });
    const res = await rawRequest(port, head, (s) => trickle(s, CHUNK, 100));
    assert.equal(res.error, undefined, `answered, not ${res.error}`);
    assert.equal(res.status, 408, res.body);
    assert.ok(res.closed);
    // tus's lock on the upload is free again: a PATCH from the offset tus kept succeeds at once.
    const offset = Number(
      (await t.app.inject({ method: 'HEAD', url: path, headers: { ...t.auth(t.tenant.userKey), 'tus-resumable': '1.0.0' } })).headers['upload-offset'],
    );
    const rest = await t.app.inject({
      method: 'PATCH',
      url: path,
      headers: { ...t.auth(t.tenant.userKey), 'tus-resumable': '1.0.0', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
      payload: randomBytes(CHUNK - offset),
    });
    assert.equal(rest.statusCode, 204, rest.body);
  });

  it('answers an oversized chunk sent with Transfer-Encoding: chunked with 413, not a reset', { timeout: 30_000 }, async () => {
    const id = await newSession();
    const head = chunkHead(id, { 'transfer-encoding': 'chunked' });
    const piece = randomBytes(CHUNK);
    const res = await rawRequest(port, head, (s) => {
      for (let i = 0; i < 3; i++) s.write(`${piece.length.toString(16)}\r\n${piece.toString('latin1')}\r\n`, 'latin1');
      s.write('0\r\n\r\n');
    });
    const body = expectRawProblem(res, 413, 'payload-too-large');
    assert.match(body.detail, /larger than its expected 4096 bytes/);
    const again = await client.putChunk(id, 0, randomBytes(CHUNK));
    assert.equal(again.statusCode, 200, again.body);
  });

  it('leaves no descriptor open after the cut bodies', async () => {
    await waitFor('descriptors back to the idle count', async () => openDescriptors() <= descriptors, 10_000);
  });
});
