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

/** How a tag is matched (and kept in `media_tags`): trimmed, inner white space folded, lower-cased. */
export function tagKey(tag: string): string {
  return tag.normalize('NFC').trim().replace(/\s+/g, ' ').toLocaleLowerCase('en-US');
}

/** A tag to filter by, as `media_tags` holds it; refused when it could not be a tag. */
export function tagFilterKey(raw: string, field = 'tag'): string {
  const key = tagKey(raw);
  if (!key || key.length > MAX_TAG_LENGTH || CONTROL.test(key)) {
    throw new AppError('validation-failed', `${field}: must be 1-${MAX_TAG_LENGTH} printable characters`);
  }
  return key;
}

export function normalizeCaption(caption: string | null | undefined): string | null {
  if (caption === undefined || caption === null) return null;
  const clean = caption.normalize('NFC').replace(/\r\n?/g, '\n').trim();
  if (clean.length > MAX_CAPTION_LENGTH) throw new AppError('validation-failed', `caption: at most ${MAX_CAPTION_LENGTH} characters`);
  return clean || null;
}
