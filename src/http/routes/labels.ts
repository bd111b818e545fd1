import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import type { LabelKind } from '../../db/schema.js';
import { BankDocSchema, BankEntryDocSchema, MatchThresholdSchema, MAX_PHRASES_PER_ENTRY, nullable } from '../../labels/bank-format.js';
import { LabelBankService } from '../../labels/label-bank-service.js';
import { principalOf } from '../auth.js';
import { LabelingSchema, LabelSourceSchema, problemResponses } from '../schemas.js';

const Id = Type.String({ minLength: 1, maxLength: 64 });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const LabelKindSchema = Type.Union([Type.Literal('general'), Type.Literal('moderation')]);
const LabelName = Type.String({ minLength: 1, maxLength: 200 });

const BankSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: LabelKindSchema,
  description: Nullable(Type.String()),
  match_threshold: Nullable(Type.Number()),
  scope: Type.Union([Type.Literal('tenant'), Type.Literal('global')]),
  entry_count: Type.Integer(),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

const EntrySchema = Type.Object({
  id: Type.String(),
  bank_id: Type.String(),
  name: Type.String(),
  label_id: Nullable(Type.String()),
  parent_id: Nullable(Type.String()),
  threshold: Nullable(Type.Number()),
  phrases: Type.Array(Type.String()),
  children: Type.Array(Type.Object({ id: Type.String(), name: Type.String() })),
  created_at: Type.String({ format: 'date-time' }),
});

const BankDetailSchema = Type.Object({ ...BankSchema.properties, entries: Type.Array(EntrySchema) });

const StatsSchema = Type.Object({
  bank_id: Type.String(),
  entries: Type.Array(
    Type.Object({
      entry_id: Type.String(),
      name: Type.String(),
      usage_count: Type.Integer({ description: 'Times the entry was newly applied to a media' }),
      match_count: Type.Integer({ description: 'Label writes that matched the entry (repeats included)' }),
      mean_confidence: Nullable(Type.Number()),
      max_confidence: Nullable(Type.Number()),
      last_matched_at: Nullable(Type.String({ format: 'date-time' })),
    }),
  ),
});

