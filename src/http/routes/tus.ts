import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../app-context.js';
import { AppError } from '../../shared/errors.js';
import { parseUploadChecksum, tusContext, TUS_CHECKSUM_ALGORITHMS } from '../../uploads/tus.js';
import { principalOf } from '../auth.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Per-route options of @fastify/cors, which reads them from the route's config. */
    cors?: Partial<import('@fastify/cors').FastifyCorsOptions>;
  }
}

const TUS_METHODS = ['POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS', 'GET'] as const;

/**
 * Hands the raw response to tus. Headers Fastify would have added (the request id, CORS
 * headers set in onRequest) are copied onto it first: a hijacked reply skips onSend.
 */
function hijack(req: FastifyRequest, reply: FastifyReply): void {
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) reply.raw.setHeader(name, value);
  }
  reply.raw.setHeader('x-request-id', String(req.id));
  reply.hijack();
}

function creationHeaders(req: FastifyRequest): { length?: string; deferLength?: string; metadata?: string } {
  const h = (name: string) => {
    const v = req.headers[name];
    return typeof v === 'string' ? v : undefined;
  };
  const length = h('upload-length');
  const deferLength = h('upload-defer-length');
  const metadata = h('upload-metadata');
  return {
    ...(length !== undefined ? { length } : {}),
    ...(deferLength !== undefined ? { deferLength } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
  };
}

/**
 * Mounts the tus server. Fastify authenticates; tus gets the raw request and response
 * (the reply is hijacked so nothing parses or buffers the body).
 */
export function tusRoutes(ctx: AppContext) {
  return async (app: FastifyInstance) => {
    app.addContentTypeParser('application/offset+octet-stream', (_req, _payload, done) => done(null));
    // Every tus response but OPTIONS carries Tus-Resumable, the ones Fastify sends (401, 404) too.
    app.addHook('onSend', async (req, reply) => {
      if (req.method !== 'OPTIONS') reply.header('tus-resumable', '1.0.0');
    });

    const handler = async (req: FastifyRequest, reply: FastifyReply) => {
      const id = (req.params as { '*': string | undefined })['*'];
      if (req.method === 'OPTIONS') {
        reply.raw.setHeader('Tus-Checksum-Algorithm', TUS_CHECKSUM_ALGORITHMS.join(','));
        hijack(req, reply);
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
              'upload-offset': String(session.total_size),
              'upload-length': String(session.total_size),
              'cache-control': 'no-store',
              'qasar-media-id': session.media_id ?? '',
            })
            .send();
        }
        if (session.state !== 'open') throw new AppError('not-found', `upload is ${session.state}`);
      }
      const checksum = parseUploadChecksum(req.headers['upload-checksum'] as string | undefined);
      const reservedId = !id && req.method === 'POST' ? await ctx.tus.reserve(principal, creationHeaders(req)) : undefined;
      if (id && req.method === 'PATCH') {
        await ctx.tus.assertMayWrite(id);
        await ctx.tus.touch(id);
      }
      hijack(req, reply);
      const tusCtx = {
        principal,
        ...(checksum ? { checksum } : {}),
        ...(req.bodyDeadline ? { deadline: req.bodyDeadline } : {}),
        ...(reservedId ? { reservedId } : {}),
      };
      try {
        await tusContext.run(tusCtx, () => ctx.tus.server.handle(req.raw, reply.raw));
      } finally {
        if (reservedId) await ctx.tus.dropUnused(reservedId).catch((err) => req.log.warn({ err }, 'could not remove a refused tus upload'));
      }
    };

    // When CORS is on, @fastify/cors answers every OPTIONS itself, and refuses one without
    // Origin (a tus client discovering the server) with 400. Here it only adds its headers
    // and lets tus answer, with Tus-Version, Tus-Extension and the rest.
    const config = { cors: { strictPreflight: false, preflightContinue: true } };
    app.route({ method: [...TUS_METHODS], url: '/tus', handler, config, schema: { hide: true } });
    app.route({ method: [...TUS_METHODS], url: '/tus/*', handler, config, schema: { hide: true } });
  };
}
