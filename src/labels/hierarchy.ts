import type { Kysely } from 'kysely';
import type { Database, LabelKind } from '../db/schema.js';
import { nowIso } from '../db/schema.js';
import { newId } from '../shared/ids.js';
import { effectiveBanks } from './effective-banks.js';
import { AppError } from '../shared/errors.js';
import { MAX_LABEL_LENGTH, normalizeLabelName } from './label-names.js';

export interface LabelRef {
  id: string;
  /** The folded key. */
  name: string;
  /** As shown (null: stored before names kept their case; show `name`). */
  display_name: string | null;
  kind: LabelKind;
  parent_id: string | null;
  /** The label of the bank entry this label is a phrase of: it stands for that label (and has no parent). */
  alias_of: string | null;
}

/** The label a label stands for: its entry's when it is named like a phrase (an alias), else itself. */
export function canonicalId(label: { id: string; alias_of: string | null }): string {
  return label.alias_of ?? label.id;
}

const key = (kind: LabelKind, name: string) => `${kind}\0${name}`;

/**
 * Finds or creates a tenant's label by its key; says whether it was created (a new name may need
 * a parent). `display` is the name as given: a new label keeps it, and a label stored before
 * names kept their case takes it.
 */
export async function ensureLabelId(
  db: Kysely<Database>,
  tenantId: string,
  name: string,
  kind: LabelKind,
  display?: string,
): Promise<{ id: string; created: boolean }> {
  const find = () =>
    db
      .selectFrom('labels')
      .select(['id', 'display_name'])
      .where('tenant_id', '=', tenantId)
      .where('name', '=', name)
      .where('kind', '=', kind)
      .executeTakeFirst();
  const existing = await find();
  if (existing) {
    if (display && existing.display_name === null) await db.updateTable('labels').set({ display_name: display }).where('id', '=', existing.id).execute();
    return { id: existing.id, created: false };
  }
  const id = newId();
  const res = await db
    .insertInto('labels')
    .values({ id, tenant_id: tenantId, name, display_name: display ?? null, kind, parent_id: null, created_at: nowIso() })
    .onConflict((oc) => oc.columns(['tenant_id', 'name', 'kind']).doNothing())
    .executeTakeFirst();
  if (Number(res.numInsertedOrUpdatedRows ?? 0n) > 0) return { id, created: true };
  return { id: (await find())!.id, created: false };
}

/**
 * Makes the tenant's label dictionary follow its effective banks: every entry has a label of
 * its name and the bank's kind, shown as the entry spells it, `labels.parent_id` mirrors the
 * entries' parents, and an existing label named like an entry's phrase is an alias of that
 * entry's label (`alias_of`, no parent of its own): a synonym is its entry, and readers take it
 * as the entry's label. A name that is an entry's is never an alias. Both links are derived from
 * the banks only, so links no bank gives any more are cleared. The first bank (tenant banks
 * first) wins when banks disagree; a parent link that would close a cycle across banks is
 * dropped. Returns the labels whose parent or alias link changed.
 */