const FrameSchema = Type.Object(
  {
    t: Type.Number({ minimum: 0, description: 'Seconds from the start' }),
    box: Type.Optional(
      Type.Array(Type.Number({ minimum: 0, maximum: 1 }), { minItems: 4, maxItems: 4, description: 'x, y, width, height relative to the frame' }),
    ),
    confidence: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);

const AssetLabelDetailSchema = Type.Object({
  label_id: Type.String(),
  name: Type.String(),
  kind: LabelKindSchema,
  parent_id: Nullable(Type.String()),
  parent: Nullable(Type.String({ description: "The parent label's name (from the label banks)" })),
  source: LabelSourceSchema,
  confidence: Type.Number({ description: 'The highest confidence' }),
  mean_confidence: Type.Number({ description: 'The mean of its per-frame confidences' }),
  count: Type.Integer({ description: 'Frames it was seen in (a model label), or times it was added' }),
  first_timestamp: Nullable(Type.Number({ description: 'Seconds into the media of the first frame it was seen in' })),
  last_timestamp: Nullable(Type.Number({ description: 'Seconds into the media of the last frame it was seen in' })),
  frames: Type.Array(FrameSchema),
  first_seen_at: Type.String({ format: 'date-time' }),
  last_seen_at: Type.String({ format: 'date-time' }),
});

const EntryBody = Type.Object(
  {
    name: LabelName,
    parent_id: Type.Optional(nullable(Id)),
    phrases: Type.Optional(Type.Array(LabelName, { maxItems: MAX_PHRASES_PER_ENTRY })),
    threshold: Type.Optional(nullable(Type.Number({ minimum: 0, maximum: 1 }))),
  },
  { additionalProperties: false },
);

const BankParams = Type.Object({ bank_id: Id });
const EntryParams = Type.Object({ bank_id: Id, entry_id: Id });
const MediaParams = Type.Object({ media_id: Id });

/** Label banks of one kind: `/label-banks` (general) or `/moderation-label-banks`. */
function bankRoutes(ctx: AppContext, base: string, kind: LabelKind): FastifyPluginAsyncTypebox {
  const tags = [kind === 'general' ? 'label banks' : 'moderation label banks'];
  const what = kind === 'general' ? 'label bank' : 'moderation label bank';
  return async (app) => {
    app.get(
      base,
      {
        schema: {
          tags,
          summary: `The tenant's ${what}s: its own and the global ones it does not override`,
          response: { 200: Type.Object({ items: Type.Array(BankSchema) }), ...problemResponses() },
        },
      },
      async (req) => ({ items: await ctx.labelBanks.list(principalOf(req).tenantId, kind) }),
    );

    app.post(
      base,
      {
        schema: {
          tags,
          summary: `Create a ${what} (admin keys), optionally with entries given as in the import format`,
          body: Type.Object(
            {
              name: LabelName,
              description: Type.Optional(nullable(Type.String({ maxLength: 2000 }))),
              match_threshold: Type.Optional(nullable(MatchThresholdSchema)),
              entries: Type.Optional(Type.Array(BankEntryDocSchema)),
            },
            { additionalProperties: false },
          ),
          response: { 201: BankDetailSchema, ...problemResponses(400, 403, 409, 422) },
        },
      },
      async (req, reply) => reply.code(201).send(await ctx.labelBanks.create(LabelBankService.writerScope(principalOf(req)), kind, req.body)),
    );

    app.post(
      `${base}/import`,
      {
        schema: {
          tags,
          summary: `Import a ${what} from its JSON document; replace=true updates the tenant's bank of that name in place`,
          querystring: Type.Object({ replace: Type.Boolean({ default: false }) }),
          body: BankDocSchema,
          response: { 200: BankDetailSchema, 201: BankDetailSchema, ...problemResponses(400, 403, 409, 422) },
        },
      },
      async (req, reply) => {
        const { bank, created } = await ctx.labelBanks.import(LabelBankService.writerScope(principalOf(req)), kind, req.body, { replace: req.query.replace });
        return reply.code(created ? 201 : 200).send(bank);
      },
    );

    app.get(
      `${base}/:bank_id`,
      {
        schema: {
          tags,
          summary: `One ${what} with its entries, their phrases and children`,
          params: BankParams,
          response: { 200: BankDetailSchema, ...problemResponses() },
        },
      },
      async (req) => ctx.labelBanks.get(principalOf(req).tenantId, kind, req.params.bank_id),
    );

    app.patch(
      `${base}/:bank_id`,
      {
        schema: {
          tags,
          summary: `Rename or describe a ${what} (admin keys)`,
          params: BankParams,
          body: Type.Object(
            {
              name: Type.Optional(LabelName),
              description: Type.Optional(nullable(Type.String({ maxLength: 2000 }))),
              match_threshold: Type.Optional(nullable(MatchThresholdSchema)),
            },
            { additionalProperties: false },
          ),
          response: { 200: BankDetailSchema, ...problemResponses(400, 403, 409) },
        },
      },
      async (req) => ctx.labelBanks.update(LabelBankService.writerScope(principalOf(req)), kind, req.params.bank_id, req.body),
    );

    app.delete(
      `${base}/:bank_id`,
      {
        schema: {
          tags,
          summary: `Delete a ${what} and its entries (admin keys)`,
          params: BankParams,
          response: { 204: Type.Null(), ...problemResponses(403) },
        },
      },
      async (req, reply) => {
        await ctx.labelBanks.delete(LabelBankService.writerScope(principalOf(req)), kind, req.params.bank_id);
        return reply.code(204).send(null);
      },
    );

    app.get(
      `${base}/:bank_id/export`,
      {
        schema: {
          tags,
          summary: `A ${what} as a versioned JSON document (what import accepts)`,
          params: BankParams,
          response: { 200: BankDocSchema, ...problemResponses() },
        },
      },
      async (req) => ctx.labelBanks.export(principalOf(req).tenantId, kind, req.params.bank_id),
    );

    app.get(
      `${base}/:bank_id/stats`,
      {
        schema: {
          tags,
          summary: `The tenant's statistics for each entry of a ${what}`,
          params: BankParams,
          response: { 200: StatsSchema, ...problemResponses() },
        },
      },
      async (req) => ctx.labelBanks.stats(principalOf(req).tenantId, kind, req.params.bank_id),
    );

    app.post(
      `${base}/:bank_id/entries`,
      {
        schema: {
          tags,
          summary: 'Add an entry (admin keys)',
          params: BankParams,
          body: EntryBody,
          response: { 201: EntrySchema, ...problemResponses(400, 403, 409, 422) },
        },
      },
      async (req, reply) =>
        reply.code(201).send(await ctx.labelBanks.addEntry(LabelBankService.writerScope(principalOf(req)), kind, req.params.bank_id, req.body)),
    );

    app.get(
      `${base}/:bank_id/entries/:entry_id`,
      { schema: { tags, summary: 'One entry', params: EntryParams, response: { 200: EntrySchema, ...problemResponses() } } },
      async (req) => ctx.labelBanks.entry(principalOf(req).tenantId, kind, req.params.bank_id, req.params.entry_id),
    );

    app.patch(
      `${base}/:bank_id/entries/:entry_id`,
      {
        schema: {
          tags,
          summary: 'Change an entry: name, parent (null: none), phrases (replaced), threshold (admin keys)',
          params: EntryParams,
          body: Type.Partial(EntryBody, { additionalProperties: false }),
          response: { 200: EntrySchema, ...problemResponses(400, 403, 409, 422) },
        },
      },
      async (req) => ctx.labelBanks.updateEntry(LabelBankService.writerScope(principalOf(req)), kind, req.params.bank_id, req.params.entry_id, req.body),
    );

    app.delete(
      `${base}/:bank_id/entries/:entry_id`,
      {
        schema: {
          tags,
          summary: 'Remove an entry; its children move up to its parent (admin keys)',
          params: EntryParams,
          response: { 204: Type.Null(), ...problemResponses(403) },
        },
      },
      async (req, reply) => {
        await ctx.labelBanks.deleteEntry(LabelBankService.writerScope(principalOf(req)), kind, req.params.bank_id, req.params.entry_id);
        return reply.code(204).send(null);
      },
    );
  };
}

export function labelRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    await app.register(bankRoutes(ctx, '/label-banks', 'general'));
    await app.register(bankRoutes(ctx, '/moderation-label-banks', 'moderation'));

    app.get(
      '/labels',
      {
        schema: {
          tags: ['labels'],
          summary: "The tenant's label dictionary by name (optionally one kind, or the children of one label)",
          querystring: Type.Object({
            kind: Type.Optional(LabelKindSchema),
            parent_id: Type.Optional(Id),
            limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
            cursor: Type.Optional(Type.String({ maxLength: 1024 })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(
                Type.Object({
                  id: Type.String(),
                  name: Type.String(),
                  kind: LabelKindSchema,
                  parent_id: Nullable(Type.String()),
                  created_at: Type.String({ format: 'date-time' }),
                }),
              ),
              next_cursor: Nullable(Type.String()),
            }),
            ...problemResponses(400),
          },
        },
      },
      async (req) =>
        ctx.labels.dictionary(principalOf(req).tenantId, {
          limit: req.query.limit,
          ...(req.query.kind ? { kind: req.query.kind } : {}),
          ...(req.query.parent_id ? { parentId: req.query.parent_id } : {}),
          ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
        }),
    );

    app.get(
      '/media/:media_id/labels',
      {
        schema: {
          tags: ['labels'],
          summary: 'The labels of a media with parents, sources, confidence, frames and timestamps, and where the models’ labeling stands',
          params: MediaParams,
          response: { 200: Type.Object({ items: Type.Array(AssetLabelDetailSchema), labeling: LabelingSchema }), ...problemResponses(403) },
        },
      },
      async (req) => ctx.labels.listWithState(principalOf(req), req.params.media_id),
    );

    app.post(
      '/media/:media_id/labels',
      {
        schema: {
          tags: ['labels'],
          summary: 'Label a media by hand (source user; owner or admin keys; moderation labels: admin keys)',
          params: MediaParams,
          body: Type.Object(
            {
              labels: Type.Array(
                Type.Object(
                  {
                    name: LabelName,
                    kind: Type.Optional(LabelKindSchema),
                    confidence: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
                    frames: Type.Optional(Type.Array(FrameSchema, { maxItems: 1000 })),
                  },
                  { additionalProperties: false },
                ),
                { minItems: 1, maxItems: 200 },
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ items: Type.Array(AssetLabelDetailSchema) }), ...problemResponses(400, 403) },
        },
      },
      async (req) => ({
        items: await ctx.labels.addLabels(
          principalOf(req),
          req.params.media_id,
          req.body.labels.map((l) => ({ ...l, frames: l.frames as never, source: 'user' as const })),
        ),
      }),
    );

    app.post(
      '/media/:media_id/labels/recompute',
      {
        schema: {
          tags: ['labels'],
          summary: 'Run the local models on the media again (owner or admin keys); its model labels are replaced when they are done',
          params: MediaParams,
          response: { 202: Type.Object({ labeling: LabelingSchema }), ...problemResponses(403, 409) },
        },
      },
      async (req, reply) => reply.code(202).send({ labeling: await ctx.labelRecompute.forMedia(principalOf(req), req.params.media_id) }),
    );

    app.delete(
      '/media/:media_id/labels/:label_id',
      {
        schema: {
          tags: ['labels'],
          summary: 'Remove a label from a media (the user one; ?source=model, ocr, transcript or caption removes that one, admin keys)',
          params: Type.Object({ media_id: Id, label_id: Id }),
          querystring: Type.Object({ source: Type.Union(LabelSourceSchema.anyOf, { default: 'user' }) }),
          response: { 204: Type.Null(), ...problemResponses(403) },
        },
      },
      async (req, reply) => {
        await ctx.labels.removeLabel(principalOf(req), req.params.media_id, req.params.label_id, req.query.source);
        return reply.code(204).send(null);
      },
    );
  };
}
