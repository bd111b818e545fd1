/**
 * The ranked results of recent searches, per tenant, so a search repeated within a few seconds
 * is not ranked again (as a search engine's query-result cache; ranking a very common word costs
 * milliseconds of bm25 per thousand matches). What a cached ranking leaves out or orders
 * differently is bounded in time:
 * - every write this process tells of (the search index, a status, moderation, labels, a
 *   deletion) forgets the tenant's rankings at once;
 * - writes by other processes are seen after at most `ttlMs`, as a near-real-time index would.
 * Rankings are re-filtered when shown, so media deleted or hidden since never appear.
 */
export class SearchResultCache<T> {
  private readonly entries = new Map<string, { value: T; generation: number; until: number }>();
  private readonly generations = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 256,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0;
  }

  get(tenantId: string, key: string): T | undefined {
    const k = `${tenantId}\u0000${key}`;
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.until <= Date.now() || e.generation !== this.generationOf(tenantId)) {
      this.entries.delete(k);
      return undefined;
    }
    return e.value;
  }

  /** Keeps a value computed at `generation` (read before the work began, so a write meanwhile makes it stale at once). */
  set(tenantId: string, key: string, value: T, generation: number): void {
    if (!this.enabled || generation !== this.generationOf(tenantId)) return;
    const k = `${tenantId}\u0000${key}`;
    this.entries.delete(k);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(k, { value, generation, until: Date.now() + this.ttlMs });
  }

  generationOf(tenantId: string): number {
    return this.generations.get(tenantId) ?? 0;
  }

  /** Forgets every ranking of the tenant (entries are dropped lazily, when next read). */
  invalidate(tenantId: string): void {
    this.generations.set(tenantId, this.generationOf(tenantId) + 1);
  }
}