export async function syncLabelHierarchy(db: Kysely<Database>, tenantId: string): Promise<string[]> {
  const banks = await effectiveBanks(db, tenantId);
  const kindOf = new Map(banks.map((b) => [b.id, b.kind]));
  const bankIds = banks.map((b) => b.id);
  const entries = bankIds.length
    ? await db.selectFrom('label_bank_entries').select(['id', 'bank_id', 'name', 'display_name', 'parent_id']).where('bank_id', 'in', bankIds).execute()
    : [];
  const phrases = bankIds.length
    ? await db
        .selectFrom('label_bank_phrases as p')
        .innerJoin('label_bank_entries as e', 'e.id', 'p.entry_id')
        .select(['e.id as entry_id', 'p.phrase'])
        .where('e.bank_id', 'in', bankIds)
        .execute()
    : [];
  const bankOrder = new Map(bankIds.map((id, i) => [id, i]));
  entries.sort((a, b) => bankOrder.get(a.bank_id)! - bankOrder.get(b.bank_id)! || a.name.localeCompare(b.name));
  const entryById = new Map(entries.map((e) => [e.id, e]));

  const desired = new Map<string, string | null>();
  // A label named like an entry is shown as the entry spells it (the first bank's).
  const display = new Map<string, string>();
  for (const e of entries) {
    const kind = kindOf.get(e.bank_id)!;
    const k = key(kind, e.name);
    if (desired.has(k)) continue;
    const parent = e.parent_id ? entryById.get(e.parent_id) : undefined;
    desired.set(k, parent ? key(kind, parent.name) : null);
    if (e.display_name !== null) display.set(k, e.display_name);
  }

  const columns = ['id', 'name', 'display_name', 'kind', 'parent_id', 'alias_of'] as const;
  const labels = await db.selectFrom('labels').select(columns).where('tenant_id', '=', tenantId).execute();
  const idOf = new Map(labels.map((l) => [key(l.kind, l.name), l.id]));
  // Phrases in bank order, so that a phrase of two entries is the first bank's.
  phrases.sort((a, b) => bankOrder.get(entryById.get(a.entry_id)!.bank_id)! - bankOrder.get(entryById.get(b.entry_id)!.bank_id)!);
  const aliasOf = new Map<string, string>();
  for (const p of phrases) {
    const e = entryById.get(p.entry_id)!;
    const kind = kindOf.get(e.bank_id)!;
    const k = key(kind, p.phrase);
    if (!desired.has(k) && !aliasOf.has(k) && idOf.has(k)) aliasOf.set(k, key(kind, e.name));
  }

  // Drop links that would close a cycle (banks may disagree on the direction).
  for (const start of desired.keys()) {
    const seen = new Set([start]);
    let cur = desired.get(start);
    while (cur) {
      if (seen.has(cur)) {
        desired.set(start, null);
        break;
      }
      seen.add(cur);
      cur = desired.get(cur) ?? null;
    }
  }

  const now = nowIso();
  const missing = [...desired.keys()].filter((k) => !idOf.has(k));
  for (let i = 0; i < missing.length; i += 200) {
    const rows = missing.slice(i, i + 200).map((k) => {
      const [kind, name] = k.split('\0') as [LabelKind, string];
      return { id: newId(), tenant_id: tenantId, name, display_name: display.get(k) ?? null, kind, parent_id: null, created_at: now };
    });
    await db
      .insertInto('labels')
      .values(rows)
      .onConflict((oc) => oc.columns(['tenant_id', 'name', 'kind']).doNothing())
      .execute();
  }
  const all = missing.length ? await db.selectFrom('labels').select(columns).where('tenant_id', '=', tenantId).execute() : labels;
  const ids = new Map(all.map((l) => [key(l.kind, l.name), l.id]));

  // Labels by the links they should have: parent and alias (one of them is null).
  const updates = new Map<string, { parent_id: string | null; alias_of: string | null; ids: string[] }>();
  for (const l of all) {
    const k = key(l.kind, l.name);
    const aliasKey = aliasOf.get(k);
    const alias = aliasKey ? (ids.get(aliasKey) ?? null) : null;
    const parentKey = alias ? null : (desired.get(k) ?? null);
    const parent = parentKey ? (ids.get(parentKey) ?? null) : null;
    if (parent === l.parent_id && alias === l.alias_of) continue;
    const u = updates.get(`${parent}\0${alias}`) ?? { parent_id: parent, alias_of: alias, ids: [] };
    u.ids.push(l.id);
    updates.set(`${parent}\0${alias}`, u);
  }
  const relinked = [...updates.values()].flatMap((u) => u.ids);
  for (const l of all) {
    const want = display.get(key(l.kind, l.name));
    if (want !== undefined && want !== l.display_name) await db.updateTable('labels').set({ display_name: want }).where('id', '=', l.id).execute();
  }
  for (const { parent_id, alias_of, ids: labelIds } of updates.values()) {
    for (let i = 0; i < labelIds.length; i += 500) {
      await db
        .updateTable('labels')
        .set({ parent_id, alias_of })
        .where('tenant_id', '=', tenantId)
        .where('id', 'in', labelIds.slice(i, i + 500))
        .execute();
    }
  }

  // A tenant's own entries point at their labels directly (global entries are shared, so not).
  for (const e of entries) {
    const bank = banks.find((b) => b.id === e.bank_id);
    if (bank?.tenant_id !== tenantId) continue;
    const labelId = ids.get(key(bank.kind, e.name)) ?? null;
    await db.updateTable('label_bank_entries').set({ label_id: labelId }).where('id', '=', e.id).where('label_id', 'is distinct from', labelId).execute();
  }
  return relinked;
}

