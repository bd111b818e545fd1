import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { ChangeBus, ChangeBusHandlers } from '../../src/events/change-bus.js';
import { MediaChanges } from '../../src/events/media-changes.js';
import { PgChangeBus, changeChannel } from '../../src/events/pg-change-bus.js';
import { RedisChangeBus } from '../../src/events/redis-change-bus.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.js';
import { createLogger } from '../../src/shared/logger.js';
import { BACKEND, testEnv, waitFor, type TestEnv } from '../support/harness.js';

const log = createLogger('silent');

/** What one process's handlers heard. */
function recorder() {
  const heard = { changes: [] as string[], labels: [] as (string | null)[], resets: 0 };
  const handlers: ChangeBusHandlers = {
    change: (c) => heard.changes.push(`${c.tenantId}/${c.mediaId}/${c.reason}`),
    labels: (t) => heard.labels.push(t),
    reset: () => heard.resets++,
  };
  return { heard, handlers };
}

interface Backend {
  name: string;
  open(): Promise<ChangeBus>;
  /** Cuts every listening connection of the test's buses, as a network loss would. */
  cut(): Promise<void>;
}

/** One contract, run against both change bus backends (they are chosen by settings). */
function contract(backend: () => Backend) {
  const buses: ChangeBus[] = [];
  const open = async () => {
    const bus = await backend().open();
    buses.push(bus);
    return bus;
  };
  after(async () => {
    for (const b of buses) await b.close();
  });

  it("delivers each process's changes and label announcements to the others, not to itself", async () => {
    const [a, b] = [await open(), await open()];
    const [ha, hb] = [recorder(), recorder()];
    a.subscribe(ha.handlers);
    b.subscribe(hb.handlers);
    await waitFor('both to listen', async () => a.live && b.live, 5_000);
    assert.ok(ha.heard.resets >= 1 && hb.heard.resets >= 1, 'reset once listening: what came before was not heard');
    const changes = new MediaChanges();
    a.publishFrom(changes);
    await changes.emit({ tenantId: 't1', mediaId: 'm1', reason: 'metadata' });
    a.announceLabels('t1');
    a.announceLabels(null);
    await waitFor('the other to hear all three', async () => hb.heard.changes.length === 1 && hb.heard.labels.length === 2, 3_000);
    assert.deepEqual(hb.heard.changes, ['t1/m1/metadata']);
    // Sent over separate connections of a pool, they may arrive in either order.
    assert.deepEqual(new Set(hb.heard.labels), new Set(['t1', null]));
    assert.deepEqual(ha.heard.changes, [], 'its own messages are ignored');
    assert.deepEqual(ha.heard.labels, []);
  });

  it("carries a change's place in the media event log", async () => {
    const [a, b] = [await open(), await open()];
    const heard: Array<number | undefined> = [];
    a.subscribe(recorder().handlers);
    b.subscribe({ ...recorder().handlers, change: (c) => void heard.push(c.seq) });
    await waitFor('both to listen', async () => a.live && b.live, 5_000);
    const changes = new MediaChanges();
    a.publishFrom(changes);
    await changes.emit({ tenantId: 't1', mediaId: 'm1', reason: 'labels', seq: 42 });
    await waitFor('the other to hear it', async () => heard.length === 1, 3_000);
    assert.deepEqual(heard, [42]);
  });

  it('is not live while its connection is lost, and resets once it listens again', async () => {
    const bus = await open();
    const h = recorder();
    bus.subscribe(h.handlers);
    await waitFor('it to listen', async () => bus.live, 5_000);
    const resets = h.heard.resets;
    // Sampled every millisecond: it may be back before a slower look would see it gone.
    let seenDown = false;
    const sampler = setInterval(() => (seenDown ||= !bus.live), 1);
    try {
      await backend().cut();
      await waitFor('it to listen again', async () => h.heard.resets === resets + 1, 10_000);
    } finally {
      clearInterval(sampler);
    }
    assert.ok(seenDown, 'not live while the connection was lost');
    assert.ok(bus.live);
    assert.equal(h.heard.resets, resets + 1, 'everything cached meanwhile is forgotten, once');
  });

  it('stops listening when closed', async () => {
    const bus = await open();
    bus.subscribe(recorder().handlers);
    await waitFor('it to listen', async () => bus.live, 5_000);
    await bus.close();
    assert.equal(bus.live, false);
  });
}

// Both buses serve deployments on PostgreSQL; the embedded default (SQLite) needs none.
describe('change bus', { skip: BACKEND !== 'scale' && 'needs PostgreSQL and Redis (the scale run)' }, () => {
  let env: TestEnv;
  let database: DatabaseHandle;
  before(async () => {
    env = await testEnv();
    database = await openDatabase(env.settings);
  });
  after(async () => {
    await database?.close();
    await env?.cleanup();
  });

  describe('over PostgreSQL LISTEN/NOTIFY', () => {
    contract(() => ({
      name: 'postgres',
      open: async () => new PgChangeBus(database.db, env.settings.databaseUrl, env.settings.databaseSchema, log),
      cut: async () => {
        const c = new pg.Client({ connectionString: env.settings.databaseUrl });
        await c.connect();
        try {
          await c.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [changeChannel(env.settings.databaseSchema)]);
        } finally {
          await c.end();
        }
      },
    }));

    it("names one channel per schema, within PostgreSQL's 63-byte identifiers", () => {
      assert.equal(changeChannel('public'), 'qasar_changes_public');
      assert.notEqual(changeChannel('a'.repeat(60)), changeChannel(`${'a'.repeat(59)}b`));
      assert.ok(changeChannel('a'.repeat(63)).length <= 63);
    });
  });

  describe('over Redis publish/subscribe', () => {
    const redises: Redis[] = [];
    after(() => {
      for (const r of redises) r.disconnect();
    });
    contract(() => ({
      name: 'redis',
      open: async () => {
        const r = new Redis(env.settings.redisUrl);
        redises.push(r);
        return new RedisChangeBus(r, env.settings.redisPrefix, log);
      },
      cut: async () => {
        const admin = new Redis(env.settings.redisUrl);
        try {
          const name = `${env.settings.redisPrefix}:media-changes`;
          const ids = String(await admin.client('LIST'))
            .split('\n')
            .filter((l) => l.includes(`name=${name}`))
            .map((l) => /id=(\d+)/.exec(l)![1]!);
          for (const id of ids) await admin.client('KILL', 'ID', id);
        } finally {
          admin.disconnect();
        }
      },
    }));
  });
});
