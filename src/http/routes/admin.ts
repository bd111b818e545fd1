import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import { AppError } from '../../shared/errors.js';
import { statusChanged } from '../../events/media-changes.js';
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
      async (req) => {
        const p = principalOf(req);
        if (!p.isAdmin) throw new AppError('forbidden', 'an admin key is required');
        const failed = await ctx.queue.listFailed(req.query.limit * 4);
        const mediaIds = failed.map((f) => (f.data as { media_id?: string }).media_id).filter((x): x is string => !!x);
        const mine = new Set(
          mediaIds.length
            ? (
                await ctx.database.db.selectFrom('mediaassets').select('id').where('tenant_id', '=', p.tenantId).where('id', 'in', mediaIds).execute()
              ).map((r) => r.id)
            : [],
        );
        return {
          items: failed
            .filter((f) => mine.has((f.data as { media_id?: string }).media_id ?? ''))
            .slice(0, req.query.limit)
            .map((f) => ({
              id: f.id,
              name: f.name,
              media_id: (f.data as { media_id?: string }).media_id ?? null,
              attempts: f.attempts,
              error: f.error,
              failed_at: f.failedAt,
            })),
        };
      },
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
        const p = principalOf(req);
        if (!p.isAdmin) throw new AppError('forbidden', 'an admin key is required');
        const job = (await ctx.queue.listFailed(1000)).find((f) => f.id === req.params.job_id);
        const mediaId = (job?.data as { media_id?: string } | undefined)?.media_id;
        const owned = mediaId
          ? await ctx.database.db.selectFrom('mediaassets').select('id').where('tenant_id', '=', p.tenantId).where('id', '=', mediaId).executeTakeFirst()
          : undefined;
        if (!job || !owned) throw new AppError('not-found', 'failed job not found');
        if (!(await ctx.queue.retry(job.id))) throw new AppError('conflict', 'the job is no longer failed');
        const requeued = await ctx.database.db
          .updateTable('mediaassets')
          .set({ status: 'queued', error_code: null, error_reason: null, updated_at: new Date().toISOString() })
          .where('id', '=', mediaId!)
          .where('status', '=', 'error')
          .executeTakeFirst();
        if (Number(requeued.numUpdatedRows) > 0) await statusChanged(ctx.database.db, ctx.changes, { tenantId: p.tenantId, mediaId: mediaId!, status: 'queued' });
        return reply.code(202).send({ id: job.id, retried: true });
      },
    );
  };
}
