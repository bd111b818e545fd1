import type { Db } from '../db/database.js';
import type { RecordCache } from '../cache/record-cache.js';
import { descendantDepths, labelWithAncestors, MAX_LABEL_DEPTH, type LabelRef } from './hierarchy.js';

/** Tenants whose dictionaries one process keeps (the least recently read go first). */
export const LABEL_DIRECTORY_TENANTS = 1000;

/** Tenants with more labels than this are not kept in memory: their ancestors are read per call. */
export const MAX_DIRECTORY_LABELS = 20_000;

interface Links {
  children: ReadonlyMap<string, readonly string[]>;
  aliases: ReadonlyMap<string, readonly string[]>;
}

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
  private readonly links = new WeakMap<ReadonlyMap<string, LabelRef>, Links>();

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
   * itself), nearest first; at most `limit` of them and MAX_LABEL_DEPTH levels down. Aliases
   * (synonyms) are at the level of the label they stand for. Empty when the label is unknown.
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
    const { children, aliases } = this.linksOf(dir);
    const place = (ids: readonly string[], depth: number, into: string[]) => {
      for (const id of ids) {
        if (out.has(id) || out.size >= limit) continue;
        out.set(id, depth);
        into.push(id);
        place(aliases.get(id) ?? [], depth, into);
      }
    };
    let frontier: string[] = [];
    place([labelId], 0, frontier);
    for (let depth = 1; frontier.length && depth <= MAX_LABEL_DEPTH && out.size < limit; depth++) {
      const next: string[] = [];
      for (const id of frontier) place(children.get(id) ?? [], depth, next);
      frontier = next;
    }
    return out;
  }

  /** Each label's children and aliases, made once per dictionary read (the dictionary itself is frozen). */
  private linksOf(dir: Directory): Links {
    let links = this.links.get(dir.byId);
    if (!links) {
      const children = new Map<string, string[]>();
      const aliases = new Map<string, string[]>();
      for (const node of dir.byId.values()) {
        if (node.parent_id) children.set(node.parent_id, [...(children.get(node.parent_id) ?? []), node.id]);
        if (node.alias_of) aliases.set(node.alias_of, [...(aliases.get(node.alias_of) ?? []), node.id]);
      }
      links = { children, aliases };
      this.links.set(dir.byId, links);
    }
    return links;
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
      .select(['id', 'name', 'display_name', 'kind', 'parent_id', 'alias_of'])
      .where('tenant_id', '=', tenantId)
      .limit(MAX_DIRECTORY_LABELS + 1)
      .execute();
    if (rows.length > MAX_DIRECTORY_LABELS) return { byId: new Map(), complete: false };
    return { byId: new Map(rows.map((r) => [r.id, r])), complete: true };
  }
}

/** Whether every label asked for and every parent (or label an alias stands for) on their way up is in the dictionary. */
function closed(byId: ReadonlyMap<string, LabelRef>, labelIds: readonly string[]): boolean {
  for (const id of labelIds) {
    let node = byId.get(id);
    if (!node) return false;
    for (let depth = 0; (node.alias_of ?? node.parent_id) && depth < 64; depth++) {
      const parent = byId.get((node.alias_of ?? node.parent_id)!);
      if (!parent) return false;
      node = parent;
    }
  }
  return true;
}
