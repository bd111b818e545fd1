import type { Kysely, Transaction } from 'kysely';
import type { Database, LabelKind } from '../db/schema.js';
import { nowIso } from '../db/schema.js';
import { AppError, notFound } from '../shared/errors.js';
import { newId } from '../shared/ids.js';
import { changedLabels, labelWordsOf, type LabelWords } from './label-words.js';
import { markMediaOfLabelsStale } from './stale-documents.js';
import type { Principal } from '../tenancy/principal.js';
import { BANK_FORMAT, BANK_FORMAT_VERSION, MAX_PHRASES_PER_ENTRY, type BankDoc, type BankEntryDoc } from './bank-format.js';
import { effectiveBanks, type BankRow } from './effective-banks.js';
import { syncLabelHierarchy } from './hierarchy.js';
import { labelName, normalizeLabelName, shownName } from './label-names.js';

/** Who writes a bank: a tenant admin (its own banks) or the server operator (global banks, via the CLI). */
export type BankScope = { tenantId: string } | { global: true };

export interface BankEntryView {
  id: string;
  bank_id: string;
  name: string;
  /** The tenant's label this entry stands for (null until a global entry is first used). */
  label_id: string | null;
  parent_id: string | null;
  threshold: number | null;
  phrases: string[];
  children: Array<{ id: string; name: string }>;
  created_at: string;
}

export interface BankView {
  id: string;
  name: string;
  kind: LabelKind;
  description: string | null;
  /** Similarity a text must reach to match an entry by meaning (null: the server's LABELING_MATCH_THRESHOLD). */
  match_threshold: number | null;
  scope: 'tenant' | 'global';
  entry_count: number;
  created_at: string;
  updated_at: string;
}

export interface BankDetailView extends BankView {
  entries: BankEntryView[];
}

export interface EntryStatsView {
  entry_id: string;
  name: string;
  usage_count: number;
  match_count: number;
  mean_confidence: number | null;
  max_confidence: number | null;
  last_matched_at: string | null;
}

export interface EntryInput {
  name: string;
  parent_id?: string | null;
  phrases?: string[];
  threshold?: number | null;
}

const tenantOf = (s: BankScope) => ('tenantId' in s ? s.tenantId : null);

/** A bank's name: its key (unique per scope, matched case-insensitively) and how it is shown. */
function bankName(raw: string): { name: string; display: string } {
  try {
    return labelName(raw);
  } catch {
    throw new AppError('validation-failed', 'name: a bank name must be 1-100 printable characters');
  }
}

type Phrase = { name: string; display: string };

/** An entry's phrases: each key once (the first spelling shown), never the entry's own name. */
function phrasesOf(raw: readonly string[] | undefined, entryName: string): Phrase[] {
  const byKey = new Map<string, Phrase>();
  for (const p of (raw ?? []).map(labelName)) if (p.name !== entryName && !byKey.has(p.name)) byKey.set(p.name, p);
  const out = [...byKey.values()];
  if (out.length > MAX_PHRASES_PER_ENTRY) throw new AppError('bank-too-large', `an entry may have at most ${MAX_PHRASES_PER_ENTRY} phrases`);
  return out;
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || /UNIQUE constraint failed/.test(e?.message ?? '');
}

/**
 * Label banks: tenant-specific or global collections of entries (a name, phrases that are its
 * synonyms, a parent), general or moderation. Every write re-derives the tenant's label
 * hierarchy from its effective banks (for a global bank: every tenant's), and the search
 * documents of the media whose label words it changed.
 */
/** What other parts of the server do after a bank write commits. */
export interface LabelBankHooks {
  /** Rebuild the search documents marked stale by the write (of one tenant, or of all for a global bank). */
  labelWordsChanged?(tenantId: string | undefined): Promise<void>;
  /** Re-evaluate the tenant's media against its moderation thresholds. */
  moderationChanged?(tenantId: string): Promise<void>;
}

