import { AppError } from '../shared/errors.js';

export const MAX_LABEL_LENGTH = 100;

/**
 * A name as it is shown: Unicode NFC, trimmed, runs of white space folded to one space, its case
 * kept ("Golden Retriever"). Refused when blank, longer than MAX_LABEL_LENGTH or holding control
 * characters.
 */
export function displayLabelName(raw: string): string {
  const name = raw.normalize('NFC').trim().replace(/\s+/g, ' ');
  if (!name || name.length > MAX_LABEL_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new AppError('validation-failed', `labels: each must be 1-${MAX_LABEL_LENGTH} printable characters`);
  }
  return name;
}

/** The key a name is matched by (case-insensitively): its display form, lower-cased. */
export function normalizeLabelName(raw: string): string {
  return displayLabelName(raw).toLocaleLowerCase('en-US');
}

/** A name's key (matching, uniqueness, lookups) and the form it is shown in. */
export function labelName(raw: string): { name: string; display: string } {
  const display = displayLabelName(raw);
  return { name: display.toLocaleLowerCase('en-US'), display };
}

/** How a stored name is shown: as it was given, or its key when it was stored before names kept their case. */
export function shownName(row: { name: string; display_name?: string | null }): string {
  return row.display_name ?? row.name;
}

/** Names given at upload, as they are shown, each key once (the first spelling wins); at most 200. */
export function normalizeLabelNames(names: readonly string[] | undefined): string[] {
  const byKey = new Map<string, string>();
  for (const raw of names ?? []) {
    const { name, display } = labelName(raw);
    if (!byKey.has(name)) byKey.set(name, display);
  }
  return [...byKey.values()].slice(0, 200);
}
