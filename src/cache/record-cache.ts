import { monotonicClock, type Clock } from '../shared/clock.js';
/** Rejects a load of getMany for an id its batch did not find (never kept, never thrown to callers). */
const ABSENT = Symbol('absent');

const keyOf = (tenantId: string, id: string) => `${tenantId}\u0000${id}`;

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
 *   and every change another process announces (the change bus, on PostgreSQL), forgets the
 *   record at once; on SQLite, any write of another process to the database file forgets every
 *   record (`otherWrites`), so processes sharing one file need no Redis; while a change bus is
 *   not listening, `otherWrites` keeps telling, so nothing is served from memory;
 * - a load that was under way when its record was forgotten is handed to the callers that were
 *   already waiting for it (they asked before the write ended), but never kept;
 * - anything else (a write made past every service, by hand; a bus message lost in flight) is
 *   bounded by `ttlMs`.
 * Identical misses wait for one load; errors (not found) are never kept. Values are frozen:
 * every caller gets the same object.
 */
export class RecordCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    /** True when other processes may have written unannounced since it was last asked (SQLite's data_version moved, or the change bus is not listening): everything is forgotten then. */
    private readonly otherWrites?: () => boolean,
    private readonly clock: Clock = monotonicClock,
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
    const key = keyOf(tenantId, id);
    return this.cached(key) ?? this.startLoad(key, load());
  }

  /**
   * The records of these ids that exist (absent ones are left out), loading those not cached
   * with one call of `loadMany` (it answers the ones it found). Records being loaded by another
   * call are waited for.
   */
  async getMany(tenantId: string, ids: readonly string[], loadMany: (ids: string[]) => Promise<Map<string, T>>): Promise<Map<string, T>> {
    const unique = [...new Set(ids)];
    if (!this.enabled) return loadMany(unique);
    if (this.otherWrites?.()) this.clear();
    const found: Array<[string, T | Promise<T>]> = [];
    const missing: string[] = [];
    for (const id of unique) {
      const hit = this.cached(keyOf(tenantId, id));
      if (hit === undefined) missing.push(id);
      else found.push([id, hit]);
    }
    if (missing.length) {
      const batch = loadMany(missing);
      for (const id of missing) {
        const one = batch.then((m) => {
          const v = m.get(id);
          if (v === undefined) throw ABSENT;
          return v;
        });
        found.push([id, this.startLoad(keyOf(tenantId, id), one)]);
      }
    }
    const settled = await Promise.allSettled(found.map(([, v]) => v));
    const out = new Map<string, T>();
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') out.set(found[i]![0], r.value);
      else if (r.reason !== ABSENT) throw r.reason;
    });
    // In the order asked for.
    return new Map(unique.filter((id) => out.has(id)).map((id) => [id, out.get(id)!]));
  }

  /** A fresh value, a load under way, or undefined. */
  private cached(key: string): T | Promise<T> | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.loading) return e.loading;
    if (e.freshUntil <= this.clock.now()) return undefined;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value as T;
  }

  private startLoad(key: string, loading: Promise<T>): Promise<T> {
    const entry: Entry<T> = { freshUntil: 0 };
    entry.loading = loading.then(
      (value) => {
        const frozen = deepFreeze(value);
        if (this.entries.get(key) === entry) {
          entry.value = frozen;
          entry.loading = undefined;
          entry.freshUntil = this.clock.now() + this.ttlMs;
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
    this.entries.delete(keyOf(tenantId, id));
  }

  /** Forgets every record (e.g. when changes announced meanwhile may have been missed). */
  clear(): void {
    this.entries.clear();
  }
}
