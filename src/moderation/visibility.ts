import type { Kysely } from 'kysely';
import type { Database, ModerationState } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Principal } from '../tenancy/principal.js';

/** Held and rejected media are seen only by their owner and admin keys (not in feeds, search or others' playback). */
export function hiddenByModeration(state: ModerationState | string): boolean {
  return state === 'held' || state === 'rejected';
}

export function maySeeHidden(p: Principal, ownerUserId: string): boolean {
  return p.isAdmin || p.userId === ownerUserId;
}

/** Throws `moderation-hidden` when the principal may not see this media because of moderation. */
export function assertModerationVisible(p: Principal, media: { user_id: string; moderation_state: ModerationState | string }): void {
  if (hiddenByModeration(media.moderation_state) && !maySeeHidden(p, media.user_id)) {
    throw new AppError('moderation-hidden', 'the media is held for moderation or was rejected');
  }
}

/**
 * Playback tokens of a hidden media handed to its owner or an admin are signed with a key of
 * their own, so URLs handed out before the media was held stop working while it is hidden.
 */
export function moderatedPlaybackKey(playbackKey: string): string {
  return `${playbackKey}:moderated`;
}

/** The key to sign a media's playback URLs with, for a principal allowed to see it (null: nothing to play). */
export function playbackSigningKey(media: { playback_key: string | null; moderation_state: ModerationState | string }): string | null {
  if (!media.playback_key) return null;
  return hiddenByModeration(media.moderation_state) ? moderatedPlaybackKey(media.playback_key) : media.playback_key;
}


/**
 * Checks a playback token against a media's keys: a token of the moderated key (handed to the
 * owner or an admin) always plays; an ordinary one only while the media is not hidden.
 */
export function checkPlaybackToken(verify: (key: string) => boolean, playbackKey: string, state: ModerationState | string): 'ok' | 'hidden' | 'invalid' {
  if (verify(moderatedPlaybackKey(playbackKey))) return 'ok';
  if (!verify(playbackKey)) return 'invalid';
  return hiddenByModeration(state) ? 'hidden' : 'ok';
}
