import { BANK_FORMAT, BANK_FORMAT_VERSION, type BankDoc } from '../../labels/bank-format.js';
import type { LabelBankService } from '../../labels/label-bank-service.js';
import { modelBanks } from './taxonomy.js';

/**
 * Creates the global banks that give the models' labels their parents, when missing. An
 * operator's edits to them stay (they are never replaced here); a tenant overrides one with a
 * bank of the same name. Entries stored before names kept their case take the taxonomy's
 * spelling ("Bicycle"), once. Safe to run from several processes at once.
 */
export async function ensureModelBanks(banks: LabelBankService): Promise<void> {
  for (const b of modelBanks()) {
    const existing = await banks.findGlobalByName(b.name);
    if (existing) {
      await banks.adoptGlobalDisplayNames(
        existing.id,
        existing.kind,
        b.entries.map((e) => e.name),
      );
      continue;
    }
    const doc: BankDoc = { format: BANK_FORMAT, version: BANK_FORMAT_VERSION, name: b.name, kind: b.kind, description: b.description, entries: b.entries };
    try {
      await banks.import({ global: true }, b.kind, doc, { replace: false });
    } catch (err) {
      // Another process made it meanwhile.
      if (!(await banks.findGlobalByName(b.name))) throw err;
    }
  }
}
