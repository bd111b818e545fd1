/** Who a request acts as: always one tenant, and one user within it. */
export interface Principal {
  tenantId: string;
  keyId: string;
  /** The user the request acts for (the key's user, or the one an admin key names). */
  userId: string;
  isAdmin: boolean;
}

/** Admins see their whole tenant; other keys see only their own user's uploads and media. */
export function ownerScope(p: Principal): { tenantId: string; userId?: string } {
  return p.isAdmin ? { tenantId: p.tenantId } : { tenantId: p.tenantId, userId: p.userId };
}
