import { createHash, randomBytes } from 'node:crypto';

const KEY_PREFIX = 'qsr_';

/** A new API key: a recognisable prefix and 256 bits of randomness. Only its hash is stored. */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * Keys are high-entropy random strings, so a fast hash is enough (no salt or KDF is
 * needed to resist guessing); it also lets a request find its key by one index lookup.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function looksLikeApiKey(key: string): boolean {
  return key.startsWith(KEY_PREFIX) && key.length > KEY_PREFIX.length + 20 && key.length < 200;
}
