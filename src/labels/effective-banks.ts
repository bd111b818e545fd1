import type { Kysely, Selectable } from 'kysely';
import type { Database, LabelBanksTable, LabelKind } from '../db/schema.js';

export type BankRow = Selectable<LabelBanksTable>;

/**
 * The banks that apply to a tenant: its own, and every global bank whose name it does not use
 * (a tenant bank replaces a global bank of the same name). Tenant banks come first, then by
 * name, so "first bank wins" rules are deterministic.
 */
export async function effectiveBanks(db: Kysely<Database>, tenantId: string, kind?: LabelKind): Promise<BankRow[]> {
  let q = db
    .selectFrom('label_banks')
    .selectAll()
    .where((eb) => eb.or([eb('tenant_id', '=', tenantId), eb('tenant_id', 'is', null)]));
  if (kind) q = q.where('kind', '=', kind);
  const rows = await q.orderBy('name').execute();
  // Names are unique per scope; a tenant name shadows the global one of any kind.
  const tenantNames = new Set(
    kind
      ? (await db.selectFrom('label_banks').select('name').where('tenant_id', '=', tenantId).execute()).map((r) => r.name)
      : rows.filter((r) => r.tenant_id !== null).map((r) => r.name),
  );
  const own = rows.filter((r) => r.tenant_id !== null);
  const global = rows.filter((r) => r.tenant_id === null && !tenantNames.has(r.name));
  return [...own, ...global];
}

export interface MatchedEntry {
  entryId: string;
  bankId: string;
  kind: LabelKind;
  name: string;
  threshold: number | null;
  /** The label name that matched (the entry's name or one of its phrases). */
  matched: string;
}

/**
 * Entries of the tenant's effective banks of `kind` that match any of `names`, by the entry's
 * name or one of its phrases. Names are already normalised.
 */
export async function matchingEntries(db: Kysely<Database>, tenantId: string, kind: LabelKind, names: readonly string[]): Promise<MatchedEntry[]> {
  if (!names.length) return [];
  const banks = await effectiveBanks(db, tenantId, kind);
  if (!banks.length) return [];
  const bankIds = banks.map((b) => b.id);
  const byName = await db
    .selectFrom('label_bank_entries')
    .select(['id', 'bank_id', 'name', 'threshold'])
    .where('bank_id', 'in', bankIds)
    .where('name', 'in', [...names])
    .execute();
  const byPhrase = await db
    .selectFrom('label_bank_phrases as p')
    .innerJoin('label_bank_entries as e', 'e.id', 'p.entry_id')
    .select(['e.id', 'e.bank_id', 'e.name', 'e.threshold', 'p.phrase'])
    .where('e.bank_id', 'in', bankIds)
    .where('p.phrase', 'in', [...names])
    .execute();
  const out = new Map<string, MatchedEntry>();
  for (const r of byName) out.set(`${r.id}\0${r.name}`, { entryId: r.id, bankId: r.bank_id, kind, name: r.name, threshold: r.threshold, matched: r.name });
  for (const r of byPhrase) {
    const key = `${r.id}\0${r.phrase}`;
    if (!out.has(key)) out.set(key, { entryId: r.id, bankId: r.bank_id, kind, name: r.name, threshold: r.threshold, matched: r.phrase });
  }
  const order = new Map(bankIds.map((id, i) => [id, i]));
  return [...out.values()].sort((a, b) => order.get(a.bankId)! - order.get(b.bankId)!);
}
