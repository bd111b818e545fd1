import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError } from '../shared/errors.js';

export interface RateLimitOptions {
  max: number;
  windowMs: number;
  /** Shared by every API process when set; else each process counts alone. */
  redis: Redis | undefined;
  redisPrefix: string;
}

/** Counts one request in its bucket; throws 429 `rate-limited` when the bucket is over its limit. */
export type CountRequest = (req: FastifyRequest) => Promise<void>;

/**
 * Without Redis, each kind of bucket has its own in-memory LRU, so that traffic from many
 * addresses cannot push the keys' buckets out (and reset their counts). Keys are few (one
 * bucket per API key in use); addresses can be many, and losing one only resets that address.
 */
const KEY_BUCKETS = 100_000;
const ADDRESS_BUCKETS = 100_000;

/**
 * The bucket of a request: the API key it authenticated with (all X-Qasar-User traffic of an
 * admin key included), or, until authentication succeeded, its client address (IPv6 by /64).
 * Never the token the client sent: made-up tokens would each get a fresh bucket.
 */
function bucketOf(req: FastifyRequest): string {
  return req.principal ? `key:${req.principal.keyId}` : `ip:${normalizeIP(req.ip)}`;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the routes of a scope whose requests are counted once authenticated (see limitByKey). */
    countedByKey?: boolean;
    /**
     * Never counted: signed playback (a player fetches many segments) and liveness, which a proxy
     * polls from the address the clients behind it share. (`/readyz` is counted: it runs probes
     * and looks up admin keys.)
     */
    notCounted?: boolean;
  }
}

/**
 * Request rate limits. Routes without authentication count per client address here; routes of
 * a scope given to limitByKey count per API key after authentication. Playback URLs are not
 * counted: a token in the path is a capability handed to players, whose segment fetches would
 * otherwise count against whoever minted it (a CDN or the proxy is the place to limit them).
 * A store that fails (Redis down) lets requests through rather than turning an outage of the
 * counter into failed requests. Returns the counters for limitByKey, or nothing when off.
 */
export async function registerRateLimit(app: FastifyInstance, opts: RateLimitOptions): Promise<{ byKey: CountRequest; byAddress: CountRequest } | undefined> {
  if (opts.max <= 0) return undefined;
  await app.register(rateLimit, {
    global: false,
    max: opts.max,
    timeWindow: opts.windowMs,
    keyGenerator: bucketOf,
    skipOnError: true,
    ...(opts.redis ? { redis: opts.redis, nameSpace: `${opts.redisPrefix}:rate-limit:` } : {}),
  });
  // Redis expires buckets itself: one store holds both kinds (the prefix of bucketOf keeps them apart).
  const counter = (cache: number): CountRequest => {
    const check = opts.redis ? app.createRateLimit() : app.createRateLimit({ cache } as Parameters<typeof app.createRateLimit>[0]);
    return async (req) => {
      // While Redis is away, skipOnError would let the request through only after the client's
      // retries: let it through at once.
      if (opts.redis && opts.redis.status !== 'ready') return;
      const r = await check(req);
      if (r.isAllowed || !r.isExceeded) return;
      const retryAfter = Math.max(1, r.ttlInSeconds);
      throw new AppError('rate-limited', `more than ${r.max} requests in ${Math.round(opts.windowMs / 1000)} s; retry in ${retryAfter} s`, {
        retry_after: retryAfter,
      });
    };
  };
  const byKey = counter(KEY_BUCKETS);
  const byAddress = counter(ADDRESS_BUCKETS);
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config?.countedByKey || req.routeOptions.config?.notCounted) return;
    await byAddress(req);
  });
  return { byKey, byAddress };
}

/**
 * Counts the requests of `api` (a scope whose routes authenticate with requireApiKey, which must
 * run first) by their key. A request that fails to authenticate is counted by its address
 * (byAddress, given to requireApiKey), so made-up keys are limited like requests without any.
 */
export function limitByKey(api: FastifyInstance, count: { byKey: CountRequest; byAddress: CountRequest }): void {
  api.addHook('onRoute', (route) => {
    route.config = { ...route.config, countedByKey: true };
  });
  // CORS preflights are let through without a key: they count by address.
  api.addHook('onRequest', async (req) => {
    await (req.principal ? count.byKey(req) : count.byAddress(req));
  });
}
