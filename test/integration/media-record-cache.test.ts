import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createContext, type AppContext } from '../../src/context.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/logger.js';
import { BACKEND, SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { insertMedia } from '../support/media-seed.js';
import { SessionClient } from '../support/upload-client.js';

/**
 * GET /media/{id} serves records from a per-process cache (MEDIA_CACHE_TTL). The TTL here is
 * ten minutes, so anything that shows before it ran out was forgotten by an invalidation.
 */
describe('media record cache (MEDIA_CACHE_TTL)', () => {
  let t: TestApp;
  const get = (id: string, key?: string) => t.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(key ?? t.tenant.userKey) });
  const record = async (id: string, key?: string) => {
    const res = await get(id, key);
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as Record<string, any>;
  };
  /** Written past every service, as a tool editing the database by hand would: nobody is told. */
  const quietCaption = (id: string, caption: string) =>
    t.ctx.database.db.updateTable('mediaassets').set({ caption }).where('id', '=', id).execute();

  before(async () => {
    t = await startTestApp({ MEDIA_CACHE_TTL: '10m' });
  });
  after(() => t.close());

  it('serves a record read a moment ago, and a write through a service shows at once', async () => {
    const id = await insertMedia(t, { caption: 'first words' });
    assert.equal((await record(id)).caption, 'first words');
    await quietCaption(id, 'changed quietly');
    assert.equal((await record(id)).caption, 'first words', 'served from the cache: nobody was told of that write');
    const patched = await t.app.inject({ method: 'PATCH', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey), payload: { caption: 'patched', tags: ['Cat'] } });
    assert.equal(patched.statusCode, 200, patched.body);
    const m = await record(id);
    assert.equal(m.caption, 'patched');
    assert.deepEqual(m.user_tags, ['Cat']);
    // The JSON a cached record is served as is the same as a fresh one's.
    const again = await get(id);
    assert.equal(again.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(again.json(), m);
  });

  it('shows labels, moderation and deletion at once', async () => {
    const id = await insertMedia(t, {});
    assert.deepEqual((await record(id)).labels, []);
    const labelled = await t.app.inject({ method: 'POST', url: `/api/v1/media/${id}/labels`, headers: t.auth(t.tenant.adminKey), payload: { labels: [{ name: 'Lighthouse' }] } });
    assert.equal(labelled.statusCode, 200, labelled.body);
    assert.deepEqual((await record(id)).labels.map((l: { name: string }) => l.name), ['lighthouse']);

    const bob = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' });
    assert.equal((await get(id, bob.key)).statusCode, 200, 'another user of the tenant reads it (and caches it)');
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [{ name: 'gore', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    assert.equal((await record(id)).moderation_state, 'held', 'the owner sees the new state (and the held record is cached now)');
    assert.equal((await get(id, bob.key)).statusCode, 403, 'held: the cached record is not shown to others');
    assert.equal((await get(id, t.tenant.adminKey)).statusCode, 200, 'but it is to an admin key');
    const decided = await t.app.inject({ method: 'POST', url: `/api/v1/media/${id}/moderation`, headers: t.auth(t.tenant.adminKey), payload: { decision: 'approve', note: 'ok' } });
    assert.equal(decided.statusCode, 200, decided.body);
    const approved = await record(id, bob.key);
    assert.equal(approved.moderation_state, 'approved');
    assert.equal(approved.moderation.note, 'ok');

    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.adminKey) });
    assert.equal(del.statusCode, 204, del.body);
    assert.equal((await get(id)).statusCode, 404);
  });

  it('keeps tenants apart: the same id read by another tenant is not found', async () => {
    const id = await insertMedia(t, {});
    await record(id);
    assert.equal((await get(id, t.other.adminKey)).statusCode, 404);
  });

  it('shows what the worker did (status, artifacts) as soon as it did it', async () => {
    const client = new SessionClient(t.app, t.tenant.userKey);
    const png = await fs.readFile(path.join(SAMPLES, 'png-rgba-alpha-2048x1536.png'));
    const { completed } = await client.uploadWhole(png, { filename: 'alpha.png', chunkSize: 256 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    const id = (completed.json() as { id: string }).id;
    const queued = await record(id);
    assert.equal(queued.status, 'queued');
    assert.deepEqual(queued.urls, {});
    const worker = t.ctx.worker.start(1);
    try {
      const ready = await waitFor('the record to show the processed image', async () => {
        const m = await record(id);
        return m.status === 'ready' ? m : undefined;
      }, 60_000);
      assert.ok(Object.keys(ready.urls).length > 0, `artifact URLs in the record: ${JSON.stringify(ready.urls)}`);
      assert.deepEqual(ready.status_history.map((h: { status: string }) => h.status), ['queued', 'processing', 'ready']);
    } finally {
      await worker.close();
    }
  });

  describe('across processes', () => {
    let other: { ctx: AppContext; app: Awaited<ReturnType<typeof buildApp>> } | undefined;
    /** A process reading through its caches for ten minutes: only what it is told (or sees) makes them fresh. */
    let mine: { ctx: AppContext; app: Awaited<ReturnType<typeof buildApp>> } | undefined;
    const ttl = 600_000;
    const open = async (settings: AppContext['settings']) => {
      const ctx = await createContext(settings, { log: createLogger('silent') });
      const app = await buildApp(ctx);
      await app.ready();
      return { ctx, app };
    };
    const caption = async (p: { app: Awaited<ReturnType<typeof buildApp>> }, id: string) => {
      const res = await p.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey) });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json() as { caption: string | null }).caption;
    };

    before(async () => {
      mine = await open({ ...t.env.settings, mediaCacheTtl: ttl, searchCacheTtl: ttl });
      other = await open(t.env.settings);
    });
    after(async () => {
      for (const p of [mine, other]) {
        await p?.app.close();
        await p?.ctx.close();
      }
    });

    it(
      BACKEND === 'scale'
        ? 'forgets a record and rankings as soon as another process announces its write (Redis)'
        : 'forgets a record and rankings as soon as another process wrote to the SQLite file',
      async () => {
        const id = await insertMedia(t, { caption: 'before' });
        // The subscription is made in the background at start-up, and the creation is announced too.
        await sleep(200);
        assert.equal(await caption(mine!, id), 'before');
        const search = async () => {
          const res = await mine!.app.inject({ url: '/api/v1/search?q=aardwolf', headers: t.auth(t.tenant.userKey) });
          assert.equal(res.statusCode, 200, res.body);
          return (res.json() as { items: { id: string }[] }).items.map((i) => i.id);
        };
        assert.deepEqual(await search(), []);
        const patched = await other!.app.inject({ method: 'PATCH', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.userKey), payload: { caption: 'after the aardwolf' } });
        assert.equal(patched.statusCode, 200, patched.body);
        if (BACKEND === 'scale') {
          await waitFor('the other process\'s write to show', async () => (await caption(mine!, id)) === 'after the aardwolf', 3_000);
        } else {
          await sleep(25); // SQLite's data_version is looked at every 20 ms
          assert.equal(await caption(mine!, id), 'after the aardwolf', 'seen with no message at all');
        }
        assert.deepEqual(await search(), [id], 'the cached ranking was forgotten too');
      },
    );

    if (BACKEND === 'scale') it('on PostgreSQL without Redis, serves the cached record but reads who may see it fresh', async () => {
      const lone = await open({ ...t.env.settings, redisUrl: '', mediaCacheTtl: ttl });
      try {
        const id = await insertMedia(t, { caption: 'cached without a bus' });
        const bob = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' });
        const read = (key: string) => lone.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(key) });
        assert.equal((await read(bob.key)).statusCode, 200);
        await quietCaption(id, 'changed elsewhere');
        assert.equal((await read(bob.key)).json().caption, 'cached without a bus', 'nothing tells it: the record is served from its cache');
        await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [{ name: 'gore', kind: 'moderation', confidence: 0.99, source: 'model' }]);
        assert.equal((await read(bob.key)).statusCode, 403, 'a hold made by another process hides it at once');
        assert.equal((await read(t.tenant.userKey)).statusCode, 200, 'from others only');
      } finally {
        await lone.app.close();
        await lone.ctx.close();
      }
    });

    if (BACKEND === 'scale') it('forgets everything when the change subscription comes back after a loss (Redis)', async () => {
      const id = await insertMedia(t, { caption: 'kept' });
      // Its creation is announced too: once that arrived, nothing more is on its way.
      await sleep(200);
      assert.equal(await caption(mine!, id), 'kept');
      await quietCaption(id, 'missed while away');
      assert.equal(await caption(mine!, id), 'kept');
      // Drop this process's subscription as a network loss would; ioredis connects and subscribes again.
      const admin = new Redis(t.env.settings.redisUrl);
      try {
        const list = await admin.client('LIST');
        const name = `${t.env.settings.redisPrefix}:media-changes`;
        const ids = String(list).split('\n').filter((l) => l.includes(`name=${name}`)).map((l) => /id=(\d+)/.exec(l)![1]!);
        assert.equal(ids.length, 3, `the three processes of this test subscribe under the name ${name}`);
        for (const clientId of ids) await admin.client('KILL', 'ID', clientId);
      } finally {
        admin.disconnect();
      }
      await waitFor('the cache to be emptied once subscribed again', async () => (await caption(mine!, id)) === 'missed while away', 5_000);
    });
  });
});
