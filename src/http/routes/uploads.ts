import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import { AppError } from '../../shared/errors.js';
import { principalOf } from '../auth.js';
import { parseChunkChecksum } from '../../uploads/upload-service.js';
import { problemResponses } from '../schemas.js';
import { mediaWithUrls } from '../urls.js';

const SessionParams = Type.Object({ session_id: Type.String({ minLength: 1, maxLength: 64 }) });

export function uploadRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    // Chunk bodies are streamed to disk by the service, never buffered by a parser.
    app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

    app.post(
      '/upload',
      {
        schema: {
          tags: ['uploads'],
          summary: 'Create a chunked upload session',
          body: Type.Object(
            {
              filename: Type.String({ minLength: 1, maxLength: 1024 }),
              total_size: Type.Integer({ minimum: 0 }),
              content_type: Type.Optional(Type.String({ maxLength: 255 })),
              chunk_size: Type.Optional(Type.Integer({ minimum: 1 })),
              sha256: Type.Optional(Type.String({ description: 'sha256 of the whole file, 64 hex digits; checked at complete' })),
              caption: Type.Optional(Type.Union([Type.String(), Type.Null()])),
              language: Type.Optional(
                Type.Union([
                  Type.String({ maxLength: 35, description: 'The spoken language (BCP 47, such as en or pt-BR): its transcript is made in it' }),
                  Type.Null(),
                ]),
              ),
              user_tags: Type.Optional(Type.Array(Type.String(), { maxItems: 200 })),
              labels: Type.Optional(Type.Array(Type.String(), { maxItems: 200 })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Ref('UploadSession'), ...problemResponses(400, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const status = await ctx.uploads.create(principalOf(req), req.body);
        return reply.code(201).header('location', `${ctx.settings.apiPrefix}/upload/${status.session_id}`).send(status);
      },
    );

    app.get(
      '/upload/:session_id',
      {
        schema: {
          tags: ['uploads'],
          summary: 'Progress of an upload session: received and missing chunks',
          params: SessionParams,
          response: { 200: Type.Ref('UploadSession'), ...problemResponses() },
        },
      },
      async (req) => ctx.uploads.status(principalOf(req), req.params.session_id),
    );

    app.put(
      '/upload/:session_id/chunk',
      {
        schema: {
          tags: ['uploads'],
          summary: 'Send one chunk (raw bytes, application/octet-stream); any order, in parallel, idempotent',
          params: SessionParams,
          querystring: Type.Object({ index: Type.Integer({ minimum: 0 }) }),
          headers: Type.Object({
            'x-chunk-checksum': Type.Optional(Type.String({ description: 'sha256=<hex> of this chunk' })),
            'content-digest': Type.Optional(Type.String({ description: 'RFC 9530: sha-256=:<base64>:' })),
          }),
          response: {
            200: Type.Object({
              index: Type.Integer(),
              size: Type.Integer(),
              checksum: Type.String({
                description: 'what the server recorded of the chunk: sha256:<hex> when a checksum was sent and matched, else crc32:<hex>',
              }),
              sha256: Type.Optional(Type.String({ description: "the chunk's verified sha256, when a checksum was sent" })),
              received_chunks: Type.Integer(),
              received_bytes: Type.Integer(),
              chunk_count: Type.Integer(),
            }),
            ...problemResponses(400, 409, 413, 415, 422),
          },
        },
      },
      async (req) => {
        if (!/^application\/octet-stream\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
          throw new AppError('unsupported-media-type', 'send chunk bytes as application/octet-stream');
        }
        const len = req.headers['content-length'];
        return ctx.uploads.putChunk(principalOf(req), req.params.session_id, req.query.index, req.raw, {
          contentLength: len === undefined ? undefined : Number(len),
          checksum: parseChunkChecksum({ chunkChecksum: req.headers['x-chunk-checksum'], contentDigest: req.headers['content-digest'] }),
        });
      },
    );

    app.post(
      '/upload/:session_id/complete',
      {
        schema: {
          tags: ['uploads'],
          summary: 'Assemble the chunks into a media record (409 with missing_chunks when incomplete)',
          params: SessionParams,
          response: { 201: Type.Ref('Media'), ...problemResponses(409, 422) },
        },
      },
      async (req, reply) => {
        const media = await ctx.uploads.complete(principalOf(req), req.params.session_id);
        return reply.code(201).header('location', `${ctx.settings.apiPrefix}/media/${media.id}`).send(mediaWithUrls(ctx.settings.apiPrefix, media));
      },
    );

    app.delete(
      '/upload/:session_id',
      {
        schema: {
          tags: ['uploads'],
          summary: 'Abort an upload session and remove its chunks',
          params: SessionParams,
          response: { 204: Type.Null(), ...problemResponses(409) },
        },
      },
      async (req, reply) => {
        await ctx.uploads.abort(principalOf(req), req.params.session_id);
        return reply.code(204).send(null);
      },
    );
  };
}
