import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/schema.js';

/**
 * Signed, expiring playback tokens. A token rides in the URL path (`/play/<token>/…`), so the
 * relative segment URLs inside playlists inherit it and a plain <video> element or hls.js
 * needs no custom header. It names one media and an expiry, and its signature covers the
 * media's own random playback key: deleting the media (or rotating its key) kills every token.
 */
export interface TokenClaims {
  mediaId: string;
  expiresAt: number;
}

const TOKEN = /^([0-9a-f-]{36})\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/;

export class PlaybackTokens {
  constructor(private readonly secret: Buffer) {}

  private signature(mediaId: string, playbackKey: string, expiresAt: number): Buffer {
    return createHmac('sha256', this.secret).update(`${mediaId}\n${playbackKey}\n${expiresAt}`).digest();
  }

  sign(mediaId: string, playbackKey: string, expiresAt: number): string {
    const exp = Math.floor(expiresAt / 1000);
    return `${mediaId}.${exp.toString(36)}.${this.signature(mediaId, playbackKey, exp).toString('base64url')}`;
  }

  /** The claims of a well-formed token, before its signature is checked against the media's key. */
  parse(token: string): (TokenClaims & { exp: number; sig: Buffer }) | undefined {
    const m = TOKEN.exec(token);
    if (!m) return undefined;
    const exp = parseInt(m[2]!, 36);
    return { mediaId: m[1]!, exp, expiresAt: exp * 1000, sig: Buffer.from(m[3]!, 'base64url') };
  }

  /** True when the token was signed for this media and key and has not expired. */
  verify(claims: { mediaId: string; exp: number; sig: Buffer }, playbackKey: string, now = Date.now()): boolean {
    if (claims.exp * 1000 <= now) return false;
    const expected = this.signature(claims.mediaId, playbackKey, claims.exp);
    return expected.length === claims.sig.length && timingSafeEqual(expected, claims.sig);
  }
}

/**
 * The secret that signs playback URLs: the configured one, or one generated on first use and
 * kept in the database, so every API process of a deployment signs alike.
 */
export async function playbackSecret(db: Db, configured: string): Promise<Buffer> {
  if (configured) return Buffer.from(configured, 'utf8');
  const existing = await db.selectFrom('server_secrets').select('value').where('name', '=', 'playback').executeTakeFirst();
  if (existing) return Buffer.from(existing.value, 'base64url');
  await db
    .insertInto('server_secrets')
    .values({ name: 'playback', value: randomBytes(32).toString('base64url'), created_at: nowIso() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('server_secrets').select('value').where('name', '=', 'playback').executeTakeFirstOrThrow();
  return Buffer.from(row.value, 'base64url');
}
