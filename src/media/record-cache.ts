interface Entry<T> {
  /** Set once loaded; until then `loading` is. */
  value?: T;
  loading?: Promise<T>;
  freshUntil: number;
}

/** Freezes a plain value and everything in it, so one cached object can be handed to every caller. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/**
 * Recently read media records of this process, by tenant and media id, so that reading the
 * same media again does not run its five queries again (a player page, a status poll, a list
 * that opens its items).
 *
 * A record is never served after a write that this process was told of has finished:
 * - every media change this process makes (MediaChanges, emitted after the write committed),
 *   and every change another process announces (the change bus, with Redis), forgets the
 *   record at once; on SQLite, any write of another process to the database file forgets every
 *   record (`otherWrites`), so processes sharing one file need no Redis;
 * - a load that was under way when its record was forgotten is handed to the callers that were
 *   already waiting for it (they asked before the write ended), but never kept;
 * - anything else (a write made past every service, by hand; on PostgreSQL without Redis, a
 *   write of another process; a bus message lost while Redis was unreachable, though the cache is
 *   emptied when the subscription comes back) is bounded by `ttlMs`.
 * Identical misses wait for one load; errors (not found) are never kept. Values are frozen:
 * every caller gets the same object.
 */
export class RecordCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    /** True when another process wrote to the database since it was last asked (SQLite): everything is forgotten then. */
    private readonly otherWrites?: () => boolean,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0 && this.maxEntries > 0;
  }

  get size(): number {
    return this.entries.size;
  }

  async get(tenantId: string, id: string, load: () => Promise<T>): Promise<T> {
    if (!this.enabled) return load();
    if (this.otherWrites?.()) this.clear();
    const key = `${tenantId}\u0000${id}`;
    const now = performance.now();
    const e = this.entries.get(key);
    if (e) {
      if (e.loading) return e.loading;
      if (e.freshUntil > now) {
        // Most recently used last.
        this.entries.delete(key);
        this.entries.set(key, e);
        return e.value as T;
      }
    }
    const entry: Entry<T> = { freshUntil: 0 };
    entry.loading = load().then(
      (value) => {
        const frozen = deepFreeze(value);
        if (this.entries.get(key) === entry) {
          entry.value = frozen;
          entry.loading = undefined;
          entry.freshUntil = performance.now() + this.ttlMs;
        }
        return frozen;
      },
      (err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw err;
      },
    );
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return entry.loading;
  }

  /** Forgets one record (a load under way for it is not kept). */
  invalidate(tenantId: string, id: string): void {
    this.entries.delete(`${tenantId}\u0000${id}`);
  }

  /** Forgets every record (e.g. when changes announced meanwhile may have been missed). */
  clear(): void {
    this.entries.clear();
  }
}
