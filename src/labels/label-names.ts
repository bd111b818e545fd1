import { AppError } from '../shared/errors.js';

export const MAX_LABEL_LENGTH = 100;

/** Label names are matched case-insensitively: stored trimmed, white space folded, lower-cased. */
export function normalizeLabelName(raw: string): string {
  const name = raw.normalize('NFC').trim().replace(/\s+/g, ' ').toLocaleLowerCase('en-US');
  if (!name || name.length > MAX_LABEL_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new AppError('validation-failed', `labels: each must be 1-${MAX_LABEL_LENGTH} printable characters`);
  }
  return name;
}

export function normalizeLabelNames(names: readonly string[] | undefined): string[] {
  return [...new Set((names ?? []).map(normalizeLabelName))].slice(0, 200);
}
