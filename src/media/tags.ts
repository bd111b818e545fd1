import { AppError } from '../shared/errors.js';

export const MAX_TAGS = 50;
export const MAX_TAG_LENGTH = 64;
export const MAX_CAPTION_LENGTH = 5000;

const CONTROL = /[\u0000-\u001f\u007f]/;

/** Trims, folds inner white space, drops empties and case-insensitive duplicates (first spelling wins). */
export function normalizeTags(tags: readonly string[] | undefined, field = 'user_tags'): string[] {
  if (!tags) return [];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const raw of tags) {
    const tag = raw.normalize('NFC').trim().replace(/\s+/g, ' ');
    if (!tag) continue;
    if (tag.length > MAX_TAG_LENGTH || CONTROL.test(tag)) {
      throw new AppError('validation-failed', `${field}: each entry must be at most ${MAX_TAG_LENGTH} printable characters`);
    }
    const key = tag.toLocaleLowerCase('en-US');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(tag);
  }
  if (out.length > MAX_TAGS) throw new AppError('validation-failed', `${field}: at most ${MAX_TAGS} entries`);
  return out;
}

export function normalizeCaption(caption: string | null | undefined): string | null {
  if (caption === undefined || caption === null) return null;
  const clean = caption.normalize('NFC').replace(/\r\n?/g, '\n').trim();
  if (clean.length > MAX_CAPTION_LENGTH) throw new AppError('validation-failed', `caption: at most ${MAX_CAPTION_LENGTH} characters`);
  return clean || null;
}
