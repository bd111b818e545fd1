import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SearchResultCache } from '../../src/cache/result-cache.js';

describe('search result cache', () => {
  it('ranks once for identical searches that miss together, and keeps tenants and keys apart', async () => {
    const cache = new SearchResultCache<string>(60_000);
    let calls = 0;
    const compute = (v: string) => async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 20));
      return v;
    };
    const same = await Promise.all(Array.from({ length: 5 }, () => cache.get('t1', 'q', compute('a'))));
    assert.deepEqual(same, ['a', 'a', 'a', 'a', 'a']);
    assert.equal(calls, 1);
    assert.equal(await cache.get('t1', 'q', compute('b')), 'a', 'cached');
    assert.equal(await cache.get('t2', 'q', compute('c')), 'c', 'another tenant');
    assert.equal(await cache.get('t1', 'other', compute('d')), 'd', 'another key');
    assert.equal(calls, 3);
  });

  it('forgets a tenant on invalidate, also for a ranking under way when the write came', async () => {
    const cache = new SearchResultCache<string>(60_000);
    let release!: () => void;
    const slow = cache.get('t1', 'q', () => new Promise<string>((r) => (release = () => r('before the write'))));
    await new Promise((r) => setImmediate(r));
    cache.invalidate('t1');
    release();
    assert.equal(await slow, 'before the write');
    assert.equal(await cache.get('t1', 'q', async () => 'after the write'), 'after the write', 'not kept: made before the write ended');
    cache.invalidate('t2');
    assert.equal(await cache.get('t1', 'q', async () => 'again'), 'after the write', 'another tenant’s write changes nothing here');
  });

  it('serves an expired ranking once more while one call ranks again; errors are not kept', async () => {
    const cache = new SearchResultCache<string>(50);
    assert.equal(await cache.get('t', 'q', async () => 'v1'), 'v1');
    await new Promise((r) => setTimeout(r, 60));
    let refreshed = 0;
    const refresh = async () => {
      refreshed++;
      return 'v2';
    };
    assert.equal(await cache.get('t', 'q', refresh), 'v1', 'stale, refreshed behind');
    await new Promise((r) => setImmediate(r));
    assert.equal(refreshed, 1);
    assert.equal(await cache.get('t', 'q', async () => 'v3'), 'v2');
    await new Promise((r) => setTimeout(r, 120));
    await assert.rejects(
      cache.get('t', 'q', async () => Promise.reject(new Error('db down'))),
      /db down/,
    );
    assert.equal(await cache.get('t', 'q', async () => 'v4'), 'v4');
    const off = new SearchResultCache<number>(0);
    let n = 0;
    await off.get('t', 'q', async () => ++n);
    assert.equal(await off.get('t', 'q', async () => ++n), 2, 'a TTL of 0 ranks every time');
  });
});
