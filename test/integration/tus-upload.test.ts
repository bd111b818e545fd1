import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Upload, type HttpResponse, type UploadOptions } from 'tus-js-client';
import { listFiles, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { sha256 } from '../support/upload-client.js';

const MiB = 1024 * 1024;
/** The app's UPLOAD_MAX_SIZE below; the big file of the first test stays under it. */
const MAX_SIZE = 60 * MiB;
const BIG_SIZE = 52 * MiB;
/** CORS is on, as for a browser app: tus must still answer its own OPTIONS. */
const ORIGIN = 'https://app.example';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const metadataHeader = (md: Record<string, string>) =>
  Object.entries(md)
    .map(([k, v]) => `${k} ${b64(v)}`)
    .join(',');
const digest = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('base64');

describe('tus 1.0 uploads', () => {
  let t: TestApp;
  /** Absolute URL of the tus endpoint on the listening server. */
  let endpoint: string;

  before(async () => {
    t = await startTestApp({ UPLOAD_MAX_SIZE: '60MiB', CORS_ORIGINS: ORIGIN });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = t.app.server.address() as AddressInfo;
    endpoint = `http://127.0.0.1:${port}/api/v1/tus`;
  });
  after(() => t.close());

  /** One raw tus request (every request but OPTIONS carries Tus-Resumable). */
  async function tus(method: string, url: string, opts: { key?: string | null; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'tus-resumable': '1.0.0', ...opts.headers };
    if (opts.key) headers.authorization = `Bearer ${opts.key}`;
    if (opts.body) headers['content-type'] ??= 'application/offset+octet-stream';
    const res = await fetch(url, { method, headers, ...(opts.body ? { body: opts.body } : {}) });
    await res.arrayBuffer();
    return res;
  }

  /** Creates an upload with raw HTTP and returns its absolute URL. */
  async function create(key: string, size: number, md: Record<string, string> = { filename: 'raw.bin' }): Promise<string> {
    const res = await tus('POST', endpoint, { key, headers: { 'upload-length': String(size), 'upload-metadata': metadataHeader(md) } });
    assert.equal(res.status, 201, `create: ${res.status}`);
    const location = res.headers.get('location');
    assert.ok(location, 'a Location header');
    return new URL(location, endpoint).href;
  }

  const idOf = (url: string) => url.slice(url.lastIndexOf('/') + 1);

  async function offsetOf(url: string, key = t.tenant.userKey): Promise<number> {
    const res = await tus('HEAD', url, { key });
    assert.equal(res.status, 200, `HEAD ${url}: ${res.status}`);
    return Number(res.headers.get('upload-offset'));
  }

  async function sessionRow(id: string) {
    return t.ctx.database.db.selectFrom('upload_sessions').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Files tus keeps for this upload id (the data file and its .json info). */
  async function tusFilesOf(id: string): Promise<string[]> {
    return (await listFiles(t.ctx.layout.tusDir())).filter((f) => f.includes(id));
  }

  async function mediaOf(mediaId: string, key = t.tenant.userKey) {
    const res = await fetch(`${new URL(endpoint).origin}/api/v1/media/${mediaId}`, { headers: t.auth(key) });
    assert.equal(res.status, 200, `GET media ${mediaId}`);
    return (await res.json()) as {
      id: string;
      size: number;
      sha256: string;
      caption: string | null;
      user_tags: string[];
      original_filename: string;
      file_metadata: { original: { path: string } };
    };
  }

  it('uploads a 52 MiB file with tus-js-client, aborted half-way and resumed by a fresh client', async () => {
    const file = path.join(t.env.tmp, 'big.bin');
    const data = randomBytes(BIG_SIZE);
    await fsp.writeFile(file, data);
    assert.ok(BIG_SIZE < MAX_SIZE);
    const expectedSha = sha256(data);

    const common: UploadOptions = {
      headers: t.auth(t.tenant.userKey),
      chunkSize: 8 * MiB,
      retryDelays: null,
    };

    // First client: stops once more than half has been sent.
    let first!: Upload;
    let abortedAt = 0;
    await new Promise<void>((resolve, reject) => {
      first = new Upload(fs.createReadStream(file), {
        ...common,
        endpoint,
        metadata: { filename: 'big random.bin', filetype: 'application/octet-stream', caption: 'Resumed over tus', tags: 'a,b' },
        onProgress: (sent, total) => {
          if (abortedAt || sent < total / 2) return;
          abortedAt = sent;
          first.abort().then(resolve, reject);
        },
        onSuccess: () => reject(new Error('the first upload finished before it was aborted')),
        onError: reject,
      });
      first.start();
    });
    const uploadUrl = first.url;
    assert.ok(uploadUrl, 'the first client got an upload URL');
    const id = idOf(uploadUrl);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7 upload id');

    const before = await offsetOf(uploadUrl);
    assert.ok(before > 0, `the server kept the bytes of the aborted upload (offset ${before})`);
    assert.ok(before < BIG_SIZE, `the aborted upload is not complete (offset ${before})`);
    assert.ok(before <= abortedAt, `the server holds no more than the client sent (${before} <= ${abortedAt})`);
    assert.equal((await sessionRow(id))?.state, 'open');

    // Second client: knows only the URL.
    let firstProgress: number | undefined;
    let mediaId: string | undefined;
    await new Promise<void>((resolve, reject) => {
      const second = new Upload(fs.createReadStream(file), {
        ...common,
        uploadUrl,
        onProgress: (sent) => {
          firstProgress ??= sent;
        },
        onAfterResponse: (_req, res: HttpResponse) => {
          const m = res.getHeader('Qasar-Media-Id');
          if (m) mediaId = m;
        },
        onSuccess: () => resolve(),
        onError: reject,
      });
      second.start();
    });
    assert.ok(firstProgress !== undefined && firstProgress >= before, `the resumed upload started at ${firstProgress}, not 0`);
    assert.ok(mediaId, 'the final PATCH names the media');

    const session = await sessionRow(id);
    assert.equal(session?.state, 'completed');
    assert.equal(session?.media_id, mediaId);
    assert.equal(session?.protocol, 'tus');
    assert.equal(session?.tenant_id, t.tenant.id);
    assert.equal(session?.user_id, 'alice');

    const media = await mediaOf(mediaId);
    assert.equal(media.size, BIG_SIZE);
    assert.equal(media.sha256, expectedSha);
    assert.equal(media.original_filename, 'big random.bin');
    assert.equal(media.caption, 'Resumed over tus');
    assert.deepEqual(media.user_tags, ['a', 'b']);
    const stored = await fsp.readFile(path.join(t.ctx.layout.root, media.file_metadata.original.path));
    assert.ok(stored.equals(data), 'the stored original is byte-identical');

    // Nothing of the upload is left in the tus or scratch folders.
    assert.deepEqual(await tusFilesOf(id), []);
    assert.deepEqual(await listFiles(t.ctx.layout.tmpDir()), []);
    // The finished upload reports itself whole.
    const head = await tus('HEAD', uploadUrl, { key: t.tenant.userKey });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('upload-offset'), String(BIG_SIZE));
    assert.equal(head.headers.get('upload-length'), String(BIG_SIZE));
  });

  it('advertises the extensions and enforces Upload-Checksum', async () => {
    const opts = await fetch(endpoint, { method: 'OPTIONS' });
    assert.equal(opts.status, 204);
    assert.match(opts.headers.get('tus-version') ?? '', /(^|,)\s*1\.0\.0\s*(,|$)/);
    const extensions = (opts.headers.get('tus-extension') ?? '').split(',').map((s) => s.trim());
    for (const ext of ['creation', 'creation-with-upload', 'termination', 'expiration', 'checksum']) {
      assert.ok(extensions.includes(ext), `Tus-Extension lists ${ext}: ${extensions.join(',')}`);
    }
    const algorithms = (opts.headers.get('tus-checksum-algorithm') ?? '').split(',').map((s) => s.trim());
    for (const alg of ['sha1', 'sha256', 'md5']) assert.ok(algorithms.includes(alg), `Tus-Checksum-Algorithm lists ${alg}`);
    assert.equal(opts.headers.get('tus-max-size'), String(MAX_SIZE));

    // A browser's preflight for a checksummed PATCH is allowed every header it needs.
    const preflight = await fetch(`${endpoint}/01a210d5-0670-7362-93e0-83adb7bae100`, {
      method: 'OPTIONS',
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'PATCH',
        'access-control-request-headers': 'authorization,content-type,tus-resumable,upload-offset,upload-checksum',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /\bPATCH\b/);
    const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/);
    for (const h of ['authorization', 'content-type', 'tus-resumable', 'upload-offset', 'upload-checksum']) {
      assert.ok(allowed.includes(h), `preflight allows ${h}: ${allowed.join(',')}`);
    }
    const evil = await fetch(endpoint, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(evil.headers.get('access-control-allow-origin'), null, 'no other origin is allowed');

    const data = randomBytes(300_000);
    const first = data.subarray(0, 100_000);
    const rest = data.subarray(100_000);
    const url = await create(t.tenant.userKey, data.length, { filename: 'checked.bin' });

    const ok = await tus('PATCH', url, {
      key: t.tenant.userKey,
      headers: { 'upload-offset': '0', 'upload-checksum': `sha256 ${digest('sha256', first)}`, 'x-request-id': 'tus-trace-1' },
      body: first,
    });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('upload-offset'), String(first.length));
    assert.equal(ok.headers.get('x-request-id'), 'tus-trace-1', 'tus responses carry the request id');

    const wrong = await tus('PATCH', url, {
      key: t.tenant.userKey,
      headers: { 'upload-offset': String(first.length), 'upload-checksum': `sha256 ${digest('sha256', Buffer.from('other bytes'))}` },
      body: rest,
    });
    assert.equal(wrong.status, 460);
    assert.equal(await offsetOf(url), first.length, 'the refused bytes were not kept');

    const unsupported = await tus('PATCH', url, {
      key: t.tenant.userKey,
      headers: { 'upload-offset': String(first.length), 'upload-checksum': `crc32 ${digest('sha256', rest)}` },
      body: rest,
    });
    assert.equal(unsupported.status, 400);
    assert.equal(await offsetOf(url), first.length);

    const last = await tus('PATCH', url, {
      key: t.tenant.userKey,
      headers: { 'upload-offset': String(first.length), 'upload-checksum': `sha1 ${digest('sha1', rest)}`, origin: ORIGIN },
      body: rest,
    });
    assert.equal(last.status, 204);
    assert.equal(last.headers.get('upload-offset'), String(data.length));
    const mediaId = last.headers.get('qasar-media-id');
    assert.ok(mediaId);
    // A browser may read what it needs from the response.
    assert.equal(last.headers.get('access-control-allow-origin'), ORIGIN);
    const exposed = (last.headers.get('access-control-expose-headers') ?? '').toLowerCase().split(/\s*,\s*/);
    for (const h of ['upload-offset', 'qasar-media-id', 'upload-expires', 'x-request-id']) assert.ok(exposed.includes(h), `exposes ${h}`);
    const media = await mediaOf(mediaId);
    assert.equal(media.sha256, sha256(data));
    const stored = await fsp.readFile(path.join(t.ctx.layout.root, media.file_metadata.original.path));
    assert.ok(stored.equals(data));
  });

  it('terminates an upload in progress', async () => {
    const url = await create(t.tenant.userKey, 10_000);
    const id = idOf(url);
    const part = await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '0' }, body: randomBytes(4000) });
    assert.equal(part.status, 204);
    assert.ok((await tusFilesOf(id)).length > 0, 'the bytes are on disk while the upload runs');

    const del = await tus('DELETE', url, { key: t.tenant.userKey });
    assert.equal(del.status, 204);
    assert.equal((await sessionRow(id))?.state, 'aborted');
    assert.equal((await tus('HEAD', url, { key: t.tenant.userKey })).status, 404);
    const late = await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '4000' }, body: randomBytes(100) });
    assert.equal(late.status, 404);
    assert.equal((await tus('DELETE', url, { key: t.tenant.userKey })).status, 404);
    assert.deepEqual(await tusFilesOf(id), []);
  });

  it('terminates an upload while a PATCH is still sending to it', async () => {
    const url = await create(t.tenant.userKey, 1_000_000);
    const id = idOf(url);
    const req = http.request(url, {
      method: 'PATCH',
      headers: {
        ...t.auth(t.tenant.userKey),
        'tus-resumable': '1.0.0',
        'upload-offset': '0',
        'content-type': 'application/offset+octet-stream',
        'content-length': '1000000',
      },
    });
    const patched = new Promise<number | string>((resolve) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (err) => resolve(err.message));
    });
    req.write(randomBytes(100_000));
    await waitFor('the first bytes on disk', async () => (await fsp.stat(path.join(t.ctx.layout.tusDir(), id)).catch(() => undefined))?.size);

    // tus makes the PATCH let go of the upload (after its lock drain time), then removes it.
    const del = await tus('DELETE', url, { key: t.tenant.userKey });
    assert.equal(del.status, 204);
    assert.equal((await sessionRow(id))?.state, 'aborted');
    assert.deepEqual(await tusFilesOf(id), []);
    req.destroy();
    await patched;
    assert.equal((await tus('HEAD', url, { key: t.tenant.userKey })).status, 404);
    assert.deepEqual(await tusFilesOf(id), []);
  });

  it('keeps uploads to their tenant and user', async () => {
    const data = randomBytes(5000);
    const url = await create(t.tenant.userKey, 10_000);
    const id = idOf(url);
    assert.equal((await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '0' }, body: data })).status, 204);

    const bob = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' });
    for (const [who, key] of [
      ['another tenant (admin key)', t.other.adminKey],
      ['another tenant (user key)', t.other.userKey],
      ['another user of the same tenant', bob.key],
    ] as const) {
      const head = await tus('HEAD', url, { key });
      assert.equal(head.status, 404, `HEAD by ${who}`);
      assert.equal(head.headers.get('tus-resumable'), '1.0.0');
      const patch = await tus('PATCH', url, { key, headers: { 'upload-offset': '5000' }, body: randomBytes(5000) });
      assert.equal(patch.status, 404, `PATCH by ${who}`);
      assert.equal((await tus('DELETE', url, { key })).status, 404, `DELETE by ${who}`);
    }
    assert.equal((await sessionRow(id))?.state, 'open');
    assert.equal(await offsetOf(url, t.tenant.adminKey), 5000, "the tenant's admin sees it, untouched");
    assert.equal((await tus('HEAD', url, { key: 'qsr_not-a-real-key' })).status, 401);

    const forged = `${t.tenant.userKey.slice(0, -4)}AAAA`;
    for (const key of [null, 'qsr_not-a-real-key', forged]) {
      const res = await tus('POST', endpoint, { key, headers: { 'upload-length': '10', 'upload-metadata': metadataHeader({ filename: 'x.bin' }) } });
      assert.equal(res.status, 401, `POST with key ${JSON.stringify(key)}`);
    }
  });

  describe('bad input', () => {
    /** What a refused request must leave as it was: tus's files and the session rows. */
    async function snapshot(): Promise<{ files: string[]; sessions: number }> {
      const { n } = await t.ctx.database.db
        .selectFrom('upload_sessions')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return { files: await listFiles(t.ctx.layout.tusDir()), sessions: Number(n) };
    }

    const cases: Array<[string, Record<string, string>, number]> = [
      ['an Upload-Length over UPLOAD_MAX_SIZE', { 'upload-length': String(MAX_SIZE + 1), 'upload-metadata': metadataHeader({ filename: 'big.bin' }) }, 413],
      ['a filename with ../', { 'upload-length': '100', 'upload-metadata': metadataHeader({ filename: '../../etc/passwd' }) }, 422],
      ['a zero Upload-Length', { 'upload-length': '0', 'upload-metadata': metadataHeader({ filename: 'empty.bin' }) }, 422],
      ['a missing filename', { 'upload-length': '100' }, 422],
      ['a deferred length', { 'upload-defer-length': '1', 'upload-metadata': metadataHeader({ filename: 'x.bin' }) }, 501],
    ];
    for (const [name, headers, status] of cases) {
      it(`refuses ${name}`, async () => {
        const before = await snapshot();
        const res = await tus('POST', endpoint, { key: t.tenant.userKey, headers });
        assert.equal(res.status, status);
        assert.equal(res.headers.get('location'), null);
        assert.deepEqual(await snapshot(), before, 'nothing was stored');
      });
    }

    it('refuses a creation-with-upload body over the limit', async () => {
      const before = await snapshot();
      const res = await tus('POST', endpoint, {
        key: t.tenant.userKey,
        headers: { 'upload-length': String(MAX_SIZE + 1), 'upload-metadata': metadataHeader({ filename: 'big.bin' }) },
        body: randomBytes(1000),
      });
      assert.equal(res.status, 413);
      assert.deepEqual(await snapshot(), before, 'nothing was stored');
    });

    it('creates with upload, and reports a completed upload whole on HEAD', async () => {
      const data = randomBytes(20_000);
      const res = await tus('POST', endpoint, {
        key: t.tenant.userKey,
        headers: { 'upload-length': String(data.length), 'upload-metadata': metadataHeader({ filename: 'one-shot.bin', caption: 'at once' }) },
        body: data,
      });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('upload-offset'), String(data.length));
      const mediaId = res.headers.get('qasar-media-id');
      assert.ok(mediaId);
      const url = new URL(res.headers.get('location')!, endpoint).href;
      const head = await tus('HEAD', url, { key: t.tenant.userKey });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('upload-offset'), String(data.length));
      assert.equal(head.headers.get('upload-length'), String(data.length));
      assert.equal(head.headers.get('qasar-media-id'), mediaId);
      assert.equal(head.headers.get('tus-resumable'), '1.0.0');
      const media = await mediaOf(mediaId);
      assert.equal(media.caption, 'at once');
      assert.equal(media.sha256, sha256(data));
      // No more bytes go to a finished upload.
      const more = await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': String(data.length) }, body: Buffer.from('x') });
      assert.ok(more.status >= 400 && more.status < 500, `PATCH after completion: ${more.status}`);
      // Nor can it be terminated: the media is not touched.
      assert.equal((await tus('DELETE', url, { key: t.tenant.userKey })).status, 404);
      assert.equal((await sessionRow(idOf(url)))?.state, 'completed');
      const stored = await fsp.readFile(path.join(t.ctx.layout.root, media.file_metadata.original.path));
      assert.ok(stored.equals(data));
      assert.deepEqual(await tusFilesOf(idOf(url)), []);
    });

    it('fails an upload whose bytes do not hash to the declared sha256, keeping nothing', async () => {
      const data = randomBytes(3000);
      const url = await create(t.tenant.userKey, data.length, { filename: 'x.bin', sha256: sha256(Buffer.from('other')) });
      const res = await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '0' }, body: data });
      assert.equal(res.status, 422);
      const row = await sessionRow(idOf(url));
      assert.equal(row?.state, 'failed');
      assert.equal(row?.media_id, null);
      assert.deepEqual(await tusFilesOf(idOf(url)), []);
      assert.deepEqual(await listFiles(t.ctx.layout.tmpDir()), []);
    });
  });

  it('expires uploads by idleness, not age', async () => {
    const url = await create(t.tenant.userKey, 10_000);
    const id = idOf(url);
    assert.equal((await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '0' }, body: randomBytes(1000) })).status, 204);
    // The upload was created long ago (its tus info file says so) but has just received bytes.
    const info = path.join(t.ctx.layout.tusDir(), `${id}.json`);
    const stored = JSON.parse(await fsp.readFile(info, 'utf8')) as { creation_date: string };
    stored.creation_date = new Date(Date.now() - t.ctx.settings.uploadSessionExpiry - 3_600_000).toISOString();
    await fsp.writeFile(info, JSON.stringify(stored));

    assert.equal(await offsetOf(url), 1000, 'an active upload is not gone');
    const more = await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '1000' }, body: randomBytes(1000) });
    assert.equal(more.status, 204);
    const expires = Date.parse(more.headers.get('upload-expires') ?? '');
    assert.ok(
      expires > Date.now() + t.ctx.settings.uploadSessionExpiry - 60_000,
      `Upload-Expires counts from the last write: ${more.headers.get('upload-expires')}`,
    );
    assert.equal((await tus('DELETE', url, { key: t.tenant.userKey })).status, 204);
  });

  it('sweeps idle partial uploads', async () => {
    const url = await create(t.tenant.userKey, 10_000);
    const id = idOf(url);
    assert.equal((await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '0' }, body: randomBytes(2000) })).status, 204);
    // Another one whose bytes have vanished (a crash, an operator): its info file must go too.
    const lostUrl = await create(t.tenant.userKey, 10_000);
    const lost = idOf(lostUrl);
    await fsp.rm(path.join(t.ctx.layout.tusDir(), lost));

    assert.equal(await t.ctx.tus.sweepExpired(Date.now()), 0, 'nothing is idle yet');
    assert.equal((await sessionRow(id))?.state, 'open');
    assert.ok((await tusFilesOf(id)).length > 0);

    const swept = await t.ctx.tus.sweepExpired(Date.now() + t.ctx.settings.uploadSessionExpiry + 1000);
    assert.ok(swept >= 2, `swept ${swept}`);
    for (const x of [id, lost]) {
      assert.equal((await sessionRow(x))?.state, 'expired');
      assert.deepEqual(await tusFilesOf(x), [], `nothing of ${x} is left`);
    }
    assert.equal((await tus('HEAD', url, { key: t.tenant.userKey })).status, 404);
    const late = await tus('PATCH', url, { key: t.tenant.userKey, headers: { 'upload-offset': '2000' }, body: randomBytes(100) });
    assert.equal(late.status, 404);
    assert.deepEqual(await tusFilesOf(id), []);
  });
});
