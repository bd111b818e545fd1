import type { MediaStatus, ModerationState } from '../db/schema.js';
import { AppError } from '../shared/errors.js';
import type { Principal } from '../tenancy/principal.js';
import { isOwnerOrAdmin } from './ownership.js';

/**
 * Who is looking, for visibility rules: feeds are for everyone in the tenant; search is for a
 * member, who also sees their own media that is not ready or held by moderation (an admin: all).
 */
export type Audience = { kind: 'feed' } | { kind: 'member'; userId: string; isAdmin: boolean };

/**
 * The moderation states anyone in the tenant may see; held and rejected media (and any state
 * added later, until it is listed here) are seen only by their owner and admin keys. The one
 * list both forms of the rule read: this module's predicates and the SQL in visibility-sql.ts.
 */
export const PUBLIC_MODERATION_STATES: readonly ModerationState[] = ['none', 'approved'];

/** Held and rejected media are seen only by their owner and admin keys (not in feeds, search or others' playback). */
export function hiddenByModeration(state: ModerationState | string): boolean {
  return !(PUBLIC_MODERATION_STATES as readonly string[]).includes(state);
}

/** Ready and not hidden by moderation: what anyone in the tenant may see (the SQL form is `publiclyVisible`). */
export function publiclyVisibleMedia(m: { status: MediaStatus | string; moderation_state: ModerationState | string }): boolean {
  return m.status === 'ready' && !hiddenByModeration(m.moderation_state);
}

/** Whether this audience may see the media in a list (the SQL form is `visibleTo`). */
export function visibleToAudience(
  audience: Audience,
  m: { status: MediaStatus | string; moderation_state: ModerationState | string; user_id: string },
): boolean {
  if (audience.kind === 'feed') return publiclyVisibleMedia(m);
  return audience.isAdmin || publiclyVisibleMedia(m) || m.user_id === audience.userId;
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
