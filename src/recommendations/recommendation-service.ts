import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/schema.js';
import { notFound } from '../shared/errors.js';
import { assertModerationVisible } from '../access/visibility.js';
import { isOwnerOrAdmin } from '../access/ownership.js';
import { publiclyVisible } from '../access/visibility-sql.js';
import type { Principal } from '../tenancy/principal.js';
import type { RecommendationEngine } from './engine.js';

/** Engines are asked for more than a page, since ids that are not visible are dropped after. */
const overAsk = (limit: number) => limit * 2 + 10;

/**
 * Asks the configured engine (an external one when RECOMMENDER_URL is set, with the default
 * engine as fallback on any error or timeout) and keeps only media of the caller's tenant that
 * anyone may see. Also records views, which the default engine's user profiles read.
 */
export class RecommendationService {
  constructor(
    private readonly db: Db,
    private readonly fallback: RecommendationEngine,
    private readonly primary: RecommendationEngine | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Media similar to one the caller can see: 404 for a media of another tenant or none (or one
   * not ready, but to its owner and admins), `moderation-hidden` for a held one, as its record.
   */
  async related(p: Principal, mediaId: string, limit: number): Promise<string[]> {
    const seed = await this.db
      .selectFrom('mediaassets as m')
      .select(['m.id', 'm.user_id', 'm.status', 'm.moderation_state'])
      .where('m.tenant_id', '=', p.tenantId)
      .where('m.id', '=', mediaId)
      .executeTakeFirst();
    if (!seed) throw notFound('media');
    assertModerationVisible(p, seed);
    if (seed.status !== 'ready' && !isOwnerOrAdmin(p, seed.user_id)) throw notFound('media');
    const ids = await this.ask('related', (e) => e.related(p.tenantId, mediaId, overAsk(limit)));
    return this.visible(
      p.tenantId,
      ids.filter((id) => id !== mediaId),
      limit,
    );
  }

  /** Ranked media for the caller's user (empty when no engine knows anything about them). */
  async forUser(p: Principal, limit: number): Promise<string[]> {
    const ids = await this.ask('forUser', (e) => e.forUser(p.tenantId, p.userId, overAsk(limit)));
    return this.visible(p.tenantId, ids, limit);
  }

  async recordView(p: Principal, mediaId: string): Promise<void> {
    const at = nowIso();
    await this.db
      .insertInto('media_views')
      .values({ tenant_id: p.tenantId, user_id: p.userId, media_id: mediaId, view_count: 1, first_viewed_at: at, last_viewed_at: at })
      .onConflict((oc) =>
        oc.columns(['tenant_id', 'user_id', 'media_id']).doUpdateSet((eb) => ({
          view_count: eb('media_views.view_count', '+', 1),
          last_viewed_at: eb.ref('excluded.last_viewed_at'),
        })),
      )
      .execute();
  }

  private async ask(what: string, call: (e: RecommendationEngine) => Promise<string[]>): Promise<string[]> {
    if (this.primary) {
      try {
        return await call(this.primary);
      } catch (err) {
        this.log.warn({ err, engine: this.primary.name, call: what }, 'recommendation engine failed; using the default engine');
      }
    }
    return call(this.fallback);
  }

  /** The ids that are media of the tenant anyone may see, in the engine's order. */
  private async visible(tenantId: string, ids: string[], limit: number): Promise<string[]> {
    const unique = [...new Set(ids)].slice(0, overAsk(limit));
    if (!unique.length) return [];
    const rows = await this.db
      .selectFrom('mediaassets as m')
      .select('m.id')
      .where('m.tenant_id', '=', tenantId)
      .where('m.id', 'in', unique)
      .where(publiclyVisible('m'))
      .execute();
    const ok = new Set(rows.map((r) => r.id));
    return unique.filter((id) => ok.has(id)).slice(0, limit);
  }
}
