import type { Db } from '../db/database.js';
import type { RecordCache } from '../cache/record-cache.js';
import { descendantDepths, labelWithAncestors, MAX_LABEL_DEPTH, type LabelRef } from './hierarchy.js';

/** Tenants whose dictionaries one process keeps (the least recently read go first). */
export const LABEL_DIRECTORY_TENANTS = 1000;

/** Tenants with more labels than this are not kept in memory: their ancestors are read per call. */
export const MAX_DIRECTORY_LABELS = 20_000;

interface Directory {
  byId: ReadonlyMap<string, LabelRef>;
  /** False when the tenant has more than MAX_DIRECTORY_LABELS labels (byId is empty then). */
  complete: boolean;
}

/**
 * Each tenant's label dictionary (names, kinds, parents), kept in memory so that lists resolve
 * the names and ancestors of their media's labels (and recommendations a label's descendants)
 * without a query per level of hierarchy.
 *
 * A label created since the dictionary was read is found by reading it again. A hierarchy
 * changed by this process is forgotten at once (label bank writes, labels written to media);
 * by other processes: on SQLite through data_version, on PostgreSQL through the change bus.
 */
export class LabelDirectory {
  private readonly children = new WeakMap<ReadonlyMap<string, LabelRef>, ReadonlyMap<string, readonly string[]>>();

  constructor(
    private readonly db: Db,
    private readonly cache: RecordCache<Directory> | undefined,
  ) {}

  /** These labels and all their ancestors, by id; unknown ids are left out. */
  async withAncestors(tenantId: string, labelIds: readonly string[]): Promise<ReadonlyMap<string, LabelRef>> {
    if (!labelIds.length) return new Map();
    if (!this.cache?.enabled) return this.fromDatabase(tenantId, labelIds);
    let dir = await this.cache.get(tenantId, '', () => this.read(tenantId));
    if (!dir.complete) return this.fromDatabase(tenantId, labelIds);
    if (!closed(dir.byId, labelIds)) {
      // A label (or parent) newer than the dictionary: read it again, once.
      this.cache.invalidate(tenantId, '');
      dir = await this.cache.get(tenantId, '', () => this.read(tenantId));
      if (!dir.complete) return this.fromDatabase(tenantId, labelIds);
      // Still not all there: a label removed meanwhile; its chain stops there, as in the database.
    }
    return dir.byId;
  }

  /**
   * A label and its descendants, each with how many levels below the label it is (0: the label
   * itself), nearest first; at most `limit` of them and MAX_LABEL_DEPTH levels down. Empty when
   * the label is unknown.
   */
  async withDescendants(tenantId: string, labelId: string, limit: number): Promise<ReadonlyMap<string, number>> {
    if (!this.cache?.enabled) return descendantDepths(this.db, tenantId, labelId, limit);
    let dir = await this.cache.get(tenantId, '', () => this.read(tenantId));
    if (dir.complete && !dir.byId.has(labelId)) {
      // A label newer than the dictionary: read it again, once.
      this.cache.invalidate(tenantId, '');
      dir = await this.cache.get(tenantId, '', () => this.read(tenantId));
    }
    if (!dir.complete) return descendantDepths(this.db, tenantId, labelId, limit);
    const out = new Map<string, number>();
    if (!dir.byId.has(labelId)) return out;
    const children = this.childrenOf(dir);
    out.set(labelId, 0);
    let frontier = [labelId];
    for (let depth = 1; frontier.length && depth <= MAX_LABEL_DEPTH && out.size < limit; depth++) {
      const next: string[] = [];
      for (const id of frontier) {
        for (const child of children.get(id) ?? []) {
          if (out.has(child) || out.size >= limit) continue;
          out.set(child, depth);
          next.push(child);
        }
      }
      frontier = next;
    }
    return out;
  }

  /** Each label's children, made once per dictionary read (the dictionary itself is frozen). */
  private childrenOf(dir: Directory): ReadonlyMap<string, readonly string[]> {
    let children = this.children.get(dir.byId);
    if (!children) {
      const built = new Map<string, string[]>();
      for (const node of dir.byId.values()) if (node.parent_id) built.set(node.parent_id, [...(built.get(node.parent_id) ?? []), node.id]);
      children = built;
      this.children.set(dir.byId, children);
    }
    return children;
  }

  invalidate(tenantId: string): void {
    this.cache?.invalidate(tenantId, '');
  }

  clear(): void {
    this.cache?.clear();
  }

  private async fromDatabase(tenantId: string, labelIds: readonly string[]): Promise<ReadonlyMap<string, LabelRef>> {
    return new Map((await labelWithAncestors(this.db, tenantId, labelIds)).map((l) => [l.id, l]));
  }

  private async read(tenantId: string): Promise<Directory> {
    const rows = await this.db
      .selectFrom('labels')
      .select(['id', 'name', 'display_name', 'kind', 'parent_id'])
      .where('tenant_id', '=', tenantId)
      .limit(MAX_DIRECTORY_LABELS + 1)
      .execute();
    if (rows.length > MAX_DIRECTORY_LABELS) return { byId: new Map(), complete: false };
    return { byId: new Map(rows.map((r) => [r.id, r])), complete: true };
  }
}

/** Whether every label asked for and every parent on their way up is in the dictionary. */
function closed(byId: ReadonlyMap<string, LabelRef>, labelIds: readonly string[]): boolean {
  for (const id of labelIds) {
    let node = byId.get(id);
    if (!node) return false;
    for (let depth = 0; node.parent_id && depth < 64; depth++) {
      const parent = byId.get(node.parent_id);
      if (!parent) return false;
      node = parent;
    }
  }
  return true;
}
