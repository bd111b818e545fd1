import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import { principalOf } from '../auth.js';
import { problemResponses } from '../schemas.js';

/** Who am I, and the job queue's failures. Queue endpoints need an admin key. */
export function adminRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/me',
      {
        schema: {
          tags: ['tenancy'],
          summary: "The tenant and user this key acts as, and the tenant's storage quota",
          response: {
            200: Type.Object({
              tenant_id: Type.String(),
              tenant_name: Type.String(),
              user_id: Type.String(),
              key_id: Type.String(),
              admin: Type.Boolean(),
              quota_bytes: Type.Union([Type.Integer(), Type.Null()], { description: "The tenant's storage quota; null: none" }),
              usage_bytes: Type.Integer({ description: "What counts against it: the tenant's media originals and the declared size of its open uploads" }),
            }),
            ...problemResponses(),
          },
        },
      },
      async (req) => {
        const p = principalOf(req);
        const [tenant, storage] = await Promise.all([ctx.tenancy.getTenant(p.tenantId), ctx.tenancy.storageUsage(p.tenantId)]);
        return { tenant_id: p.tenantId, tenant_name: tenant?.name ?? '', user_id: p.userId, key_id: p.keyId, admin: p.isAdmin, ...storage };
      },
    );

    app.get(
      '/admin/jobs/failed',
      {
        schema: {
          tags: ['admin'],
          summary: "Failed processing jobs of this tenant's media",
          querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }),
          response: {
            200: Type.Object({
              items: Type.Array(
                Type.Object({
                  id: Type.String(),
                  name: Type.String(),
                  media_id: Type.Union([Type.String(), Type.Null()]),
                  attempts: Type.Integer(),
                  error: Type.String(),
                  failed_at: Type.Union([Type.String(), Type.Null()]),
                }),
              ),
            }),
            ...problemResponses(403),
          },
        },
      },
      async (req) => ({ items: await ctx.failedJobs.list(principalOf(req), req.query.limit) }),
    );

    app.post(
      '/admin/jobs/:job_id/retry',
      {
        schema: {
          tags: ['admin'],
          summary: 'Retry a failed job',
          params: Type.Object({ job_id: Type.String({ maxLength: 200 }) }),
          response: { 202: Type.Object({ id: Type.String(), retried: Type.Boolean() }), ...problemResponses(403) },
        },
      },
      async (req, reply) => {
        await ctx.failedJobs.retry(principalOf(req), req.params.job_id);
        return reply.code(202).send({ id: req.params.job_id, retried: true });
      },
    );
  };
}
