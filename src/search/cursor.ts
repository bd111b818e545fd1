import { createHash } from 'node:crypto';
import { AppError } from '../shared/errors.js';

/** Opaque page cursors: base64url JSON, bound to the query they came from by a fingerprint. */
export function encodeCursor(fingerprint: string, state: unknown[]): string {
  return Buffer.from(JSON.stringify([fingerprint, ...state])).toString('base64url');
}

export function decodeCursor(raw: string, fingerprint: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw new AppError('validation-failed', 'cursor is not valid');
  }
  if (!Array.isArray(parsed) || typeof parsed[0] !== 'string') throw new AppError('validation-failed', 'cursor is not valid');
  if (parsed[0] !== fingerprint) throw new AppError('validation-failed', 'cursor belongs to another query or feed');
  return parsed.slice(1);
}

export function fingerprintOf(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12);
}
