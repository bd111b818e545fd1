import { AppError } from '../shared/errors.js';
import type { Principal } from '../tenancy/principal.js';

/** The one "owner or admin" rule: who may change a media, and see it while moderation hides it. */
export function isOwnerOrAdmin(p: Pick<Principal, 'isAdmin' | 'userId'>, ownerUserId: string): boolean {
  return p.isAdmin || p.userId === ownerUserId;
}

/** Throws `forbidden` unless the principal owns the media or holds an admin key; `action` completes "may …". */
export function assertOwnerOrAdmin(p: Pick<Principal, 'isAdmin' | 'userId'>, ownerUserId: string, action: string): void {
  if (!isOwnerOrAdmin(p, ownerUserId)) throw new AppError('forbidden', `only the owner or an admin key may ${action}`);
}
