/**
 * A recommendation engine ranks media ids of one tenant. Engines may return ids that are not
 * visible (or not of the tenant, for an external engine): the caller filters them.
 */
export interface RecommendationEngine {
  readonly name: string;
  /** Media similar to a given media, best first (the seed itself excluded). */
  related(tenantId: string, mediaId: string, limit: number): Promise<string[]>;
  /** Media for a user, best first; empty when the engine knows nothing about the user. */
  forUser(tenantId: string, userId: string, limit: number): Promise<string[]>;
}
