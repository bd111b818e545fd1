import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';
import { hasColumn } from '../check-constraints.js';

/**
 * Names keep their case for display; a label named like a bank phrase is its entry.
 *
 * - `display_name` on labels, label banks, bank entries and phrases: the name as it was given
 *   (trimmed, white space folded, NFC). `name` stays the folded key that matching, uniqueness and
 *   lookups use. Rows written before keep `display_name` null: their case is not known, and
 *   readers show `name`. The models' global banks fill theirs from the taxonomy at start-up.
 * - `labels.alias_of`: the label of the bank entry a label is a phrase of (a synonym). Such a
 *   label has no parent of its own; readers resolve it to the entry. Derived from the banks like
 *   `parent_id`. Until now a label named like a phrase was made a child of the entry's label:
 *   those links become alias links here (the next hierarchy sync of the tenant settles the rest,
 *   e.g. a tenant bank shadowing a global one). Search words do not change: an alias carries the
 *   words of its entry's chain, as the child did.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  // Each step can be run again: a process that stopped half-way through migrates again on its next start.
  for (const table of ['labels', 'label_banks', 'label_bank_entries', 'label_bank_phrases']) {
    if (!(await hasColumn(db, dialect, table, 'display_name'))) await db.schema.alterTable(table).addColumn('display_name', 'text').execute();
  }
  if (!(await hasColumn(db, dialect, 'labels', 'alias_of'))) {
    await db.schema
      .alterTable('labels')
      .addColumn('alias_of', 'text', (c) => c.references('labels.id').onDelete('set null'))
      .execute();
  }
  await db.schema.createIndex('labels_tenant_alias_idx').ifNotExists().on('labels').columns(['tenant_id', 'alias_of']).execute();

  await sql`
    update labels set alias_of = parent_id, parent_id = null
    where parent_id is not null
      and exists (
        select 1 from label_bank_phrases p
        join label_bank_entries e on e.id = p.entry_id
        join label_banks b on b.id = e.bank_id
        join labels pl on pl.id = labels.parent_id
        where p.phrase = labels.name and e.name = pl.name and b.kind = labels.kind
          and (b.tenant_id = labels.tenant_id or b.tenant_id is null))
      and not exists (
        select 1 from label_bank_entries e2
        join label_banks b2 on b2.id = e2.bank_id
        where e2.name = labels.name and b2.kind = labels.kind
          and (b2.tenant_id = labels.tenant_id or b2.tenant_id is null))`.execute(db);
}
