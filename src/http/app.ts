import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AppContext } from './app-context.js';
import { requireApiKey } from './auth.js';
import { watchBodies } from './body-watchdog.js';
import { answerClientError, answerFrameworkError, registerProblemHandlers } from './problem-details.js';
import { limitByKey, registerRateLimit } from './rate-limit.js';
import { adminRoutes } from './routes/admin.js';
import { captionRoutes } from './routes/captions.js';
import { mediaFileRoutes, playbackRoutes, storedFileHeaders } from './routes/files.js';
import { labelRoutes } from './routes/labels.js';
import { mediaRoutes } from './routes/media.js';
import { moderationRoutes } from './routes/moderation.js';
import { searchRoutes } from './routes/search.js';
import { publicRoutes } from './routes/public.js';
import { tusRoutes } from './routes/tus.js';
import { uploadRoutes } from './routes/uploads.js';
import { AssetLabelSchema, MediaSchema, ProblemSchema, SessionStatusSchema } from './schemas.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Builds the HTTP app on a context. Tests call this and use `app.inject()`. */
export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const { settings } = ctx;
  const app = Fastify({
    loggerInstance: ctx.log as FastifyBaseLogger,
    // Fastify also accepts a hop count here, which its types omit.
    trustProxy: settings.trustProxy as boolean | string[],
    bodyLimit: settings.bodyLimit,
    requestIdHeader: false,
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    routerOptions: { ignoreTrailingSlash: true },
    // Bodies are timed by watchBodies (idle and minimum rate), not as a whole: a large chunk on a
    // slow link is legitimate. Headers are bounded here; Node checks them every checking interval.
    requestTimeout: 0,
    http: {
      maxHeaderSize: settings.requestMaxHeaderSize,
      headersTimeout: settings.requestHeadersTimeout,
      connectionsCheckingInterval: Math.max(1000, Math.min(30_000, Math.floor(settings.requestHeadersTimeout / 2))),
    },
    // Fastify's own answers (an undecodable URL, a malformed or oversized request) become problems too.
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  registerProblemHandlers(app);
  watchBodies(app, { idleMs: settings.requestIdleTimeout, minRate: settings.requestMinRate, windowMs: settings.requestMinRateWindow });
  const rateLimits = await registerRateLimit(app, {
    max: settings.rateLimitMax,
    windowMs: settings.rateLimitWindow,
    redis: ctx.redis,
    redisPrefix: settings.redisPrefix,
  });

  if (settings.corsOrigins.length) {
    await app.register(cors, {
      origin: settings.corsOrigins.includes('*') ? true : settings.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      allowedHeaders: [
        'Authorization',
        'Content-Type',
        'Content-Digest',
        'X-Chunk-Checksum',
        'X-Request-Id',
        'X-Qasar-User',
        'Tus-Resumable',
        'Upload-Length',
        'Upload-Offset',
        'Upload-Metadata',
        'Upload-Checksum',
        'Upload-Concat',
        'Upload-Defer-Length',
      ],
      exposedHeaders: ['Location', 'X-Request-Id', 'Upload-Offset', 'Upload-Length', 'Tus-Resumable', 'Upload-Expires', 'Qasar-Media-Id'],
      maxAge: 600,
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Qasar Media Server API',
        version: '1',
        description: 'Resumable uploads (chunked sessions and tus 1.0), media records and processing. Errors are RFC 9457 problem+json.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'A per-tenant API key' } } },
      security: [{ apiKey: [] }],
    },
  });
  app.addSchema(ProblemSchema);
  app.addSchema({ ...MediaSchema, properties: { ...MediaSchema.properties, labels: { type: 'array', items: AssetLabelSchema } } });
  app.addSchema(SessionStatusSchema);
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // Local files are sent with reply.sendFile (Range, ETag), from the root the store names for each;
  // the routes decide which file and who may see it.
  await app.register(fastifyStatic, {
    serve: false,
    // Our own types (.m4s is video/mp4, playlists as players expect) and the caching the file
    // route chose (never longer than a playback token lives).
    setHeaders: storedFileHeaders,
  });
  await app.register(publicRoutes(ctx));
  await app.register(playbackRoutes(ctx));
  await app.register(
    async (api) => {
      requireApiKey(api, ctx.tenancy, rateLimits?.byAddress);
      if (rateLimits) limitByKey(api, rateLimits);
      await api.register(uploadRoutes(ctx));
      await api.register(tusRoutes(ctx));
      await api.register(mediaRoutes(ctx));
      await api.register(captionRoutes(ctx));
      await api.register(mediaFileRoutes(ctx));
      await api.register(searchRoutes(ctx));
      await api.register(labelRoutes(ctx));
      await api.register(moderationRoutes(ctx));
      await api.register(adminRoutes(ctx));
    },
    { prefix: settings.apiPrefix },
  );
  return app;
}
