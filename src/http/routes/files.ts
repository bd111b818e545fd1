import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import { contentTypeFor, type ServableFile } from '../../media/delivery.js';
import { principalOf } from '../auth.js';
import { problemBody, sendProblem } from '../problem-details.js';
import { problemResponses } from '../schemas.js';
import { sendStream } from '../send-stream.js';

/** The caching each file answer asked for, read when the static plugin sets its headers. */
const cachingOf = new WeakMap<FastifyRequest, string>();

/** Headers of a stored file sent with sendFile (the static plugin's setHeaders): our types and the route's caching. */
export function storedFileHeaders(reply: FastifyReply, file: string): void {
  reply.header('content-type', contentTypeFor(file));
  reply.header('cache-control', cachingOf.get(reply.request) ?? 'no-store');
}

/**
 * Answers with a stored file the way its store chose: a local file is sent by the static plugin
 * (Range, ETag; its type and caching set by storedFileHeaders), a stream goes out with the same
 * headers (send-stream.ts), and a redirect points at a signed URL that carries the type and
 * caching itself, so the redirect is not kept.
 */
async function sendStored(reply: FastifyReply, file: ServableFile): Promise<FastifyReply> {
  const { how } = file;
  if (how.kind === 'file') {
    cachingOf.set(reply.request, file.cacheControl);
    return reply.sendFile(how.relative, how.root, { cacheControl: false, dotfiles: 'deny', acceptRanges: true, etag: true, lastModified: true });
  }
  if (how.kind === 'redirect') {
    reply.header('cache-control', 'no-store');
    return reply.redirect(how.url, 302);
  }
  return sendStream(reply, how, file);
}

/**
 * An unsatisfiable Range reaches Fastify as the static plugin's 416 error, which lost the size the
 * client needs: it answers 416 with the Content-Range that names the size. Anything else goes on to the
 * app's error handler.
 */
function answerUnsatisfiableRange(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { headers?: Record<string, string> }, req, reply) => {
    if (err.statusCode !== 416) throw err;
    const contentRange = err.headers?.['Content-Range'];
    if (contentRange) reply.header('content-range', contentRange);
    return sendProblem(reply, problemBody('range-not-satisfiable', req, 'the requested range lies outside the file'));
  });
}

/** The base URL clients reach the server under (the configured one, or the request's). */
function baseUrlOf(ctx: AppContext, req: { protocol: string; host: string }): string {
  return ctx.settings.publicBaseUrl || `${req.protocol}://${req.host}`;
}

/** Unauthenticated playback: the signed token in the path is the credential. */
export function playbackRoutes(ctx: AppContext) {
  return async (app: FastifyInstance) => {
    answerUnsatisfiableRange(app);
    app.addHook('onSend', async (_req, reply) => {
      reply.header('access-control-allow-origin', '*');
      reply.header('access-control-expose-headers', 'Content-Length, Content-Range, ETag');
      reply.header('cross-origin-resource-policy', 'cross-origin');
    });
    app.get<{ Params: { token: string; '*': string } }>('/play/:token/*', { config: { notCounted: true }, schema: { hide: true } }, async (req, reply) => {
      const file = await ctx.delivery.resolvePlayback(req.params.token, req.params['*']);
      return sendStored(reply, file);
    });
  };
}

export function mediaFileRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    answerUnsatisfiableRange(app);
    app.get(
      '/media/:media_id/package',
      {
        schema: {
          tags: ['media'],
          summary: 'Signed, expiring URLs of every artifact (HLS master, DASH MPD, WebM, WebP, thumbnails, sprite, poster, spectrogram, cover art)',
          params: Type.Object({ media_id: Type.String({ maxLength: 64 }) }),
          response: {
            200: Type.Object({
              media_id: Type.String(),
              status: Type.String(),
              expires_at: Type.String({ format: 'date-time' }),
              hls: Type.Union([Type.String(), Type.Null()]),
              dash: Type.Union([Type.String(), Type.Null()]),
              webm: Type.Union([Type.String(), Type.Null()]),
              poster: Type.Object({ jpeg: Type.Union([Type.String(), Type.Null()]), webp: Type.Union([Type.String(), Type.Null()]) }),
              thumbnails: Type.Array(Type.String()),
              sprite: Type.Union([Type.Object({ image: Type.String(), vtt: Type.String() }), Type.Null()]),
              webp: Type.Union([Type.String(), Type.Null()]),
              spectrogram: Type.Union([Type.String(), Type.Null()]),
              cover: Type.Union([Type.Object({ jpeg: Type.Union([Type.String(), Type.Null()]), webp: Type.Union([Type.String(), Type.Null()]) }), Type.Null()]),
              captions: Type.Array(Type.Object({ language: Type.String(), label: Type.String(), kind: Type.String(), url: Type.String() })),
              pending: Type.Array(Type.String()),
            }),
            ...problemResponses(),
          },
        },
      },
      async (req) => {
        const p = principalOf(req);
        const pkg = await ctx.delivery.package(p, req.params.media_id, baseUrlOf(ctx, req));
        // Fetching a package is a view: the recommended feed learns from it.
        await ctx.discovery.recommendations.recordView(p, req.params.media_id);
        return pkg;
      },
    );

    app.get(
      '/media/:media_id/files/*',
      {
        schema: {
          tags: ['media'],
          summary: 'A stored file of a media (derived files; the original for its owner or an admin)',
          params: Type.Object({ media_id: Type.String({ maxLength: 64 }), '*': Type.String() }),
        },
      },
      async (req, reply) => {
        const file = await ctx.delivery.resolveForApi(principalOf(req), req.params.media_id, req.params['*']);
        return sendStored(reply, file);
      },
    );
  };
}
