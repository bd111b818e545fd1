import { AppError } from '../shared/errors.js';

/**
 * A client's file name is kept only as a label (never used in a path), but one that tries
 * to be a path or hides control characters is refused outright, so nobody downstream is
 * tempted to trust it.
 */
export function validateFilename(name: unknown): string {
  if (typeof name !== 'string') throw new AppError('invalid-filename', 'filename is required');
  const clean = name.normalize('NFC').trim();
  if (!clean || clean.length > 255) throw new AppError('invalid-filename', 'filename must be 1-255 characters');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(clean)) throw new AppError('invalid-filename', 'filename contains control characters');
  if (/[/\\]/.test(clean)) throw new AppError('invalid-filename', 'filename must not contain path separators');
  if (clean === '.' || clean === '..' || clean.includes('..')) throw new AppError('invalid-filename', 'filename must not contain ".."');
  return clean;
}
