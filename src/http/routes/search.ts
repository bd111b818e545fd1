import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.js';
import { principalOf } from '../auth.js';
import { problemResponses } from '../schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const FeedItemSchema = Type.Object(
  {
    id: Type.String(),
    kind: Type.Union(['video', 'audio', 'image', 'document', 'other'].map((k) => Type.Literal(k))),
    status: Type.Union(['queued', 'processing', 'ready', 'error'].map((k) => Type.Literal(k))),
    user_id: Type.String(),
    title: Nullable(Type.String()),
    caption: Nullable(Type.String()),
    original_filename: Type.String(),
    duration: Nullable(Type.Number()),
    width: Nullable(Type.Number()),
    height: Nullable(Type.Number()),
    poster: Type.Object({ jpeg: Nullable(Type.String()), webp: Nullable(Type.String()) }),
    labels: Type.Array(Type.String()),
    tags: Type.Array(Type.String()),
    playback: Type.Object({
      hls: Nullable(Type.String()),
      dash: Nullable(Type.String()),
      webm: Nullable(Type.String()),
      expires_at: Type.String({ format: 'date-time' }),
    }),
    created_at: Type.String({ format: 'date-time' }),
    score: Type.Optional(Type.Number({ description: 'Search relevance, higher is better (search results only)' })),
  },
  { $id: 'FeedItem' },
);

const Page = Type.Object({ items: Type.Array(Type.Ref('FeedItem')), next_cursor: Nullable(Type.String()) });

const KindFilter = Type.Union(['video', 'audio', 'image', 'document', 'other'].map((k) => Type.Literal(k)));
const StatusFilter = Type.Union(['queued', 'processing', 'ready', 'error'].map((k) => Type.Literal(k)));

/** Search, feeds and related media: transport only, the services decide. */
export function searchRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const { settings } = ctx;
  const { feeds } = ctx.discovery;
  const limit = Type.Integer({ minimum: 1, maximum: settings.feedMaxPageSize, default: settings.feedPageSize });
  const cursor = Type.Optional(Type.String({ minLength: 1, maxLength: 1024 }));
  const searchFields = {
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: settings.searchMaxQueryLength,
        description:
          'Words to find; the last one also matches as a prefix (type-ahead) unless followed by a space. Without it, the media passing the filters are listed newest first (at least one filter is needed then)',
      }),
    ),
    kind: Type.Optional(KindFilter),
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'A label name or synonym; media with it or a descendant label' })),
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Created before' })),
    limit,
    cursor,
  };
  const baseUrlOf = (req: { protocol: string; host: string }) => settings.publicBaseUrl || `${req.protocol}://${req.host}`;

  return async (app) => {
    app.addSchema(FeedItemSchema);

    app.get(
      '/search',
      {
        schema: {
          tags: ['search'],
          summary:
            "Full-text search of the tenant's media (file names, titles, captions, descriptions, tags, labels and their synonyms, caption tracks), most relevant first; or, without `q`, the media passing the filters, newest first",
          description:
            'Only ready media unless `status` says otherwise; media that is not ready or is held by moderation is found only by its owner or an admin key. Pages are stable: a later page never repeats or skips a result of an earlier one, whatever is written in between (media deleted or hidden since are left out; media added since appear in a new search). A search pages through its 500 best results; a cursor may expire after an hour (search again). Without `q` (e.g. `?label=animal`), at least one of `kind`, `label`, `status`, `from`, `to` is needed: the matching media are listed newest first, with no `score` and no 500-result bound.',
          querystring: Type.Object({ ...searchFields, status: Type.Optional(StatusFilter) }),
          response: { 200: Page, ...problemResponses(400) },
        },
      },
      async (req) => feeds.searchResults(principalOf(req), req.query, baseUrlOf(req)),
    );

    app.get(
      '/feed/new',
      {
        schema: {
          tags: ['feeds'],
          summary: 'Ready media of the tenant, newest first',
          querystring: Type.Object({ limit, cursor }),
          response: { 200: Page, ...problemResponses(400) },
        },
      },
      async (req) => feeds.newest(principalOf(req), req.query.limit, baseUrlOf(req), req.query.cursor),
    );

    app.get(
      '/feed/recommended',
      {
        schema: {
          tags: ['feeds'],
          summary:
            "Media recommended for the caller's user from their uploads and views, then the newest media they neither uploaded nor opened (the new feed until there is anything to go on)",
          querystring: Type.Object({ limit, cursor }),
          response: { 200: Page, ...problemResponses(400) },
        },
      },
      async (req) => feeds.recommended(principalOf(req), req.query.limit, baseUrlOf(req), req.query.cursor),
    );

    app.get(
      '/feed/search',
      {
        schema: {
          tags: ['feeds'],
          summary:
            'Search results as a feed: ready media that moderation has not held, most relevant first (without `q`, those passing the filters, newest first)',
          // Feeds show ready media only: a status filter is refused rather than ignored.
          querystring: Type.Object(searchFields, { additionalProperties: false }),
          response: { 200: Page, ...problemResponses(400) },
        },
      },
      async (req) => feeds.searchFeed(principalOf(req), req.query, baseUrlOf(req)),
    );

    app.get(
      '/media/:media_id/related',
      {
        schema: {
          tags: ['feeds'],
          summary:
            'Media similar to this one (shared labels and tags, rarer ones weigh more; labels under a common parent in the label hierarchy count too, less than a shared label), best first',
          params: Type.Object({ media_id: Type.String({ minLength: 1, maxLength: 64 }) }),
          querystring: Type.Object({ limit }),
          response: { 200: Page, ...problemResponses(400, 403) },
        },
      },
      async (req) => feeds.related(principalOf(req), req.params.media_id, req.query.limit, baseUrlOf(req)),
    );
  };
}