export class LabelBankService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly maxEntries: number,
    private readonly hooks: LabelBankHooks = {},
  ) {}

  /** The principal's scope for a write: admin keys only, their own tenant. */
  static writerScope(p: Principal): BankScope {
    if (!p.isAdmin) throw new AppError('forbidden', 'only an admin key may change label banks');
    return { tenantId: p.tenantId };
  }

  async list(tenantId: string, kind: LabelKind): Promise<BankView[]> {
    const banks = await effectiveBanks(this.db, tenantId, kind);
    const counts = await this.entryCounts(banks.map((b) => b.id));
    return banks.map((b) => this.view(b, counts.get(b.id) ?? 0));
  }

  /** Global banks (for the CLI). */
  async listGlobal(): Promise<BankView[]> {
    const banks = await this.db.selectFrom('label_banks').selectAll().where('tenant_id', 'is', null).orderBy('name').execute();
    const counts = await this.entryCounts(banks.map((b) => b.id));
    return banks.map((b) => this.view(b, counts.get(b.id) ?? 0));
  }

  /** A bank readable by the tenant: its own, or any global one (overridden or not). */
  async get(tenantId: string | null, kind: LabelKind, bankId: string): Promise<BankDetailView> {
    const bank = await this.readable(this.db, tenantId, kind, bankId);
    const entries = await this.entriesOf(this.db, tenantId, bank);
    return { ...this.view(bank, entries.length), entries };
  }

  async findGlobalByName(name: string): Promise<BankRow | undefined> {
    return this.db.selectFrom('label_banks').selectAll().where('tenant_id', 'is', null).where('name', '=', bankName(name).name).executeTakeFirst();
  }

  /**
   * Gives the entries of a global bank that were stored before names kept their case (display
   * name unknown) the spelling of `names` with the same key; entries named since keep theirs.
   * Returns how many entries took one.
   */
  async adoptGlobalDisplayNames(bankId: string, kind: LabelKind, names: readonly string[]): Promise<number> {
    const wanted = new Map(names.map((n) => [normalizeLabelName(n), labelName(n).display]));
    const unknown = await this.db
      .selectFrom('label_bank_entries')
      .select(['id', 'name'])
      .where('bank_id', '=', bankId)
      .where('tenant_id', 'is', null)
      .where('display_name', 'is', null)
      .execute();
    const adopt = unknown.filter((e) => wanted.has(e.name));
    if (!adopt.length) return 0;
    await this.afterWrite({ global: true }, kind, async (tx) => {
      for (const e of adopt) {
        await tx
          .updateTable('label_bank_entries')
          .set({ display_name: wanted.get(e.name)! })
          .where('id', '=', e.id)
          .where('display_name', 'is', null)
          .execute();
      }
    });
    return adopt.length;
  }

  async create(
    scope: BankScope,
    kind: LabelKind,
    input: { name: string; description?: string | null; match_threshold?: number | null; entries?: BankEntryDoc[] },
  ): Promise<BankDetailView> {
    const id = await this.afterWrite(scope, kind, (tx) => this.insertBank(tx, scope, kind, input));
    return this.get(tenantOf(scope), kind, id);
  }

  async update(
    scope: BankScope,
    kind: LabelKind,
    bankId: string,
    input: { name?: string; description?: string | null; match_threshold?: number | null },
  ): Promise<BankDetailView> {
    const renamed = input.name !== undefined ? bankName(input.name) : undefined;
    await this.afterWrite(scope, kind, async (tx) => {
      await this.writable(tx, scope, kind, bankId);
      try {
        await tx
          .updateTable('label_banks')
          .set({
            ...(renamed ? { name: renamed.name, display_name: renamed.display } : {}),
            ...(input.description !== undefined ? { description: input.description } : {}),
            ...(input.match_threshold !== undefined ? { match_threshold: input.match_threshold } : {}),
            updated_at: nowIso(),
          })
          .where('id', '=', bankId)
          .execute();
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('conflict', 'a label bank of that name already exists');
        throw err;
      }
    });
    return this.get(tenantOf(scope), kind, bankId);
  }

  async delete(scope: BankScope, kind: LabelKind, bankId: string): Promise<void> {
    await this.afterWrite(scope, kind, async (tx) => {
      await this.writable(tx, scope, kind, bankId);
      // Entries point at each other; remove the links first so no engine trips over the order.
      await tx.updateTable('label_bank_entries').set({ parent_id: null }).where('bank_id', '=', bankId).execute();
      await tx.deleteFrom('label_banks').where('id', '=', bankId).execute();
    });
  }

  async addEntry(scope: BankScope, kind: LabelKind, bankId: string, input: EntryInput): Promise<BankEntryView> {
    const id = await this.afterWrite(scope, kind, async (tx) => {
      const bank = await this.writable(tx, scope, kind, bankId);
      const count = await tx
        .selectFrom('label_bank_entries')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('bank_id', '=', bankId)
        .executeTakeFirstOrThrow();
      if (Number(count.n) >= this.maxEntries) throw new AppError('bank-too-large', `a bank may hold at most ${this.maxEntries} entries`);
      this.checkThreshold(bank, input.threshold);
      const name = labelName(input.name);
      if (input.parent_id) await this.entryIn(tx, bankId, input.parent_id, 'parent_id');
      const entryId = newId();
      await this.insertEntry(tx, bank, entryId, name, input.parent_id ?? null, input.threshold ?? null);
      await this.replacePhrases(tx, bank, entryId, phrasesOf(input.phrases, name.name));
      await this.touch(tx, bankId);
      return entryId;
    });
    return this.entry(tenantOf(scope), kind, bankId, id);
  }

  async entry(tenantId: string | null, kind: LabelKind, bankId: string, entryId: string): Promise<BankEntryView> {
    const bank = await this.readable(this.db, tenantId, kind, bankId);
    const entry = (await this.entriesOf(this.db, tenantId, bank)).find((e) => e.id === entryId);
    if (!entry) throw notFound('label bank entry');
    return entry;
  }

  async updateEntry(scope: BankScope, kind: LabelKind, bankId: string, entryId: string, input: Partial<EntryInput>): Promise<BankEntryView> {
    await this.afterWrite(scope, kind, async (tx) => {
      const bank = await this.writable(tx, scope, kind, bankId);
      const entry = await this.entryIn(tx, bankId, entryId, 'entry');
      const name = input.name !== undefined ? labelName(input.name) : { name: entry.name, display: entry.display_name };
      if (input.threshold !== undefined) this.checkThreshold(bank, input.threshold);
      if (input.parent_id) {
        await this.entryIn(tx, bankId, input.parent_id, 'parent_id');
        await this.checkNoCycle(tx, bankId, entryId, input.parent_id);
      }
      try {
        await tx
          .updateTable('label_bank_entries')
          .set({
            name: name.name,
            display_name: name.display,
            ...(input.parent_id !== undefined ? { parent_id: input.parent_id } : {}),
            ...(input.threshold !== undefined ? { threshold: input.threshold } : {}),
          })
          .where('id', '=', entryId)
          .execute();
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('conflict', `the bank already has an entry named "${name.display ?? name.name}"`);
        throw err;
      }
      if (input.phrases !== undefined || name.name !== entry.name) {
        const current = (await tx.selectFrom('label_bank_phrases').select(['phrase', 'display_name']).where('entry_id', '=', entryId).execute()).map(
          shownPhrase,
        );
        await this.replacePhrases(tx, bank, entryId, phrasesOf(input.phrases ?? current, name.name));
      }
      await this.touch(tx, bankId);
    });
    return this.entry(tenantOf(scope), kind, bankId, entryId);
  }

  async deleteEntry(scope: BankScope, kind: LabelKind, bankId: string, entryId: string): Promise<void> {
    await this.afterWrite(scope, kind, async (tx) => {
      await this.writable(tx, scope, kind, bankId);
      await this.entryIn(tx, bankId, entryId, 'entry');
      // Children move up to the removed entry's parent rather than losing their place.
      const entry = await tx.selectFrom('label_bank_entries').select('parent_id').where('id', '=', entryId).executeTakeFirstOrThrow();
      await tx.updateTable('label_bank_entries').set({ parent_id: entry.parent_id }).where('parent_id', '=', entryId).execute();
      await tx.deleteFrom('label_bank_entries').where('id', '=', entryId).execute();
      await this.touch(tx, bankId);
    });
  }

  async export(tenantId: string | null, kind: LabelKind, bankId: string): Promise<BankDoc> {
    const bank = await this.get(tenantId, kind, bankId);
    const byId = new Map(bank.entries.map((e) => [e.id, e]));
    // Parents before children, so the document reads top-down.
    const ordered: BankEntryView[] = [];
    const placed = new Set<string>();
    const place = (e: BankEntryView) => {
      if (placed.has(e.id)) return;
      placed.add(e.id);
      const parent = e.parent_id ? byId.get(e.parent_id) : undefined;
      if (parent) place(parent);
      ordered.push(e);
    };
    bank.entries.forEach(place);
    return {
      format: BANK_FORMAT,
      version: BANK_FORMAT_VERSION,
      name: bank.name,
      kind: bank.kind,
      description: bank.description,
      match_threshold: bank.match_threshold,
      entries: ordered.map((e) => ({
        name: e.name,
        parent: e.parent_id ? (byId.get(e.parent_id)?.name ?? null) : null,
        phrases: e.phrases,
        threshold: e.threshold,
      })),
    };
  }

  /**
   * Creates a bank from a document, or with `replace` updates the bank of that name in place:
   * entries are matched by name (so their statistics survive), missing ones removed.
   */
  async import(scope: BankScope, kind: LabelKind, doc: BankDoc, opts: { replace: boolean }): Promise<{ bank: BankDetailView; created: boolean }> {
    if (doc.kind && doc.kind !== kind)
      throw new AppError('validation-failed', `kind: this document is a ${doc.kind} bank; import it under the ${doc.kind} banks`);
    const { name, display } = bankName(doc.name);
    let created = false;
    const id = await this.afterWrite(scope, kind, async (tx) => {
      const existing = await tx
        .selectFrom('label_banks')
        .selectAll()
        .where((eb) => (tenantOf(scope) ? eb('tenant_id', '=', tenantOf(scope)) : eb('tenant_id', 'is', null)))
        .where('name', '=', name)
        .executeTakeFirst();
      if (!existing) {
        created = true;
        return this.insertBank(tx, scope, kind, {
          name: display,
          description: doc.description ?? null,
          match_threshold: doc.match_threshold ?? null,
          entries: doc.entries,
        });
      }
      if (!opts.replace) throw new AppError('conflict', `a label bank named "${display}" already exists; import with replace=true to update it`);
      if (existing.kind !== kind) throw new AppError('conflict', `the bank named "${display}" is a ${existing.kind} bank`);
      await tx
        .updateTable('label_banks')
        .set({ display_name: display, description: doc.description ?? null, match_threshold: doc.match_threshold ?? null, updated_at: nowIso() })
        .where('id', '=', existing.id)
        .execute();
      await this.writeEntries(tx, existing, doc.entries, true);
      return existing.id;
    });
    return { bank: await this.get(tenantOf(scope), kind, id), created };
  }

  /** The tenant's statistics for every entry of a bank it can read. */
  async stats(tenantId: string, kind: LabelKind, bankId: string): Promise<{ bank_id: string; entries: EntryStatsView[] }> {
    await this.readable(this.db, tenantId, kind, bankId);
    const rows = await this.db
      .selectFrom('label_bank_entries as e')
      .leftJoin('label_bank_stats as s', (j) => j.onRef('s.entry_id', '=', 'e.id').on('s.tenant_id', '=', tenantId))
      .select(['e.id', 'e.name', 'e.display_name', 's.usage_count', 's.match_count', 's.confidence_sum', 's.max_confidence', 's.last_matched_at'])
      .where('e.bank_id', '=', bankId)
      .orderBy('e.name')
      .execute();
    return {
      bank_id: bankId,
      entries: rows.map((r) => {
        const matches = Number(r.match_count ?? 0);
        return {
          entry_id: r.id,
          name: shownName(r),
          usage_count: Number(r.usage_count ?? 0),
          match_count: matches,
          mean_confidence: matches ? Number(r.confidence_sum) / matches : null,
          max_confidence: matches ? Number(r.max_confidence) : null,
          last_matched_at: r.last_matched_at ?? null,
        };
      }),
    };
  }

  // ---- internals

  private view(b: BankRow, entryCount: number): BankView {
    return {
      id: b.id,
      name: shownName(b),
      kind: b.kind,
      description: b.description,
      match_threshold: b.match_threshold === null ? null : Number(b.match_threshold),
      scope: b.tenant_id === null ? 'global' : 'tenant',
      entry_count: entryCount,
      created_at: b.created_at,
      updated_at: b.updated_at,
    };
  }

  private async entryCounts(bankIds: string[]): Promise<Map<string, number>> {
    if (!bankIds.length) return new Map();
    const rows = await this.db
      .selectFrom('label_bank_entries')
      .select(['bank_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('bank_id', 'in', bankIds)
      .groupBy('bank_id')
      .execute();
    return new Map(rows.map((r) => [r.bank_id, Number(r.n)]));
  }

  /**
   * Runs a write in a transaction that also re-derives the label hierarchy of whoever it affects
   * (for a global bank: every tenant) and marks the search documents of media whose label words
   * (names, ancestors, phrases) changed; those documents are rebuilt once it commits.
   */
  private async afterWrite<T>(scope: BankScope, kind: LabelKind, fn: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
    const tenantIds = 'tenantId' in scope ? [scope.tenantId] : (await this.db.selectFrom('tenants').select('id').execute()).map((t) => t.id);
    // Moderation labels are not searchable: their banks change no search words.
    const searchable = kind === 'general';
    const result = await this.db.transaction().execute(async (tx) => {
      const before = new Map<string, LabelWords>();
      if (searchable) for (const t of tenantIds) before.set(t, await labelWordsOf(tx, t));
      const r = await fn(tx);
      for (const t of tenantIds) {
        await syncLabelHierarchy(tx, t);
        if (searchable) await markMediaOfLabelsStale(tx, t, changedLabels(before.get(t)!, await labelWordsOf(tx, t)));
      }
      return r;
    });
    if (searchable) await this.hooks.labelWordsChanged?.('tenantId' in scope ? scope.tenantId : undefined);
    // A moderation entry's threshold may have changed: media that now meet one are held.
    if (kind === 'moderation') for (const t of tenantIds) await this.hooks.moderationChanged?.(t);
    return result;
  }

  private async readable(db: Kysely<Database>, tenantId: string | null, kind: LabelKind, bankId: string): Promise<BankRow> {
    const bank = await db
      .selectFrom('label_banks')
      .selectAll()
      .where('id', '=', bankId)
      .where('kind', '=', kind)
      .where((eb) => (tenantId ? eb.or([eb('tenant_id', '=', tenantId), eb('tenant_id', 'is', null)]) : eb('tenant_id', 'is', null)))
      .executeTakeFirst();
    if (!bank) throw notFound('label bank');
    return bank;
  }

  private async writable(db: Kysely<Database>, scope: BankScope, kind: LabelKind, bankId: string): Promise<BankRow> {
    const bank = await this.readable(db, tenantOf(scope), kind, bankId);
    if (bank.tenant_id !== tenantOf(scope)) {
      throw new AppError(
        'forbidden',
        'global label banks are managed by the server operator (qasar label-bank); create a tenant bank of the same name to override one',
      );
    }
    return bank;
  }

  private async entryIn(db: Kysely<Database>, bankId: string, entryId: string, what: string) {
    const e = await db.selectFrom('label_bank_entries').selectAll().where('id', '=', entryId).where('bank_id', '=', bankId).executeTakeFirst();
    if (!e) {
      if (what === 'entry') throw notFound('label bank entry');
      throw new AppError('validation-failed', `${what}: no entry of this bank has that id`);
    }
    return e;
  }

  private async checkNoCycle(db: Kysely<Database>, bankId: string, entryId: string, parentId: string): Promise<void> {
    const parents = new Map(
      (await db.selectFrom('label_bank_entries').select(['id', 'parent_id']).where('bank_id', '=', bankId).execute()).map((r) => [r.id, r.parent_id]),
    );
    for (let cur: string | null | undefined = parentId, i = 0; cur && i <= parents.size; cur = parents.get(cur), i++) {
      if (cur === entryId) throw new AppError('bank-entry-cycle', 'the parent is the entry itself or one of its descendants');
    }
  }

  private checkThreshold(bank: BankRow, threshold: number | null | undefined): void {
    if (threshold !== undefined && threshold !== null && bank.kind !== 'moderation') {
      throw new AppError('validation-failed', 'threshold: only entries of moderation banks have a threshold');
    }
  }

  private async touch(db: Kysely<Database>, bankId: string): Promise<void> {
    await db.updateTable('label_banks').set({ updated_at: nowIso() }).where('id', '=', bankId).execute();
  }

  private async insertBank(
    tx: Kysely<Database>,
    scope: BankScope,
    kind: LabelKind,
    input: { name: string; description?: string | null; match_threshold?: number | null; entries?: BankEntryDoc[] },
  ): Promise<string> {
    const id = newId();
    const now = nowIso();
    const named = bankName(input.name);
    const row = {
      id,
      tenant_id: tenantOf(scope),
      name: named.name,
      display_name: named.display,
      kind,
      description: input.description ?? null,
      match_threshold: input.match_threshold ?? null,
      created_at: now,
      updated_at: now,
    };
    try {
      await tx.insertInto('label_banks').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('conflict', `a label bank named "${row.display_name}" already exists`);
      throw err;
    }
    if (input.entries?.length) await this.writeEntries(tx, row, input.entries, false);
    return id;
  }

  private async insertEntry(
    tx: Kysely<Database>,
    bank: BankRow,
    id: string,
    name: { name: string; display: string },
    parentId: string | null,
    threshold: number | null,
  ): Promise<void> {
    try {
      await tx
        .insertInto('label_bank_entries')
        .values({
          id,
          bank_id: bank.id,
          tenant_id: bank.tenant_id,
          name: name.name,
          display_name: name.display,
          label_id: null,
          parent_id: parentId,
          threshold,
          created_at: nowIso(),
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('conflict', `the bank already has an entry named "${name.display}"`);
      throw err;
    }
  }

  private async replacePhrases(tx: Kysely<Database>, bank: BankRow, entryId: string, phrases: Phrase[]): Promise<void> {
    await tx.deleteFrom('label_bank_phrases').where('entry_id', '=', entryId).execute();
    if (phrases.length) {
      await tx
        .insertInto('label_bank_phrases')
        .values(phrases.map((p) => ({ id: newId(), entry_id: entryId, tenant_id: bank.tenant_id, phrase: p.name, display_name: p.display })))
        .execute();
    }
  }

  /** Writes a document's entries into a bank: validated as a whole first, parents by name. */
  private async writeEntries(tx: Kysely<Database>, bank: BankRow, docs: BankEntryDoc[], replace: boolean): Promise<void> {
    if (docs.length > this.maxEntries) throw new AppError('bank-too-large', `a bank may hold at most ${this.maxEntries} entries`);
    const entries = docs.map((d, i) => {
      let name: { name: string; display: string };
      try {
        name = labelName(d.name);
      } catch {
        throw new AppError('validation-failed', `entries[${i}].name: must be 1-100 printable characters`);
      }
      this.checkThreshold(bank, d.threshold);
      return {
        name: name.name,
        display: name.display,
        parent: d.parent ? normalizeLabelName(d.parent) : null,
        phrases: phrasesOf(d.phrases, name.name),
        threshold: d.threshold ?? null,
      };
    });
    const byName = new Map<string, (typeof entries)[number]>();
    for (const e of entries) {
      if (byName.has(e.name)) throw new AppError('validation-failed', `entries: "${e.display}" appears twice`);
      byName.set(e.name, e);
    }
    for (const e of entries) {
      if (e.parent && !byName.has(e.parent)) throw new AppError('validation-failed', `entries: the parent "${e.parent}" of "${e.display}" is not an entry`);
      const seen = new Set([e.name]);
      for (let p = e.parent; p; p = byName.get(p)?.parent ?? null) {
        if (seen.has(p)) throw new AppError('bank-entry-cycle', `entries: "${e.display}" would be its own ancestor`);
        seen.add(p);
      }
    }

    const existing = new Map(
      replace ? (await tx.selectFrom('label_bank_entries').select(['id', 'name']).where('bank_id', '=', bank.id).execute()).map((r) => [r.name, r.id]) : [],
    );
    await tx.updateTable('label_bank_entries').set({ parent_id: null }).where('bank_id', '=', bank.id).execute();
    const gone = [...existing].filter(([name]) => !byName.has(name)).map(([, id]) => id);
    if (gone.length) await tx.deleteFrom('label_bank_entries').where('id', 'in', gone).execute();
    const ids = new Map<string, string>();
    for (const e of entries) {
      const id = existing.get(e.name);
      if (id) {
        await tx.updateTable('label_bank_entries').set({ threshold: e.threshold, display_name: e.display }).where('id', '=', id).execute();
        ids.set(e.name, id);
      } else {
        const newEntryId = newId();
        await this.insertEntry(tx, bank, newEntryId, e, null, e.threshold);
        ids.set(e.name, newEntryId);
      }
      await this.replacePhrases(tx, bank, ids.get(e.name)!, e.phrases);
    }
    for (const e of entries) {
      if (e.parent)
        await tx
          .updateTable('label_bank_entries')
          .set({ parent_id: ids.get(e.parent)! })
          .where('id', '=', ids.get(e.name)!)
          .execute();
    }
  }

  private async entriesOf(db: Kysely<Database>, tenantId: string | null, bank: BankRow): Promise<BankEntryView[]> {
    const rows = await db.selectFrom('label_bank_entries').selectAll().where('bank_id', '=', bank.id).orderBy('name').execute();
    if (!rows.length) return [];
    const phrases = new Map<string, string[]>();
    const phraseRows = await db
      .selectFrom('label_bank_phrases as p')
      .innerJoin('label_bank_entries as e', 'e.id', 'p.entry_id')
      .select(['p.entry_id', 'p.phrase', 'p.display_name'])
      .where('e.bank_id', '=', bank.id)
      .orderBy('p.phrase')
      .execute();
    for (const p of phraseRows) phrases.set(p.entry_id, [...(phrases.get(p.entry_id) ?? []), shownPhrase(p)]);
    const children = new Map<string, Array<{ id: string; name: string }>>();
    for (const r of rows) if (r.parent_id) children.set(r.parent_id, [...(children.get(r.parent_id) ?? []), { id: r.id, name: shownName(r) }]);
    const labelIds = new Map<string, string>();
    if (tenantId) {
      const names = rows.map((r) => r.name);
      for (let i = 0; i < names.length; i += 500) {
        const labels = await db
          .selectFrom('labels')
          .select(['id', 'name'])
          .where('tenant_id', '=', tenantId)
          .where('kind', '=', bank.kind)
          .where('name', 'in', names.slice(i, i + 500))
          .execute();
        for (const l of labels) labelIds.set(l.name, l.id);
      }
    }
    return rows.map((r) => ({
      id: r.id,
      bank_id: r.bank_id,
      name: shownName(r),
      label_id: labelIds.get(r.name) ?? r.label_id,
      parent_id: r.parent_id,
      threshold: r.threshold === null ? null : Number(r.threshold),
      phrases: phrases.get(r.id) ?? [],
      children: children.get(r.id) ?? [],
      created_at: r.created_at,
    }));
  }
}

/** How a stored phrase is shown. */
function shownPhrase(p: { phrase: string; display_name: string | null }): string {
  return p.display_name ?? p.phrase;
}