/** The given labels of a tenant and all their descendants, aliases (synonyms) included. */
export async function withDescendants(db: Kysely<Database>, tenantId: string, labelIds: readonly string[]): Promise<string[]> {
  const out = new Set(labelIds);
  let frontier = [...out];
  while (frontier.length) {
    const next: string[] = [];
    for (let i = 0; i < frontier.length; i += 500) {
      const part = frontier.slice(i, i + 500);
      const rows = await db
        .selectFrom('labels')
        .select('id')
        .where('tenant_id', '=', tenantId)
        .where((eb) => eb.or([eb('parent_id', 'in', part), eb('alias_of', 'in', part)]))
        .execute();
      for (const r of rows) if (!out.has(r.id)) next.push(r.id);
    }
    for (const id of next) out.add(id);
    frontier = next;
  }
  return [...out];
}

/** Most levels an upward walk climbs: a guard against a cycle, and the same bound for every reader. */
export const MAX_LABEL_DEPTH = 16;

/**
 * A label of a tenant and its descendants, each with how many levels below it is (0: the label
 * itself), nearest first: at most `limit` labels and MAX_LABEL_DEPTH levels, a query or two per
 * level. Aliases (synonyms) are at the level of the label they stand for. Empty when the label
 * is not the tenant's.
 */
export async function descendantDepths(db: Kysely<Database>, tenantId: string, labelId: string, limit: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const own = await db.selectFrom('labels').select('id').where('tenant_id', '=', tenantId).where('id', '=', labelId).executeTakeFirst();
  if (!own) return out;
  const linked = async (column: 'parent_id' | 'alias_of', ids: readonly string[]) => {
    const found: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await db
        .selectFrom('labels')
        .select('id')
        .where('tenant_id', '=', tenantId)
        .where(column, 'in', ids.slice(i, i + 500))
        .orderBy('id')
        .execute();
      found.push(...rows.map((r) => r.id));
    }
    return found;
  };
  const place = (ids: readonly string[], depth: number): string[] => {
    const placed: string[] = [];
    for (const id of ids) {
      if (out.has(id) || out.size >= limit) continue;
      out.set(id, depth);
      placed.push(id);
    }
    return placed;
  };
  let frontier = place([labelId], 0);
  frontier.push(...place(await linked('alias_of', frontier), 0));
  for (let depth = 1; frontier.length && depth <= MAX_LABEL_DEPTH && out.size < limit; depth++) {
    const next = place(await linked('parent_id', frontier), depth);
    next.push(...place(await linked('alias_of', next), depth));
    frontier = next;
  }
  return out;
}

/**
 * A label and its ancestors, nearest first, from labels by id: what a media labelled with it is
 * also labelled with. An alias comes first, then the label it stands for and that label's
 * ancestors. Stops at an unknown parent, a cycle or MAX_LABEL_DEPTH levels.
 */
export function ancestorChain<T extends { parent_id: string | null; alias_of?: string | null }>(labelId: string, byId: ReadonlyMap<string, T>): T[] {
  const chain: T[] = [];
  const seen = new Set<string>();
  for (let id: string | null = labelId; id && !seen.has(id) && chain.length < MAX_LABEL_DEPTH; ) {
    seen.add(id);
    const node = byId.get(id);
    if (!node) break;
    chain.push(node);
    id = node.alias_of ?? node.parent_id;
  }
  return chain;
}

