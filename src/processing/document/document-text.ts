/*
 * A document's text as it is kept for search: normalised, and cut at DOCUMENT_TEXT_MAX_CHARS.
 * "Characters" are UTF-16 code units, as JavaScript and the README count them; a cut never
 * splits a surrogate pair.
 */

const CONTROLS = /[\u0000-\u0008\u000B\u000E-\u001F\u007F-\u009F\uFFFE\uFFFF]/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const SPACES = /[ \t\u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]+/g;

/**
 * NFC, line breaks as `\n`, a page break (form feed) as a blank line, controls and lone
 * surrogates dropped (PostgreSQL refuses NUL in text), runs of spaces as one, at most one
 * blank line in a row, no space at either end of a line.
 */
export function normalizeText(raw: string): string {
  return raw
    .replace(LONE_SURROGATE, '')
    .normalize('NFC')
    .replace(/\r\n?/g, '\n')
    .replace(/\f/g, '\n\n')
    .replace(CONTROLS, ' ')
    .replace(SPACES, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** `text` cut to at most `max` characters, not inside a surrogate pair nor (when a space is near) a word. */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  let cut = text.slice(0, end);
  if (!/\s/.test(text[end] ?? ' ')) {
    // The word the cut falls in is dropped, unless it is a long run without spaces.
    const tail = cut.slice(-64);
    const space = tail.search(/\s\S*$/);
    if (space >= 0) cut = cut.slice(0, cut.length - tail.length + space);
  }
  return cut.trimEnd();
}

export interface CollectedText {
  text: string;
  /** Text was left out: past the limit, or not read at all (the tool was stopped, time ran out). */
  truncated: boolean;
}

/** Gathers a document's text part by part (pages, chapters), normalised, up to `maxChars`. */
export class TextCollector {
  private readonly parts: string[] = [];
  private length = 0;
  /** The limit was reached: nothing more is kept. */
  private cut = false;
  /** Some text was not read (left out, or the tool stopped): the text is incomplete though there is room. */
  private incomplete = false;

  constructor(readonly maxChars: number) {}

  /** Whether the limit is reached: more text would be cut. */
  get full(): boolean {
    return this.cut || this.length >= this.maxChars;
  }

  /** Adds one part (a paragraph break apart from the last); false once the limit is reached. */
  add(raw: string): boolean {
    if (this.cut) return false;
    const t = normalizeText(raw);
    if (!t) return !this.full;
    const sep = this.length ? 2 : 0;
    const room = this.maxChars - this.length - sep;
    if (t.length > room) {
      this.cut = true;
      const kept = room > 0 ? cutText(t, room) : '';
      if (kept) this.push(kept, sep);
      return false;
    }
    this.push(t, sep);
    return true;
  }

  /** Marks the text as incomplete though the limit was not reached (some of it could not be read); more may still be added. */
  markTruncated(): void {
    this.incomplete = true;
  }

  private push(t: string, sep: number): void {
    if (sep) this.parts.push('\n\n');
    this.parts.push(t);
    this.length += sep + t.length;
  }

  result(): CollectedText {
    return { text: this.parts.join(''), truncated: this.cut || this.incomplete };
  }
}
