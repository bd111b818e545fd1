import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/qasar.js');

/**
 * The issue: one user key opened 3,000 chunked sessions of 20 GiB in 22 s and 1,000 tus
 * uploads in 5 s. Open uploads are capped per user, and a tenant's storage quota is enforced
 * from the declared size at creation and again as bytes arrive.
 */
describe('upload limits: open uploads per user and the tenant storage quota', () => {
  let t: TestApp;
  let client: SessionClient;

  before(async () => {
    t = await startTestApp({ UPLOAD_MAX_OPEN_PER_USER: '3' });
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(() => t.close());

  const tusCreate = (key: string, size: number) =>
    t.app.inject({
      method: 'POST',
      url: '/api/v1/tus',
      headers: {
        ...t.auth(key),
        'tus-resumable': '1.0.0',
        'upload-length': String(size),
        'upload-metadata': `filename ${Buffer.from('a.bin').toString('base64')}`,
      },
    });
  const tusPatch = (key: string, location: string, offset: number, body: Buffer) =>
    t.app.inject({
      method: 'PATCH',
      url: new URL(location, 'http://x').pathname,
      headers: { ...t.auth(key), 'tus-resumable': '1.0.0', 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' },
      payload: body,
    });
  const me = async () => (await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: t.auth(t.tenant.userKey) })).json();
  const setQuota = (value: string) => {
    const res = spawnSync(process.execPath, [BIN, 'tenant', 'quota', t.tenant.id, value], {
      env: { ...process.env, ...t.env.env, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(res.status, 0, res.stderr);
    return JSON.parse(res.stdout) as { quota_bytes: number | null; usage_bytes: number };
  };

  it('refuses an upload over UPLOAD_MAX_OPEN_PER_USER with 429, on both protocols, and counts per user', async () => {
    const opened: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await client.create({ filename: `f${i}.bin`, total_size: 2048 });
      assert.equal(res.statusCode, 201, res.body);
      opened.push(res.json().session_id);
    }
    const over = expectProblem(await client.create({ filename: 'f3.bin', total_size: 2048 }), 429, 'too-many-open-uploads');
    assert.equal(over.max_open, 3);
    expectProblem(await tusCreate(t.tenant.userKey, 2048), 429, 'too-many-open-uploads');
    // Another user of the tenant has uploads of their own.
    const other = new SessionClient(t.app, t.tenant.adminKey);
    assert.equal((await other.create({ filename: 'b.bin', total_size: 2048 })).statusCode, 201);
    // A closed upload no longer counts.
    assert.equal((await client.abort(opened.pop()!)).statusCode, 204);
    assert.equal((await tusCreate(t.tenant.userKey, 2048)).statusCode, 201);
    expectProblem(await client.create({ filename: 'f4.bin', total_size: 2048 }), 429, 'too-many-open-uploads');
    for (const id of opened) await client.abort(id);
  });

  it('holds the cap under a burst of parallel creations on both protocols, and leaves nothing of the refused ones', async () => {
    const key = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'flood' })).key;
    const flood = new SessionClient(t.app, key);
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? flood.create({ filename: `p${i}.bin`, total_size: 2048 }) : tusCreate(key, 2048))),
    );
    const created = answers.filter((r) => r.statusCode === 201);
    assert.equal(created.length, 3, `created: ${created.length}`);
    for (const r of answers) if (r.statusCode !== 201) expectProblem(r, 429, 'too-many-open-uploads');

    const rows = await t.ctx.database.db.selectFrom('upload_sessions').select(['id', 'state']).where('tenant_id', '=', t.tenant.id).execute();
    assert.equal(rows.filter((r) => r.state === 'open').length, 3 + 2, 'the three created, and the two of the test before');
    // Every session folder and tus file belongs to a session that exists.
    const known = new Set(rows.map((r) => r.id));
    const dirs = await fsp.readdir(t.ctx.layout.chunkRoot(t.tenant.id)).catch(() => [] as string[]);
    assert.deepEqual(
      dirs.filter((d) => !known.has(d)),
      [],
      'session folders of refused creations',
    );
    const tusFiles = await fsp.readdir(t.ctx.layout.tusDir()).catch(() => [] as string[]);
    assert.deepEqual(
      tusFiles.filter((f) => !known.has(f.replace(/\.json$/, ''))),
      [],
      'tus files of refused creations',
    );
  });

  it('enforces the quota set with the CLI at creation and as bytes arrive, and shows it in /me', async () => {
    // Start from no open uploads of this user (the tus upload of the test before is aborted).
    await t.ctx.database.db.updateTable('upload_sessions').set({ state: 'aborted' }).where('tenant_id', '=', t.tenant.id).where('state', '=', 'open').execute();
    assert.deepEqual(setQuota('10000'), { tenant_id: t.tenant.id, quota_bytes: 10000, usage_bytes: 0 } as never);
    assert.equal((await me()).quota_bytes, 10000);

    const data = randomBytes(6000);
    const a = await client.create({ filename: 'a.bin', total_size: data.length, chunk_size: 3000 });
    assert.equal(a.statusCode, 201, a.body);
    const sessionA = a.json().session_id as string;
    assert.deepEqual([(await me()).quota_bytes, (await me()).usage_bytes], [10000, 6000]);

    // The declared size does not fit beside it: refused at creation, on both protocols.
    const refused = expectProblem(await client.create({ filename: 'b.bin', total_size: 5000 }), 413, 'quota-exceeded');
    assert.deepEqual([refused.quota_bytes, refused.usage_bytes], [10000, 6000]);
    expectProblem(await tusCreate(t.tenant.userKey, 5000), 413, 'quota-exceeded');

    // The quota lowered under an open upload: its bytes are refused as they arrive.
    setQuota('4000');
    expectProblem(await client.putChunk(sessionA, 0, data.subarray(0, 3000)), 413, 'quota-exceeded');
    setQuota('10000');
    assert.equal((await client.putChunk(sessionA, 0, data.subarray(0, 3000))).statusCode, 200);
    assert.equal((await client.putChunk(sessionA, 1, data.subarray(3000))).statusCode, 200);
    assert.equal((await client.complete(sessionA)).statusCode, 201);
    assert.deepEqual([(await me()).quota_bytes, (await me()).usage_bytes], [10000, 6000]);

    // Uploads created together past the quota (here: while there was none): the earliest go on, the later are refused.
    setQuota('none');
    const c = (await client.create({ filename: 'c.bin', total_size: 3000, chunk_size: 3000 })).json();
    const tusD = await tusCreate(t.tenant.userKey, 3000);
    assert.equal(tusD.statusCode, 201, tusD.body);
    setQuota('10000');
    assert.equal((await client.putChunk(c.session_id, 0, randomBytes(3000))).statusCode, 200);
    expectProblem(await tusPatch(t.tenant.userKey, String(tusD.headers.location), 0, randomBytes(3000)), 413, 'quota-exceeded');
    assert.equal((await client.complete(c.session_id)).statusCode, 201);
    assert.deepEqual(setQuota('none'), { tenant_id: t.tenant.id, quota_bytes: null, usage_bytes: 12000 } as never);
  });
});
