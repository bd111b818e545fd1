import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createContext, type AppContext } from '../../src/cli/compose.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/shared/logger.js';
import { testEnv, type TestEnv } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

describe('playback tokens in the logs', () => {
  let env: TestEnv;
  let ctx: AppContext;
  let app: FastifyInstance;
  let base: string;
  let token: string;
  let mediaId: string;
  /** Every line the server's logger wrote, as it would reach stdout. */
  const lines: string[] = [];

  before(async () => {
    env = await testEnv();
    ctx = await createContext(env.settings, { log: createLogger('info', 'qasar', { write: (line: string) => void lines.push(line) }) });
    app = await buildApp(ctx);
    // An error whose message quotes the request URL, as Fastify's own errors do.
    app.get('/echo-error', async (req) => {
      throw new Error(`could not handle ${req.url}`);
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

    const tenant = await ctx.tenancy.createTenant('acme');
    const key = (await ctx.tenancy.createKey({ tenantId: tenant.id, userId: 'alice' })).key;
    const { completed } = await new SessionClient(app, key).uploadWhole(randomBytes(1000), { filename: 'clip.bin', chunkSize: 1024 });
    mediaId = completed.json().id;
    const dir = ctx.layout.mediaDir({ tenantId: tenant.id, userId: 'alice', mediaId });
    await fs.mkdir(path.join(dir, 'posters'), { recursive: true });
    await fs.writeFile(path.join(dir, 'posters', 'poster.jpg'), 'jpeg bytes');
    await ctx.database.db
      .updateTable('mediaassets')
      .set({ file_metadata: JSON.stringify({ artifacts: { poster: { jpeg: 'posters/poster.jpg' } } }) })
      .where('id', '=', mediaId)
      .execute();
    const pkg = await app.inject({ url: `/api/v1/media/${mediaId}/package`, headers: { authorization: `Bearer ${key}` } });
    token = new URL(pkg.json().poster.jpeg).pathname.split('/')[2]!;
  });
  after(async () => {
    await app.close();
    await ctx.close();
    await env.cleanup();
  });

  it('never writes a token into a log line: request logs, not-found and error logs', async () => {
    const signature = token.split('.')[2]!;
    lines.length = 0;
    const played = await fetch(`${base}/play/${token}/posters/poster.jpg`);
    assert.equal(played.status, 200);
    assert.equal(await played.text(), 'jpeg bytes');
    assert.equal((await fetch(`${base}/play/${token}/posters/missing.jpg`)).status, 404);
    assert.equal((await fetch(`${base}/play/${token}`)).status, 404);
    assert.equal((await fetch(`${base}/anything?token=${token}&access_token=${signature}`)).status, 404);
    assert.equal((await fetch(`${base}/echo-error?next=/play/${token}/hls/master.m3u8`)).status, 500);
    await new Promise((r) => setImmediate(r));

    const logged = lines.join('');
    const parsed = lines.map((l) => JSON.parse(l) as { level: number; msg: string; req?: { url: string }; err?: { message: string } });
    // The lines were written, with the paths still there for whoever reads the log.
    const urls = parsed.filter((l) => l.msg === 'incoming request').map((l) => l.req!.url);
    assert.ok(urls.includes(`/play/${mediaId}.[redacted]/posters/poster.jpg`), urls.join('\n'));
    assert.ok(urls.includes('/anything?token=[redacted]&access_token=[redacted]'), urls.join('\n'));
    const errors = parsed.filter((l) => l.level >= 50);
    assert.ok(
      errors.some((l) => l.err?.message === `could not handle /echo-error?next=/play/${mediaId}.[redacted]/hls/master.m3u8`),
      JSON.stringify(errors),
    );
    assert.ok(!logged.includes(signature), `a token signature reached the log:\n${logged}`);
  });
});
