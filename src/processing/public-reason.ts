import { PermanentJobError } from '../shared/errors.js';

/** Absolute paths, as tools and Node print them (`/srv/…/original.mp4: Invalid data…`). */
const ABSOLUTE_PATH = /(^|[\s'"(=:])\/[^\s'"()]*[^\s'"():;,.]/g;

/**
 * The reason a person reads on a failed media (error.reason, status events): the permanent
 * error's own words with any path removed; for a failure of the machine (retried until the
 * last attempt), a plain sentence, the cause staying in the logs.
 */
export function publicReason(err: unknown, attempts: number, storageRoot?: string): string {
  if (err instanceof PermanentJobError) return scrubPaths(err.message, storageRoot);
  return `processing failed ${attempts} time${attempts === 1 ? '' : 's'} because of a problem on the server, not with the file; reprocess it to try again`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Replaces absolute paths with `(file)`. Paths under the storage root are found by the root
 * itself, so a root with spaces in it (`/srv/my media`) goes whole; the rest of such a path is
 * Qasar's own naming (ids, no spaces). Other absolute paths end at a space or quote.
 */
export function scrubPaths(text: string, storageRoot?: string): string {
  let out = text;
  const root = storageRoot?.replace(/\/+$/, '');
  if (root) out = out.replace(new RegExp(`${escapeRegExp(root)}(?:/[^\\s'"()]*[^\\s'"():;,.])?/?`, 'g'), '(file)');
  return out.replace(ABSOLUTE_PATH, (_m, lead: string) => `${lead}(file)`);
}
