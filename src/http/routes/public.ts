import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppContext } from '../app-context.js';
import { PROBLEMS, problemType, type ProblemSlug } from '../../shared/errors.js';
import { bearerToken } from '../auth.js';
import { problemBody, sendProblem } from '../problem-details.js';

/** Whether the request carries a valid admin key; never throws (the database may be what is down). */
async function isAdminRequest(ctx: AppContext, req: FastifyRequest): Promise<boolean> {
  const token = bearerToken(req);
  if (!token) return false;
  try {
    return (await ctx.tenancy.authenticate(token, undefined)).isAdmin;
  } catch {
    return false;
  }
}

/** Unauthenticated routes: liveness, readiness and the documentation of problem types. */
export function publicRoutes(ctx: AppContext) {
  return async (app: FastifyInstance) => {
    app.get('/healthz', { config: { notCounted: true }, schema: { tags: ['health'], summary: 'Alive' } }, async () => ({ status: 'ok' }));

    // Anyone may ask whether each dependency is ready; why one is not (addresses, driver messages)
    // goes to the logs and to admin keys only.
    app.get('/readyz', { schema: { tags: ['health'], summary: 'Database, queue and storage reachable (the reasons for admin keys)' } }, async (req, reply) => {
      const checks = await ctx.readiness();
      const ok = Object.values(checks).every((c) => c.ok);
      const failed = Object.fromEntries(
        Object.entries(checks)
          .filter(([, c]) => !c.ok)
          .map(([name, c]) => [name, c.error]),
      );
      if (!ok) req.log.warn({ failed }, 'not ready');
      const detailed = !ok && (await isAdminRequest(ctx, req));
      const shown = Object.fromEntries(Object.entries(checks).map(([name, c]) => [name, detailed ? c : { ok: c.ok }]));
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks: shown });
    });

    app.get('/problems', { schema: { tags: ['health'], summary: 'Every problem type the API returns' } }, async () =>
      Object.entries(PROBLEMS).map(([slug, p]) => ({ type: problemType(slug as ProblemSlug), ...p })),
    );

    app.get<{ Params: { slug: string } }>('/problems/:slug', { schema: { hide: true } }, async (req, reply) => {
      const p = PROBLEMS[req.params.slug as ProblemSlug];
      if (!p) return sendProblem(reply, problemBody('not-found', req, 'no such problem type'));
      return { type: problemType(req.params.slug as ProblemSlug), ...p };
    });
  };
}
