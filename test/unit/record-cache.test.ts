import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManualClock } from '../../src/shared/clock.js';
import { describe, it } from 'node:test';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.js';
import { RecordCache } from '../../src/cache/record-cache.js';

/** A loader that counts its calls and can be held until released. */
function loader<T>(value: () => T) {
  let calls = 0;
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  return {
    get calls() {
      return calls;
    },
    hold() {
      gate = new Promise<void>((resolve) => (open = resolve));
    },
    release: () => open(),
    load: async () => {
      calls++;
      await gate;
      return value();
    },
  };
}

describe('record cache', () => {
  it('loads once and hands every caller the same frozen record until it expires', async () => {
    const cache = new RecordCache<{ n: number; nested: { tags: string[] } }>(60_000, 10);
    let n = 0;
    const l = loader(() => ({ n: ++n, nested: { tags: ['a'] } }));
    const a = await cache.get('t1', 'm1', l.load);
    const b = await cache.get('t1', 'm1', l.load);
    assert.equal(l.calls, 1);
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.nested) && Object.isFrozen(a.nested.tags), 'deeply frozen');
    assert.throws(() => (a.nested.tags as string[]).push('b'));
    const other = await cache.get('t2', 'm1', l.load);
    assert.equal(other.n, 2, 'the same id in another tenant is another record');
  });

  it('reloads after the TTL', async () => {
    const clock = new ManualClock();
    const cache = new RecordCache<number>(300, 10, undefined, clock);
    let n = 0;
    const l = loader(() => ++n);
    assert.equal(await cache.get('t', 'm', l.load), 1);
    clock.advance(299);
    assert.equal(await cache.get('t', 'm', l.load), 1);
    clock.advance(1);
    assert.equal(await cache.get('t', 'm', l.load), 2);
  });

  it('shares one load between identical misses', async () => {
    const cache = new RecordCache<number>(60_000, 10);
    let n = 0;
    const l = loader(() => ++n);
    l.hold();
    const both = Promise.all([cache.get('t', 'm', l.load), cache.get('t', 'm', l.load)]);
    l.release();
    assert.deepEqual(await both, [1, 1]);
    assert.equal(l.calls, 1);
  });

  it('forgets a record on invalidate, and never keeps a load that was under way when it was forgotten', async () => {
    const cache = new RecordCache<number>(60_000, 10);
    let n = 0;
    const l = loader(() => ++n);
    await cache.get('t', 'm', l.load);
    cache.invalidate('t', 'm');
    assert.equal(await cache.get('t', 'm', l.load), 2, 'read again after a write');

    cache.invalidate('t', 'm');
    l.hold();
    const waiting = cache.get('t', 'm', l.load);
    await sleep(5);
    cache.invalidate('t', 'm'); // a write finished while the load read the old state
    l.release();
    assert.equal(await waiting, 3, 'a caller that asked before the write ended gets what was read');
    assert.equal(await cache.get('t', 'm', l.load), 4, 'but it was not kept');

    l.hold();
    const during = cache.get('t', 'm2', l.load);
    await sleep(5);
    cache.clear();
    l.release();
    await during;
    const calls = l.calls;
    await cache.get('t', 'm2', l.load);
    assert.equal(l.calls, calls + 1, 'clear() also drops loads under way');
  });

  it('forgets everything when another connection wrote to the SQLite file (watchOtherWrites)', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-record-cache-'));
    const settings = { databaseUrl: `sqlite:${path.join(dir, 'q.sqlite')}`, databaseSchema: 'public', databasePoolSize: 1, sqliteCacheSize: 1 << 20 };
    const mine = await openDatabase(settings);
    const other = await openDatabase(settings);
    try {
      await sql`create table t (x integer)`.execute(mine.db);
      const cache = new RecordCache<number>(60_000, 10, mine.watchOtherWrites!());
      let n = 0;
      const l = loader(() => ++n);
      assert.equal(await cache.get('t', 'a', l.load), 1);
      await sql`insert into t values (1)`.execute(mine.db);
      await sleep(30);
      assert.equal(await cache.get('t', 'a', l.load), 1, "its own connection's writes are told otherwise: served");
      await sql`insert into t values (2)`.execute(other.db);
      await sleep(30); // the file is looked at every 20 ms
      assert.equal(await cache.get('t', 'a', l.load), 2, 'another connection wrote: read again');
      assert.equal(await cache.get('t', 'a', l.load), 2);
    } finally {
      await mine.close();
      await other.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('getMany loads only the ids not cached, in one call, leaves out absent ids and keeps the order asked for', async () => {
    const cache = new RecordCache<{ id: string }>(60_000, 100);
    const batches: string[][] = [];
    const loadMany = async (ids: string[]) => {
      batches.push(ids);
      return new Map(ids.filter((id) => id !== 'gone').map((id) => [id, { id }]));
    };
    const first = await cache.getMany('t1', ['a', 'b', 'gone', 'a'], loadMany);
    assert.deepEqual([...first.keys()], ['a', 'b']);
    assert.ok(Object.isFrozen(first.get('a')));
    const second = await cache.getMany('t1', ['c', 'b', 'gone', 'a'], loadMany);
    assert.deepEqual([...second.keys()], ['c', 'b', 'a']);
    assert.equal(second.get('a'), first.get('a'), 'the same frozen object');
    assert.deepEqual(
      batches,
      [
        ['a', 'b', 'gone'],
        ['c', 'gone'],
      ],
      'an absent id is never kept',
    );
    // One record read alone meanwhile is shared too.
    assert.equal(await cache.get('t1', 'c', async () => ({ id: 'other' })), second.get('c'));
  });

  it('getMany waits for loads under way and passes a failed load on', async () => {
    const cache = new RecordCache<{ id: string }>(60_000, 100);
    let open = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    let calls = 0;
    const slow = async (ids: string[]) => {
      calls++;
      await gate;
      return new Map(ids.map((id) => [id, { id }]));
    };
    const one = cache.getMany('t1', ['a', 'b'], slow);
    const two = cache.getMany('t1', ['b', 'a'], slow);
    open();
    assert.deepEqual([...(await two).keys()], ['b', 'a']);
    assert.equal((await one).get('a'), (await two).get('a'));
    assert.equal(calls, 1);
    await assert.rejects(
      cache.getMany('t1', ['x', 'a'], async () => Promise.reject(new Error('database down'))),
      /database down/,
    );
    assert.equal((await cache.getMany('t1', ['x'], async (ids) => new Map(ids.map((id) => [id, { id }])))).size, 1, 'the failure was not kept');
  });

  it('never keeps an error', async () => {
    const cache = new RecordCache<number>(60_000, 10);
    let fail = true;
    const load = async () => {
      if (fail) throw new Error('not found');
      return 7;
    };
    await assert.rejects(cache.get('t', 'm', load), /not found/);
    fail = false;
    assert.equal(await cache.get('t', 'm', load), 7);
    assert.equal(cache.size, 1);
  });

  it('keeps at most maxEntries, dropping the least recently read', async () => {
    const cache = new RecordCache<string>(60_000, 2);
    const loads: string[] = [];
    const load = (id: string) => async () => {
      loads.push(id);
      return id;
    };
    await cache.get('t', 'a', load('a'));
    await cache.get('t', 'b', load('b'));
    await cache.get('t', 'a', load('a')); // a is now the most recent
    await cache.get('t', 'c', load('c')); // b goes
    assert.equal(cache.size, 2);
    await cache.get('t', 'a', load('a'));
    await cache.get('t', 'b', load('b'));
    assert.deepEqual(loads, ['a', 'b', 'c', 'b']);
  });

  it('reads every time when turned off (TTL 0), handing out objects it does not freeze', async () => {
    const cache = new RecordCache<{ n: number }>(0, 10);
    let n = 0;
    const load = async () => ({ n: ++n });
    const a = await cache.get('t', 'm', load);
    assert.equal((await cache.get('t', 'm', load)).n, 2);
    assert.equal(Object.isFrozen(a), false);
    assert.equal(cache.size, 0);
  });
});
