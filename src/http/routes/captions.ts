import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import { AppError } from '../../shared/errors.js';
import { principalOf } from '../auth.js';
import { problemResponses } from '../schemas.js';
import { captionTrackWithUrl } from '../urls.js';

export const CaptionTrackSchema = Type.Object({
  language: Type.String({ description: 'BCP 47 tag in canonical case' }),
  label: Type.String(),
  kind: Type.Union([Type.Literal('subtitles'), Type.Literal('captions')]),
  source: Type.Union([Type.Literal('user'), Type.Literal('auto')], {
    description: 'user: uploaded; auto: transcribed from the speech (an upload of its language replaces it)',
  }),
  cue_count: Type.Integer(),
  url: Type.String({ description: 'The WebVTT file under the authenticated API' }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

const TrackParams = Type.Object({
  media_id: Type.String({ minLength: 1, maxLength: 64 }),
  lang: Type.String({ minLength: 2, maxLength: 35, description: 'BCP 47 language tag, e.g. en, fr-CA' }),
});

/** Caption files are sent as the raw body; WebVTT or SRT is decided from the content, not the header. */
const CAPTION_TYPES = ['text/vtt', 'application/x-subrip', 'application/x-srt', 'text/srt', 'text/plain', 'application/octet-stream'];

export function captionRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    for (const type of CAPTION_TYPES) if (app.hasContentTypeParser(type)) app.removeContentTypeParser(type);
    app.addContentTypeParser(CAPTION_TYPES, { parseAs: 'buffer', bodyLimit: ctx.settings.captionMaxSize }, (_req, body, done) => done(null, body));

    app.get(
      '/media/:media_id/captions',
      {
        schema: {
          tags: ['captions'],
          summary: 'The caption tracks of a media',
          params: Type.Object({ media_id: TrackParams.properties.media_id }),
          response: { 200: Type.Object({ items: Type.Array(CaptionTrackSchema) }), ...problemResponses() },
        },
      },
      async (req) => ({
        items: (await ctx.captions.list(principalOf(req), req.params.media_id)).map((t) => captionTrackWithUrl(ctx.settings.apiPrefix, req.params.media_id, t)),
      }),
    );

    app.put(
      '/media/:media_id/captions/:lang',
      {
        schema: {
          tags: ['captions'],
          summary: 'Add or replace the caption track of one language (WebVTT or SRT body; SRT is converted to WebVTT)',
          description:
            'Send the file as the body (text/vtt, application/x-subrip or text/plain, UTF-8). The track is offered in the HLS master (SUBTITLES group) and the DASH manifest (text adaptation set). Owner or admin; the video must be ready.',
          params: TrackParams,
          querystring: Type.Object({
            label: Type.Optional(Type.String({ maxLength: 200, description: 'Name players show; defaults to the language name' })),
            kind: Type.Union([Type.Literal('subtitles'), Type.Literal('captions')], {
              default: 'subtitles',
              description: 'captions: for the deaf and hard of hearing (sound effects, speakers)',
            }),
          }),
          body: { description: 'The WebVTT or SRT file' },
          response: { 200: CaptionTrackSchema, 201: CaptionTrackSchema, ...problemResponses(400, 403, 409, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const body = req.body;
        if (!Buffer.isBuffer(body))
          throw new AppError('validation-failed', 'send the caption file as the request body (text/vtt, application/x-subrip or text/plain)');
        const { track, created } = await ctx.captions.put(principalOf(req), req.params.media_id, {
          language: req.params.lang,
          body,
          kind: req.query.kind,
          ...(req.query.label !== undefined ? { label: req.query.label } : {}),
        });
        return reply.code(created ? 201 : 200).send(captionTrackWithUrl(ctx.settings.apiPrefix, req.params.media_id, track));
      },
    );

    app.delete(
      '/media/:media_id/captions/:lang',
      {
        schema: {
          tags: ['captions'],
          summary: 'Remove the caption track of one language (owner or admin)',
          params: TrackParams,
          response: { 204: Type.Null(), ...problemResponses(400, 403, 409) },
        },
      },
      async (req, reply) => {
        await ctx.captions.delete(principalOf(req), req.params.media_id, req.params.lang);
        return reply.code(204).send(null);
      },
    );
  };
}
