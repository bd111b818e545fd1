import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.js';
import type { Principal } from '../tenancy/principal.js';
import type { TenancyService } from '../tenancy/tenancy-service.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export const ACT_AS_HEADER = 'x-qasar-user';

export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

/**
 * Adds authentication to every route registered in `app` (an encapsulated scope): a bearer
 * API key, and for admin keys an optional X-Qasar-User header naming the user to act for.
 * CORS preflights carry no credentials and are let through. A failed authentication is passed
 * to `countFailure` first (the rate limit of the client's address), which may throw instead.
 */
export function requireApiKey(app: FastifyInstance, tenancy: TenancyService, countFailure?: (req: FastifyRequest) => Promise<void>): void {
  app.addHook('onRequest', async (req) => {
    if (req.method === 'OPTIONS') return;
    const actAs = req.headers[ACT_AS_HEADER];
    try {
      req.principal = await tenancy.authenticate(bearerToken(req), typeof actAs === 'string' && actAs ? actAs : undefined);
    } catch (err) {
      await countFailure?.(req);
      throw err;
    }
  });
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new AppError('unauthenticated');
  return req.principal;
}
