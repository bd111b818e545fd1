import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';

export interface RateLimitOptions {
  max: number;
  windowMs: number;
  /** Shared by every API process when set; else each process counts alone. */
  redis: Redis | undefined;
  redisPrefix: string;
}

/**
 * The bucket of a request: its API key (a hash of the bearer token, so nothing secret is kept
 * and no database lookup is needed before counting), or its client address when it has none.
 */
function bucketOf(req: FastifyRequest): string {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (m) return `key:${createHash('sha256').update(m[1]!).digest('base64url').slice(0, 22)}`;
  return `ip:${req.ip}`;
}

/**
 * Request rate limits per API key. Playback URLs are not counted: a token in the path is a
 * capability handed to players, whose segment fetches would otherwise count against whoever
 * minted it (a CDN or the proxy is the place to limit them). A store that fails (Redis down) lets
 * requests through rather than turning an outage of the counter into failed requests.
 */
export async function registerRateLimit(app: FastifyInstance, opts: RateLimitOptions): Promise<void> {
  if (opts.max <= 0) return;
  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    max: opts.max,
    timeWindow: opts.windowMs,
    keyGenerator: bucketOf,
    allowList: (req) => req.url.startsWith('/play/'),
    skipOnError: true,
    ...(opts.redis ? { redis: opts.redis, nameSpace: `${opts.redisPrefix}:rate-limit:` } : {}),
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    errorResponseBuilder: (_req, ctx) =>
      new AppError('rate-limited', `more than ${ctx.max} requests in ${Math.round(opts.windowMs / 1000)} s; retry in ${ctx.after}`, {
        retry_after: Math.max(1, Math.ceil(ctx.ttl / 1000)),
      }),
  });
}
