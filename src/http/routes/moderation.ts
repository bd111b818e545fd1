import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import { nullable } from '../../labels/bank-format.js';
import { principalOf } from '../auth.js';
import { ModerationStateSchema, problemResponses } from '../schemas.js';

const Id = Type.String({ minLength: 1, maxLength: 64 });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const Threshold = Type.Number({ minimum: 0, maximum: 1 });
const StateSchema = ModerationStateSchema;
const ModerationLabelSchema = Type.Object({ name: Type.String(), confidence: Type.Number(), threshold: Type.Number() });

const ThresholdsSchema = Type.Object({
  default: Nullable(Threshold),
  server_default: Threshold,
  effective_default: Threshold,
  labels: Type.Array(Type.Object({ label_id: Type.String(), label: Type.String(), threshold: Threshold })),
});

const MediaModerationSchema = Type.Object({
  media_id: Type.String(),
  state: StateSchema,
  labels: Type.Array(ModerationLabelSchema),
  detections: Type.Array(
    Type.Object({
      timestamp: Type.Integer({ description: 'Milliseconds into the media (0 for a still)' }),
      label: Type.String(),
      parent: Nullable(Type.String()),
      confidence: Type.Number(),
    }),
    { description: "Where the models saw each moderation label, as Rekognition's ContentModerationDetection" },
  ),
  decisions: Type.Array(
    Type.Object({
      id: Type.String(),
      decision: Type.Union([Type.Literal('await'), Type.Literal('clear'), Type.Literal('hold'), Type.Literal('approve'), Type.Literal('reject')]),
      previous_state: StateSchema,
      state: StateSchema,
      note: Nullable(Type.String()),
      labels: Type.Array(ModerationLabelSchema),
      decided_by: Nullable(Type.Object({ key_id: Type.String(), user_id: Nullable(Type.String()) })),
      at: Type.String({ format: 'date-time' }),
    }),
  ),
});

export function moderationRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['moderation'];

    app.get(
      '/moderation/thresholds',
      {
        schema: { tags, summary: "The tenant's moderation thresholds: its default and per label", response: { 200: ThresholdsSchema, ...problemResponses() } },
      },
      async (req) => ctx.moderation.thresholds(principalOf(req)),
    );

    app.put(
      '/moderation/thresholds',
      {
        schema: {
          tags,
          summary: 'Replace the moderation thresholds (admin keys); default null uses the server default',
          description:
            'Media whose moderation labels meet a lowered threshold is held at once (`held` counts it); raising a threshold releases nothing: held media waits for a moderator.',
          body: Type.Object(
            {
              default: Type.Optional(nullable(Threshold)),
              labels: Type.Array(Type.Object({ label: Type.String({ minLength: 1, maxLength: 200 }), threshold: Threshold }, { additionalProperties: false }), {
                maxItems: 1000,
                default: [],
              }),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ ...ThresholdsSchema.properties, held: Type.Integer({ description: 'Media this change held' }) }),
            ...problemResponses(400, 403),
          },
        },
      },
      async (req) => ctx.moderation.setThresholds(principalOf(req), { default: req.body.default ?? null, labels: req.body.labels }),
    );

    app.get(
      '/moderation/queue',
      {
        schema: {
          tags,
          summary: 'Held media, longest held first (admin keys)',
          querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }), cursor: Type.Optional(Type.String({ maxLength: 64 })) }),
          response: {
            200: Type.Object({
              items: Type.Array(
                Type.Object({
                  media_id: Type.String(),
                  user_id: Type.String(),
                  kind: Type.String(),
                  original_filename: Type.String(),
                  status: Type.String(),
                  created_at: Type.String({ format: 'date-time' }),
                  held_at: Type.String({ format: 'date-time' }),
                  labels: Type.Array(ModerationLabelSchema),
                }),
              ),
              next_cursor: Nullable(Type.String()),
            }),
            ...problemResponses(400, 403),
          },
        },
      },
      async (req) => ctx.moderation.queue(principalOf(req), { limit: req.query.limit, ...(req.query.cursor ? { cursor: req.query.cursor } : {}) }),
    );

    app.get(
      '/media/:media_id/moderation',
      {
        schema: {
          tags,
          summary: "A media's moderation state, its moderation labels and every decision (owner or admin keys)",
          params: Type.Object({ media_id: Id }),
          response: { 200: MediaModerationSchema, ...problemResponses(403) },
        },
      },
      async (req) => ctx.moderation.ofMedia(principalOf(req), req.params.media_id),
    );

    app.post(
      '/media/:media_id/moderation',
      {
        schema: {
          tags,
          summary: 'Approve or reject a media (admin keys); recorded with who and when',
          params: Type.Object({ media_id: Id }),
          body: Type.Object(
            { decision: Type.Union([Type.Literal('approve'), Type.Literal('reject')]), note: Type.Optional(nullable(Type.String({ maxLength: 2000 }))) },
            { additionalProperties: false },
          ),
          response: { 200: MediaModerationSchema, ...problemResponses(400, 403, 409) },
        },
      },
      async (req) => ctx.moderation.decide(principalOf(req), req.params.media_id, req.body.decision, req.body.note ?? null),
    );
  };
}
