import type { RecommendationEngine } from './engine.js';

/**
 * An engine behind an HTTP endpoint: POST {tenant_id, media_id | user_id, limit} as JSON,
 * answered with {ids: [...]} (best first). Any failure or a slow answer throws; the caller falls
 * back to the default engine.
 */
export class ExternalRecommendationEngine implements RecommendationEngine {
  readonly name = 'external';

  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
  ) {}

  related(tenantId: string, mediaId: string, limit: number): Promise<string[]> {
    return this.ask({ tenant_id: tenantId, media_id: mediaId, limit });
  }

  forUser(tenantId: string, userId: string, limit: number): Promise<string[]> {
    return this.ask({ tenant_id: tenantId, user_id: userId, limit });
  }

  private async ask(body: Record<string, unknown>): Promise<string[]> {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok) throw new Error(`recommender answered ${res.status}`);
    const data = (await res.json()) as { ids?: unknown };
    if (!Array.isArray(data.ids) || !data.ids.every((id) => typeof id === 'string' && id.length <= 64)) {
      throw new Error('recommender answer has no ids array of strings');
    }
    return (data.ids as string[]).slice(0, Number(body.limit));
  }
}
