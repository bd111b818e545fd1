import { AppError } from '../shared/errors.js';

const MARKS = /\p{M}+/gu;
const TOKEN = /[\p{L}\p{N}]+/gu;

/** Lower-cased, accents removed: the same folding for documents and queries on both databases. */
export function foldText(text: string): string {
  return text.normalize('NFKD').replace(MARKS, '').toLocaleLowerCase('en-US');
}

/** Words of a text (letters and digits), folded. Punctuation, `_`, `-` and `.` separate words. */
export function tokenize(text: string | null | undefined): string[] {
  if (!text) return [];
  return foldText(text).match(TOKEN) ?? [];
}

/** A field of a search document: its words joined by spaces, so both engines see the same tokens. */
export function documentField(parts: ReadonlyArray<string | null | undefined>): string {
  return parts.flatMap((p) => tokenize(p)).join(' ');
}

export const MAX_QUERY_TERMS = 12;

export interface ParsedQuery {
  terms: string[];
  /** The last term also matches words it begins (type-ahead). */
  prefixLast: boolean;
}

/**
 * Parses what a person typed into words; user syntax (quotes, operators, column filters) is
 * never passed to the engine. Every word must match; the last one is a prefix unless the
 * query ends with a space or the word is a single character.
 */
export function parseQuery(raw: string, maxLength: number): ParsedQuery {
  if (raw.length > maxLength) throw new AppError('validation-failed', `q: at most ${maxLength} characters`);
  const terms = tokenize(raw);
  if (!terms.length) throw new AppError('validation-failed', 'q: must contain at least one letter or digit');
  if (terms.length > MAX_QUERY_TERMS) throw new AppError('validation-failed', `q: at most ${MAX_QUERY_TERMS} words`);
  const last = terms[terms.length - 1]!;
  return { terms, prefixLast: !/\s$/.test(raw) && last.length >= 2 };
}

/** An FTS5 MATCH expression: every word quoted, implicitly AND-ed. */
export function fts5Expression(q: ParsedQuery): string {
  return q.terms.map((t, i) => `"${t}"${q.prefixLast && i === q.terms.length - 1 ? '*' : ''}`).join(' ');
}

/** A to_tsquery('simple', …) expression; words are letters and digits only, quoted anyway. */
export function tsQueryExpression(q: ParsedQuery): string {
  return q.terms.map((t, i) => `'${t.replace(/'/g, "''")}'${q.prefixLast && i === q.terms.length - 1 ? ':*' : ''}`).join(' & ');
}
