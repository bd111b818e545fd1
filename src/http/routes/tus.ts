import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../context.js';
import { AppError } from '../../errors.js';
import { parseUploadChecksum, tusContext, TUS_CHECKSUM_ALGORITHMS } from '../../uploads/tus.js';
import { principalOf } from '../auth.js';

const TUS_METHODS = ['POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'GET'] as const;

/**
 * Mounts the tus server. Fastify authenticates; tus gets the raw request and response
 * (the reply is hijacked so nothing parses or buffers the body).
 */
export function tusRoutes(ctx: AppContext) {
  return async (app: FastifyInstance) => {
    app.addContentTypeParser('application/offset+octet-stream', (_req, _payload, done) => done(null));

    const handler = async (req: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
      const id = (req.params as { '*': string | undefined })['*'];
      if (req.method === 'OPTIONS') {
        reply.raw.setHeader('Tus-Checksum-Algorithm', TUS_CHECKSUM_ALGORITHMS.join(','));
        reply.hijack();
        await ctx.tus.server.handle(req.raw, reply.raw);
        return;
      }
      const principal = principalOf(req);
      if (id && (req.method === 'HEAD' || req.method === 'PATCH')) {
        const session = await ctx.tus.findOwned(principal, id);
        if (!session) throw new AppError('not-found', 'upload not found');
        if (session.state === 'completed' && req.method === 'HEAD') {
          // The bytes have moved into the media's folder: report the upload as whole.
          return reply
            .code(200)
            .headers({
              'tus-resumable': '1.0.0',
              'upload-offset': String(session.total_size),
              'upload-length': String(session.total_size),
              'cache-control': 'no-store',
              'qasar-media-id': session.media_id ?? '',
            })
            .send();
        }
        if (session.state !== 'open') throw new AppError('not-found', `upload is ${session.state}`);
        if (req.method === 'PATCH') await ctx.tus.touch(id);
      }
      const checksum = parseUploadChecksum(req.headers['upload-checksum'] as string | undefined);
      reply.hijack();
      await tusContext.run({ principal, ...(checksum ? { checksum } : {}) }, () => ctx.tus.server.handle(req.raw, reply.raw));
    };

    app.route({ method: [...TUS_METHODS], url: '/tus', handler, schema: { hide: true } });
    app.route({ method: [...TUS_METHODS], url: '/tus/*', handler, schema: { hide: true } });
  };
}
