import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../../context.js';
import { principalOf } from '../auth.js';
import { problemResponses } from '../schemas.js';

const MediaParams = Type.Object({ media_id: Type.String({ minLength: 1, maxLength: 64 }) });

export function mediaRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/media',
      {
        schema: {
          tags: ['media'],
          summary: "The caller's media, newest first (an admin key: the whole tenant, or ?user_id=)",
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: 512 })),
            user_id: Type.Optional(Type.String({ maxLength: 64 })),
            status: Type.Optional(Type.Union([Type.Literal('queued'), Type.Literal('processing'), Type.Literal('ready'), Type.Literal('error')])),
          }),
          response: {
            200: Type.Object({ items: Type.Array(Type.Ref('Media')), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
            ...problemResponses(400, 403),
          },
        },
      },
      async (req) =>
        ctx.media.list(principalOf(req), {
          limit: req.query.limit,
          ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
          ...(req.query.user_id ? { userId: req.query.user_id } : {}),
          ...(req.query.status ? { status: req.query.status } : {}),
        }),
    );

    app.get(
      '/media/:media_id',
      {
        schema: {
          tags: ['media'],
          summary: 'One media record with its status',
          params: MediaParams,
          response: { 200: Type.Ref('Media'), ...problemResponses() },
        },
      },
      async (req) => ctx.media.get(principalOf(req), req.params.media_id),
    );

    app.post(
      '/media/:media_id/reprocess',
      {
        schema: {
          tags: ['media'],
          summary: 'Run the processing pipeline again with the current settings; outputs are swapped in atomically',
          params: MediaParams,
          response: { 202: Type.Ref('Media'), ...problemResponses(403, 409) },
        },
      },
      async (req, reply) => reply.code(202).send(await ctx.media.reprocess(principalOf(req), req.params.media_id)),
    );

    app.delete(
      '/media/:media_id',
      {
        schema: {
          tags: ['media'],
          summary: 'Delete a media record and every stored file of it',
          params: MediaParams,
          response: { 204: Type.Null(), ...problemResponses(403) },
        },
      },
      async (req, reply) => {
        await ctx.media.delete(principalOf(req), req.params.media_id);
        return reply.code(204).send(null);
      },
    );
  };
}
