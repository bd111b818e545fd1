import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.js';
import { PROBLEMS, problemType, type ProblemSlug } from '../../errors.js';
import { problemBody, sendProblem } from '../problem-details.js';

/** Unauthenticated routes: liveness, readiness and the documentation of problem types. */
export function publicRoutes(ctx: AppContext) {
  return async (app: FastifyInstance) => {
    app.get('/healthz', { schema: { tags: ['health'], summary: 'Alive' } }, async () => ({ status: 'ok' }));

    app.get('/readyz', { schema: { tags: ['health'], summary: 'Database, queue and storage reachable' } }, async (_req, reply) => {
      const checks = await ctx.readiness();
      const ok = Object.values(checks).every((c) => c.ok);
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks });
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
