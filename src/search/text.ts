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

/** What one distinct word costs in a PostgreSQL tsvector besides its bytes: entry, position count, one position, alignment. */
const WORD_OVERHEAD_BYTES = 10;
/** Longer "words" (hashes, base64, runs of letters) are nothing anyone searches for. */
const MAX_BODY_WORD = 64;

/**
 * A long text (a document's body) as a search field: its distinct words, folded, in the order
 * they first appear, until they would take more than `maxBytes` in an index. Every word of a
 * book is found while the field's size stays bounded whatever the file holds (PostgreSQL refuses
 * a tsvector over 1 MB, and fails the whole batch being rebuilt with it); how often a word occurs
 * is not kept.
 */
export function distinctWordsField(text: string | null | undefined, maxBytes: number): string {
  if (!text) return '';
  const seen = new Set<string>();
  const out: string[] = [];
  let bytes = 0;
  for (const [word] of foldText(text).matchAll(TOKEN)) {
    if (word.length > MAX_BODY_WORD || seen.has(word)) continue;
    const cost = Buffer.byteLength(word) + WORD_OVERHEAD_BYTES;
    if (bytes + cost > maxBytes) break;
    seen.add(word);
    out.push(word);
    bytes += cost;
  }
  return out.join(' ');
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
