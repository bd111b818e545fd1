import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';
import { effectiveBanks } from './effective-banks.js';
import { ancestorChain } from './hierarchy.js';

/** A digest, per general label of a tenant, of the words it puts into search documents. */
export type LabelWords = Map<string, string>;

/**
 * What each general label of a tenant contributes to the search documents of its media: its
 * name, its ancestors' names (an alias: its entry's and theirs) and the bank phrases of all of
 * them (as `buildDocuments` writes them). Taken before and after a label bank write, the labels whose digest changed are those
 * whose media need new documents.
 */
export async function labelWordsOf(db: Db, tenantId: string): Promise<LabelWords> {
  const labels = await db.selectFrom('labels').select(['id', 'name', 'kind', 'parent_id', 'alias_of']).where('tenant_id', '=', tenantId).execute();
  const out: LabelWords = new Map();
  if (!labels.length) return out;
  const phrases = new Map<string, string[]>();
  const banks = await effectiveBanks(db, tenantId, 'general');
  if (banks.length) {
    const rows = await db
      .selectFrom('label_bank_phrases as p')
      .innerJoin('label_bank_entries as e', 'e.id', 'p.entry_id')
      .select(['e.name', 'p.phrase'])
      .where(
        'e.bank_id',
        'in',
        banks.map((b) => b.id),
      )
      .execute();
    for (const r of rows) phrases.set(r.name, [...(phrases.get(r.name) ?? []), r.phrase]);
  }
  const byId = new Map(labels.map((l) => [l.id, l]));
  for (const label of labels) {
    if (label.kind !== 'general') continue;
    const words = ancestorChain(label.id, byId).flatMap((l) => [l.name, ...(phrases.get(l.name) ?? []).sort()]);
    out.set(label.id, createHash('sha256').update(words.join('\n')).digest('base64url').slice(0, 16));
  }
  return out;
}

/** Labels whose words differ between two digests (labels are never deleted, only added). */
export function changedLabels(before: LabelWords, after: LabelWords): string[] {
  return [...after].filter(([id, words]) => before.get(id) !== words).map(([id]) => id);
}
