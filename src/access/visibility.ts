import type { Kysely } from 'kysely';
import type { Database, ModerationState } from '../db/schema.js';
import { AppError } from '../shared/errors.js';
import type { Principal } from '../tenancy/principal.js';
import { isOwnerOrAdmin } from './ownership.js';

/** Held and rejected media are seen only by their owner and admin keys (not in feeds, search or others' playback). */
export function hiddenByModeration(state: ModerationState | string): boolean {
  return state === 'held' || state === 'rejected';
}

/** Throws `moderation-hidden` when the principal may not see this media because of moderation. */
export function assertModerationVisible(p: Principal, media: { user_id: string; moderation_state: ModerationState | string }): void {
  if (hiddenByModeration(media.moderation_state) && !isOwnerOrAdmin(p, media.user_id)) {
    throw new AppError('moderation-hidden', 'the media is held for moderation or was rejected');
  }
}

/**
 * The key to sign a media's playback URLs with, or null when it gets none: a media held or
 * rejected by moderation has no public playback URL for anyone (its owner and admins read its
 * files through the authenticated API instead), since a bearer URL, once handed out, plays for
 * whoever holds it.
 */
export function playbackSigningKey(media: { playback_key: string | null; moderation_state: ModerationState | string }): string | null {
  if (!media.playback_key || hiddenByModeration(media.moderation_state)) return null;
  return media.playback_key;
}

/** Checks a playback token at serve time: a valid one stops playing while the media is held or rejected. */
export function checkPlaybackToken(verify: (key: string) => boolean, playbackKey: string, state: ModerationState | string): 'ok' | 'hidden' | 'invalid' {
  if (!verify(playbackKey)) return 'invalid';
  return hiddenByModeration(state) ? 'hidden' : 'ok';
}