/** The general labels of some media of a tenant (moderation labels are neither searched nor shown in feeds). */
export async function generalLabelLinks(
  db: Kysely<Database>,
  tenantId: string,
  mediaIds: readonly string[],
): Promise<{ media_id: string; label_id: string }[]> {
  if (!mediaIds.length) return [];
  return db
    .selectFrom('asset_labels as al')
    .innerJoin('labels as l', 'l.id', 'al.label_id')
    .select(['al.media_id', 'al.label_id'])
    .where('al.tenant_id', '=', tenantId)
    .where('al.media_id', 'in', mediaIds)
    .where('l.kind', '=', 'general')
    .execute();
}

/**
 * The given labels and all their ancestors (deduplicated), the labels aliases stand for
 * included: what a media labelled with them is also labelled with, for search and feeds. Unknown ids and other tenants' ids are left out.
 */
export async function labelWithAncestors(db: Kysely<Database>, tenantId: string, labelIds: readonly string[]): Promise<LabelRef[]> {
  const found = new Map<string, LabelRef>();
  let frontier = [...new Set(labelIds)];
  while (frontier.length) {
    const rows = await db
      .selectFrom('labels')
      .select(['id', 'name', 'display_name', 'kind', 'parent_id', 'alias_of'])
      .where('tenant_id', '=', tenantId)
      .where('id', 'in', frontier)
      .execute();
    frontier = [];
    for (const r of rows) {
      if (found.has(r.id)) continue;
      found.set(r.id, r);
      for (const up of [r.parent_id, r.alias_of]) if (up && !found.has(up)) frontier.push(up);
    }
  }
  return [...found.values()];
}

/**
 * Ids of the tenant's labels a search term stands for: labels of that name, labels of the
 * entries (in the tenant's effective banks) having the term as name or phrase, and every
 * descendant of those, so that searching a parent finds media labelled with a child.
 * The term is folded like label names; a term that is not a valid label name matches nothing.
 */
export async function labelIdsMatchingTerm(db: Kysely<Database>, tenantId: string, term: string): Promise<string[]> {
  let name: string;
  try {
    name = normalizeLabelName(term);
  } catch {
    return [];
  }
  const seeds = new Set((await db.selectFrom('labels').select('id').where('tenant_id', '=', tenantId).where('name', '=', name).execute()).map((r) => r.id));
  const banks = await effectiveBanks(db, tenantId);
  if (banks.length) {
    const entries = await db
      .selectFrom('label_bank_phrases as p')
      .innerJoin('label_bank_entries as e', 'e.id', 'p.entry_id')
      .innerJoin('label_banks as b', 'b.id', 'e.bank_id')
      .select(['e.name', 'b.kind'])
      .where(
        'b.id',
        'in',
        banks.map((b) => b.id),
      )
      .where('p.phrase', '=', name)
      .execute();
    // A query per 100 entries: one OR of them all could pass SQLite's expression depth.
    for (let i = 0; i < entries.length; i += 100) {
      const part = entries.slice(i, i + 100);
      const labels = await db
        .selectFrom('labels')
        .select('id')
        .where('tenant_id', '=', tenantId)
        .where((eb) => eb.or(part.map((e) => eb.and([eb('name', '=', e.name), eb('kind', '=', e.kind)]))))
        .execute();
      for (const l of labels) seeds.add(l.id);
    }
  }
  return withDescendants(db, tenantId, [...seeds]);
}

/**
 * The ids a `label` filter of a list stands for (see labelIdsMatchingTerm: the label, the labels
 * of bank entries having it as a phrase, and their descendants). A term that cannot be a label
 * name (blank, too long, control characters) is refused rather than matching nothing, so a
 * mistyped filter is told apart from one that names no label yet.
 */
export async function labelFilterIds(db: Kysely<Database>, tenantId: string, term: string): Promise<string[]> {
  try {
    normalizeLabelName(term);
  } catch {
    throw new AppError('validation-failed', `label: must be 1-${MAX_LABEL_LENGTH} printable characters`);
  }
  return labelIdsMatchingTerm(db, tenantId, term);
}
