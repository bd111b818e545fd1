import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createContext, type AppContext } from '../../src/cli/compose.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/shared/logger.js';
import { PgChangeBus, changeChannel } from '../../src/events/pg-change-bus.js';
import { BACKEND, SAMPLES, changeBusListening, startTestApp, waitFor, type TestApp } from '../support/harness.js';
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
  const quietCaption = (id: string, caption: string) => t.ctx.database.db.updateTable('mediaassets').set({ caption }).where('id', '=', id).execute();

  before(async () => {
    t = await startTestApp({ MEDIA_CACHE_TTL: '10m' });
  });
  after(() => t.close());

  it('serves a record read a moment ago, and a write through a service shows at once', async () => {
    const id = await insertMedia(t, { caption: 'first words' });
    assert.equal((await record(id)).caption, 'first words');
    await quietCaption(id, 'changed quietly');
    assert.equal((await record(id)).caption, 'first words', 'served from the cache: nobody was told of that write');
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/media/${id}`,
      headers: t.auth(t.tenant.userKey),
      payload: { caption: 'patched', tags: ['Cat'] },
    });
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
    const labelled = await t.app.inject({
      method: 'POST',
      url: `/api/v1/media/${id}/labels`,
      headers: t.auth(t.tenant.adminKey),
      payload: { labels: [{ name: 'Lighthouse' }] },
    });
    assert.equal(labelled.statusCode, 200, labelled.body);
    assert.deepEqual(
      (await record(id)).labels.map((l: { name: string }) => l.name),
      ['Lighthouse'],
    );

    const bob = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' });
    assert.equal((await get(id, bob.key)).statusCode, 200, 'another user of the tenant reads it (and caches it)');
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [{ name: 'gore', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    assert.equal((await record(id)).moderation_state, 'held', 'the owner sees the new state (and the held record is cached now)');
    assert.equal((await get(id, bob.key)).statusCode, 403, 'held: the cached record is not shown to others');
    assert.equal((await get(id, t.tenant.adminKey)).statusCode, 200, 'but it is to an admin key');
    const decided = await t.app.inject({
      method: 'POST',
      url: `/api/v1/media/${id}/moderation`,
      headers: t.auth(t.tenant.adminKey),
      payload: { decision: 'approve', note: 'ok' },
    });
    assert.equal(decided.statusCode, 200, decided.body);
    const approved = await record(id, bob.key);
    assert.equal(approved.moderation_state, 'approved');
    assert.equal(approved.moderation.note, 'ok');

    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.adminKey) });
    assert.equal(del.statusCode, 204, del.body);
    assert.equal((await get(id)).statusCode, 404);
  });

  it('lists (feeds, search results) are built from cached facts, and writes through the services show at once', async () => {
    const bob = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' });
    const id = await insertMedia(t, { caption: 'walrus on the ice', labels: ['walrus'] });
    const item = async (url: string, key = t.tenant.userKey) => {
      const res = await t.app.inject({ url, headers: t.auth(key) });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json() as { items: Record<string, any>[] }).items.find((i) => i.id === id);
    };
    const feed = (key?: string) => item('/api/v1/feed/new?limit=100', key);
    const found = (key?: string) => item('/api/v1/search?q=walrus&limit=100', key);
    assert.equal((await feed())?.caption, 'walrus on the ice');
    await quietCaption(id, 'changed quietly');
    assert.equal((await feed())?.caption, 'walrus on the ice', 'served from the cached facts: nobody was told of that write');

    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/media/${id}`,
      headers: t.auth(t.tenant.userKey),
      payload: { caption: 'walrus pup', tags: ['Tusks'] },
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual([(await feed())?.caption, (await feed())?.tags], ['walrus pup', ['Tusks']]);
    assert.equal((await found())?.caption, 'walrus pup');

    // The hierarchy changes through a bank: the item lists the new ancestors at once.
    assert.deepEqual((await feed())?.labels, ['walrus']);
    const bank = await t.app.inject({
      method: 'POST',
      url: '/api/v1/label-banks',
      headers: t.auth(t.tenant.adminKey),
      payload: { name: 'arctic', entries: [{ name: 'pinniped' }, { name: 'walrus', parent: 'pinniped' }] },
    });
    assert.equal(bank.statusCode, 201, bank.body);
    assert.deepEqual((await feed())?.labels, ['pinniped', 'walrus']);
    const labelled = await t.app.inject({
      method: 'POST',
      url: `/api/v1/media/${id}/labels`,
      headers: t.auth(t.tenant.adminKey),
      payload: { labels: [{ name: 'Iceberg' }] },
    });
    assert.equal(labelled.statusCode, 200, labelled.body);
    assert.deepEqual((await feed())?.labels, ['Iceberg', 'pinniped', 'walrus']);
    assert.deepEqual((await found())?.labels, ['Iceberg', 'pinniped', 'walrus']);

    assert.ok(await feed(bob.key), 'bob sees it (and his lists cached it)');
    assert.ok(await found(bob.key));
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [{ name: 'gore', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    assert.equal(await feed(bob.key), undefined, 'held: out of the feed at once');
    assert.equal(await found(bob.key), undefined, 'and out of his search results');
    assert.ok(await found(), "the owner's search still finds it");
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${id}`, headers: t.auth(t.tenant.adminKey) });
    assert.equal(del.statusCode, 204, del.body);
    assert.equal(await found(), undefined);
    assert.equal(await feed(t.tenant.adminKey), undefined);
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
      const ready = await waitFor(
        'the record to show the processed image',
        async () => {
          const m = await record(id);
          return m.status === 'ready' ? m : undefined;
        },
        60_000,
      );
      assert.ok(Object.keys(ready.urls).length > 0, `artifact URLs in the record: ${JSON.stringify(ready.urls)}`);
      assert.deepEqual(
        ready.status_history.map((h: { status: string }) => h.status),
        ['queued', 'processing', 'ready'],
      );
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
      await changeBusListening(ctx);
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
        const patched = await other!.app.inject({
          method: 'PATCH',
          url: `/api/v1/media/${id}`,
          headers: t.auth(t.tenant.userKey),
          payload: { caption: 'after the aardwolf' },
        });
        assert.equal(patched.statusCode, 200, patched.body);
        if (BACKEND === 'scale') {
          await waitFor("the other process's write to show", async () => (await caption(mine!, id)) === 'after the aardwolf', 3_000);
        } else {
          await sleep(25); // SQLite's data_version is looked at every 20 ms
          assert.equal(await caption(mine!, id), 'after the aardwolf', 'seen with no message at all');
        }
        assert.deepEqual(await search(), [id], 'the cached ranking was forgotten too');

        // A list item: its facts and the label hierarchy, changed by the other process.
        const item = async () => {
          const res = await mine!.app.inject({ url: '/api/v1/feed/search?q=aardwolf', headers: t.auth(t.tenant.userKey) });
          assert.equal(res.statusCode, 200, res.body);
          return (res.json() as { items: Record<string, any>[] }).items.find((i) => i.id === id);
        };
        const labelled = await other!.app.inject({
          method: 'POST',
          url: `/api/v1/media/${id}/labels`,
          headers: t.auth(t.tenant.adminKey),
          payload: { labels: [{ name: 'hyena' }] },
        });
        assert.equal(labelled.statusCode, 200, labelled.body);
        await waitFor('the label written by the other process to show', async () => (await item())?.labels.includes('hyena'), 3_000);
        assert.deepEqual((await item())?.labels, ['hyena']);
        const bank = await other!.app.inject({
          method: 'POST',
          url: '/api/v1/label-banks',
          headers: t.auth(t.tenant.adminKey),
          payload: { name: 'savanna', entries: [{ name: 'carnivore' }, { name: 'hyena', parent: 'carnivore' }] },
        });
        assert.equal(bank.statusCode, 201, bank.body);
        await waitFor("the other process's hierarchy to show", async () => (await item())?.labels.includes('carnivore'), 3_000);
        assert.deepEqual((await item())?.labels, ['carnivore', 'hyena']);
      },
    );

    it('on PostgreSQL without Redis, processes announce their writes with LISTEN/NOTIFY; while not listening, nothing is served from memory', {
      skip: BACKEND !== 'scale' && 'needs PostgreSQL',
    }, async () => {
      const lone = await open({ ...t.env.settings, redisUrl: '', mediaCacheTtl: ttl, searchCacheTtl: ttl });
      const writer = await open({ ...t.env.settings, redisUrl: '' });
      const pgAdmin = new pg.Client({ connectionString: t.env.settings.databaseUrl });
      await pgAdmin.connect();
      try {
        assert.ok(lone.ctx.changeBus instanceof PgChangeBus && writer.ctx.changeBus instanceof PgChangeBus, 'PostgreSQL without Redis: the LISTEN/NOTIFY bus');
        const id = await insertMedia(t, { caption: 'cached on postgres' });
        const bob = await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' });
        const read = (key: string) => lone.app.inject({ url: `/api/v1/media/${id}`, headers: t.auth(key) });
        const listed = async (url: string) => {
          const res = await lone.app.inject({ url, headers: t.auth(bob.key) });
          assert.equal(res.statusCode, 200, res.body);
          return (res.json() as { items: Record<string, any>[] }).items.find((i) => i.id === id);
        };
        const lists = ['/api/v1/feed/new?limit=100', '/api/v1/search?q=cached&limit=100', '/api/v1/feed/search?q=cached&limit=100'];
        assert.equal((await read(bob.key)).statusCode, 200);
        for (const url of lists) assert.ok(await listed(url), `${url}: listed (and cached)`);
        await quietCaption(id, 'changed by hand');
        assert.equal((await read(bob.key)).json().caption, 'cached on postgres', 'nothing tells it: the record is served from its cache');
        for (const url of lists) assert.equal((await listed(url))?.caption, 'cached on postgres', `${url}: from the cached facts`);

        const patched = await writer.app.inject({
          method: 'PATCH',
          url: `/api/v1/media/${id}`,
          headers: t.auth(t.tenant.userKey),
          payload: { caption: 'cached on postgres, patched' },
        });
        assert.equal(patched.statusCode, 200, patched.body);
        await waitFor("the other process's write to show", async () => (await read(bob.key)).json().caption === 'cached on postgres, patched', 3_000);
        for (const url of lists) assert.equal((await listed(url))?.caption, 'cached on postgres, patched', `${url}: facts forgotten too`);

        await writer.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [
          { name: 'gore', kind: 'moderation', confidence: 0.99, source: 'model' },
        ]);
        await waitFor('a hold made by another process to hide it', async () => (await read(bob.key)).statusCode === 403, 3_000);
        for (const url of lists) assert.equal(await listed(url), undefined, `${url}: and from lists (the ranking was cached too)`);
        assert.equal((await read(t.tenant.userKey)).statusCode, 200, 'from others only');

        // A lost listening connection: once it listens again, what was cached is forgotten, and caching goes on.
        const bus = lone.ctx.changeBus!;
        let seenDown = false;
        const sampler = setInterval(() => (seenDown ||= !bus.live), 1);
        try {
          await pgAdmin.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [
            changeChannel(t.env.settings.databaseSchema),
          ]);
          await waitFor('the listener to be lost and to listen again', async () => seenDown && bus.live, 10_000);
        } finally {
          clearInterval(sampler);
        }
        await quietCaption(id, 'by hand, then read');
        assert.equal((await read(t.tenant.userKey)).json().caption, 'by hand, then read', 'the cache was emptied when it listened again');
        await quietCaption(id, 'by hand again');
        assert.equal((await read(t.tenant.userKey)).json().caption, 'by hand, then read', 'listening again: served from the cache');

        // While it does not listen (here: for good), nothing is served from memory.
        await bus.close();
        assert.equal(bus.live, false);
        assert.equal((await read(t.tenant.userKey)).json().caption, 'by hand again', 'read from the database');
        await quietCaption(id, 'by hand, not listening');
        assert.equal((await read(t.tenant.userKey)).json().caption, 'by hand, not listening', 'every time');
      } finally {
        await pgAdmin.end();
        for (const p of [lone, writer]) {
          await p.app.close();
          await p.ctx.close();
        }
      }
    });

    it('forgets everything when the change subscription comes back after a loss (Redis)', { skip: BACKEND !== 'scale' && 'needs Redis' }, async () => {
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
        const ids = String(list)
          .split('\n')
          .filter((l) => l.includes(`name=${name}`))
          .map((l) => /id=(\d+)/.exec(l)![1]!);
        assert.equal(ids.length, 3, `the three processes of this test subscribe under the name ${name}`);
        for (const clientId of ids) await admin.client('KILL', 'ID', clientId);
      } finally {
        admin.disconnect();
      }
      await waitFor('the cache to be emptied once subscribed again', async () => (await caption(mine!, id)) === 'missed while away', 5_000);
    });
  });
});
