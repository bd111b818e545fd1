import { monotonicClock, type Clock } from '../shared/clock.js';
interface Entry<T> {
  value: T;
  generation: number;
  /** Served as it is until then. */
  freshUntil: number;
  /** Then served while one request ranks again in the background, until this. */
  staleUntil: number;
}

/**
 * The ranked results of recent searches, per tenant, so a search repeated within a few seconds
 * is not ranked again (as a search engine's query-result cache; ranking a very common word costs
 * milliseconds of bm25 per thousand matches on SQLite, and more on PostgreSQL).
 *
 * What a cached ranking leaves out or orders differently is bounded in time:
 * - every write this process tells of (the search index, a status, moderation, labels, a
 *   deletion) forgets the tenant's rankings at once;
 * - so do writes of other processes on SQLite (`otherWrites`) and, on PostgreSQL, those they
 *   announce (the change bus; while it is not listening, `otherWrites` keeps nothing cached);
 * - other writes are seen within about two `ttlMs`: a ranking is fresh for `ttlMs`, then for as
 *   long again it is still served while one request ranks anew in the background, so a popular
 *   search never stalls every caller at once when its ranking expires.
 * Identical searches that miss together wait for one ranking. Rankings are re-filtered when
 * shown, so media deleted or hidden since never appear.
 */
export class SearchResultCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly running = new Map<string, { generation: number; promise: Promise<T> }>();
  private readonly generations = new Map<string, number>();
  /** Raised by clear(): every tenant's rankings are forgotten at once. */
  private epoch = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 256,
    /** True when other processes may have written unannounced since it was last asked (SQLite's data_version moved, or the change bus is not listening): every ranking is forgotten then. */
    private readonly otherWrites?: () => boolean,
    private readonly clock: Clock = monotonicClock,
  ) {}

  /** The cached value of `key`, or `compute()`'s (shared with identical calls under way). */
  async get(tenantId: string, key: string, compute: () => Promise<T>): Promise<T> {
    if (this.ttlMs <= 0) return compute();
    if (this.otherWrites?.()) this.clear();
    const k = `${tenantId}\u0000${key}`;
    const generation = this.generationOf(tenantId);
    const e = this.entries.get(k);
    const now = this.clock.now();
    if (e && e.generation === generation && now < e.staleUntil) {
      if (now >= e.freshUntil) {
        this.run(k, tenantId, compute).catch(() => {
          // The next caller ranks again and sees the error.
        });
      }
      return e.value;
    }
    if (e) this.entries.delete(k);
    return this.run(k, tenantId, compute);
  }

  private run(k: string, tenantId: string, compute: () => Promise<T>): Promise<T> {
    // Read before the work begins, so a write meanwhile makes the result stale at once.
    const generation = this.generationOf(tenantId);
    const under = this.running.get(k);
    if (under && under.generation === generation) return under.promise;
    const promise = compute().then(
      (value) => {
        if (this.running.get(k)?.promise === promise) this.running.delete(k);
        if (generation === this.generationOf(tenantId))
          this.keep(k, { value, generation, freshUntil: this.clock.now() + this.ttlMs, staleUntil: this.clock.now() + 2 * this.ttlMs });
        return value;
      },
      (err: unknown) => {
        if (this.running.get(k)?.promise === promise) this.running.delete(k);
        throw err;
      },
    );
    this.running.set(k, { generation, promise });
    return promise;
  }

  private keep(k: string, entry: Entry<T>): void {
    this.entries.delete(k);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(k, entry);
  }

  private generationOf(tenantId: string): number {
    // Both parts only grow, so an equal sum means neither changed.
    return (this.generations.get(tenantId) ?? 0) + this.epoch;
  }

  /** Forgets every ranking of the tenant (entries are dropped lazily, when next read). */
  invalidate(tenantId: string): void {
    this.generations.set(tenantId, (this.generations.get(tenantId) ?? 0) + 1);
  }

  /** Forgets every ranking of every tenant (e.g. when writes announced meanwhile may have been missed). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
  }
}
