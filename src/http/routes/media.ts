import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AppContext } from '../app-context.js';
import type { MediaStreamEvent } from '../../media/status-stream.js';
import { principalOf } from '../auth.js';
import { AssetLabelSchema, LabelingSchema, MediaSchema, problemResponses } from '../schemas.js';
import { CaptionTrackSchema } from './captions.js';
import { mediaWithUrls, recordWithUrls } from '../urls.js';

const MediaParams = Type.Object({ media_id: Type.String({ minLength: 1, maxLength: 64 }) });

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const MediaRecordSchema = Type.Object(
  {
    ...MediaSchema.properties,
    labels: Type.Array(AssetLabelSchema),
    probe: Nullable(Type.Object({}, { additionalProperties: true })),
    artifacts: Type.Object({}, { additionalProperties: true }),
    urls: Type.Object({}, { additionalProperties: true }),
    pending: Type.Array(Type.String()),
    labeling: LabelingSchema,
    caption_tracks: Type.Array(CaptionTrackSchema),
    moderation: Nullable(
      Type.Object(
        {
          decision: Type.String(),
          state: Type.String(),
          note: Nullable(Type.String()),
          labels: Type.Array(Type.Object({ name: Type.String(), confidence: Type.Number(), threshold: Type.Optional(Type.Number()) }), {
            description:
              'The moderation labels it was made on: for hold, those that met their thresholds; for clear, all of them; for approve and reject, what the moderator saw',
          }),
          actor_user_id: Nullable(Type.String()),
          at: Type.String({ format: 'date-time' }),
        },
        { description: 'The newest moderation decision (await, clear, hold, approve, reject)' },
      ),
    ),
    status_history: Type.Array(Type.Object({ status: Type.String(), at: Type.String({ format: 'date-time' }), error_code: Nullable(Type.String()) })),
  },
  { description: 'The whole media record' },
);

const TagList = Type.Array(Type.String({ maxLength: 1000 }), { maxItems: 500 });

const MediaPatchSchema = Type.Object(
  {
    caption: Type.Optional(Nullable(Type.String({ maxLength: 20_000 }))),
    title: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
    description: Type.Optional(Nullable(Type.String({ maxLength: 20_000 }))),
    tags: Type.Optional(
      Type.Union(
        [
          TagList,
          Type.Object({ add: Type.Optional(TagList), remove: Type.Optional(TagList), replace: Type.Optional(TagList) }, { additionalProperties: false }),
        ],
        { description: 'An array replaces the tags; {add, remove} edits them (matched case-insensitively); {replace} replaces them' },
      ),
    ),
  },
  { additionalProperties: false },
);

/** One Server-Sent Events frame of a status event. */
function sseFrame(e: MediaStreamEvent): string {
  const data =
    e.type === 'status'
      ? JSON.stringify({ status: e.status, at: e.at, error_code: e.error_code, error_reason: e.error_reason })
      : JSON.stringify({ decision: e.decision, previous_state: e.previous_state, state: e.state, labels: e.labels, note: e.note, at: e.at });
  return `${e.id ? `id: ${e.id}\n` : ''}event: ${e.type}\ndata: ${data}\n\n`;
}

export function mediaRoutes(ctx: AppContext): FastifyPluginAsyncTypebox {
  const serializedRecords = new WeakMap<object, string>();
  return async (app) => {
    app.get(
      '/media',
      {
        schema: {
          tags: ['media'],
          summary: "The caller's media, newest first (an admin key: the whole tenant, or ?user_id=)",
          description:
            'Every status and moderation state of the media listed. The filters combine (AND); a `cursor` continues the listing it came from, so send the same filters with it.',
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: 512 })),
            user_id: Type.Optional(Type.String({ maxLength: 64, description: 'Admin keys only: the media of this user' })),
            status: Type.Optional(
              Type.Union([Type.Literal('queued'), Type.Literal('processing'), Type.Literal('ready'), Type.Literal('error')], {
                description: 'Only media of this status',
              }),
            ),
            kind: Type.Optional(
              Type.Union(
                (['video', 'audio', 'image', 'document', 'other'] as const).map((k) => Type.Literal(k)),
                { description: 'Only media of this kind' },
              ),
            ),
            label: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 100,
                description: "A label name or bank synonym: media labelled with it or with any of its descendants in the tenant's hierarchy",
              }),
            ),
            tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'A user tag, matched case-insensitively' })),
          }),
          response: {
            200: Type.Object({ items: Type.Array(Type.Ref('Media')), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
            ...problemResponses(400, 403),
          },
        },
      },
      async (req) => {
        const page = await ctx.media.list(principalOf(req), {
          limit: req.query.limit,
          ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
          ...(req.query.user_id ? { userId: req.query.user_id } : {}),
          ...(req.query.status ? { status: req.query.status } : {}),
          ...(req.query.kind ? { kind: req.query.kind } : {}),
          ...(req.query.label !== undefined ? { label: req.query.label } : {}),
          ...(req.query.tag !== undefined ? { tag: req.query.tag } : {}),
        });
        return { ...page, items: page.items.map((m) => mediaWithUrls(ctx.settings.apiPrefix, m)) };
      },
    );

    app.get(
      '/media/:media_id',
      {
        schema: {
          tags: ['media'],
          summary: 'The whole media record: status and its history, probe facts, artifacts, caption tracks, tags, labels, moderation state',
          description: 'Media held or rejected by moderation answers `moderation-hidden` (403) to anyone but its owner and admin keys, like its playback.',
          params: MediaParams,
          response: { 200: MediaRecordSchema, ...problemResponses(403) },
        },
      },
      async (req, reply) => {
        const record = await ctx.media.record(principalOf(req), req.params.media_id);
        // A cached record is one frozen object shared by every request: serialized once.
        if (!Object.isFrozen(record)) return recordWithUrls(ctx.settings.apiPrefix, record);
        let json = serializedRecords.get(record);
        if (json === undefined) {
          json = reply.serialize(recordWithUrls(ctx.settings.apiPrefix, record)) as string;
          serializedRecords.set(record, json);
        }
        // Sent as it is: a string with a JSON content type skips serialization (the type provider only knows objects).
        return reply.type('application/json; charset=utf-8').send(json as never);
      },
    );

    app.patch(
      '/media/:media_id',
      {
        schema: {
          tags: ['media'],
          summary: 'Edit the caption, title, description and tags (owner or admin); null clears a field',
          params: MediaParams,
          body: MediaPatchSchema,
          response: { 200: MediaRecordSchema, ...problemResponses(400, 403, 409) },
        },
      },
      async (req) => recordWithUrls(ctx.settings.apiPrefix, await ctx.media.update(principalOf(req), req.params.media_id, req.body)),
    );

    const streams = new Set<ServerResponse>();
    app.addHook('preClose', async () => {
      for (const s of streams) s.end();
    });

    app.get(
      '/media/:media_id/events',
      {
        schema: {
          tags: ['media'],
          summary:
            'Status changes as Server-Sent Events (event `status`) and, for the owner and admin keys, moderation decisions (event `moderation`): the current ones, then each change; ends after ready or error unless follow=true',
          description:
            "Event `status`: `{status, at, error_code, error_reason}`. Event `moderation`, sent to the media's owner and admin keys only: `{decision, previous_state, state, labels, note, at}`, where `labels` are the moderation labels the decision was made on, each `{name, confidence, threshold}` (for `hold`: those that met their thresholds; `await` while the models are to look at the media; `clear` when they found nothing over a threshold; `approve` and `reject` by a moderator, with their note). For them the stream ends once the status is ready or error and moderation no longer waits for the models; for others, after ready or error. Reconnecting with `Last-Event-ID` (or `last_event_id`) replays the events after that one. A reconnect with nothing left to say answers 204, which tells EventSource to stop. The stream ends with event `deleted` when the media is deleted, and with event `hidden` when moderation holds it (for anyone but its owner and admin keys, who get `moderation-hidden` on reconnecting).",
          params: MediaParams,
          querystring: Type.Object({
            follow: Type.Boolean({ default: false, description: 'Keep the stream open after ready/error (to watch a reprocess)' }),
            last_event_id: Type.Optional(Type.String({ maxLength: 64 })),
          }),
          headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ maxLength: 64 })) }),
          response: {
            200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: Type.String() } } },
            204: Type.Null(),
            ...problemResponses(403),
          },
        },
      },
      async (req, reply) => {
        const p = principalOf(req);
        const lastEventId = req.headers['last-event-id'] || req.query.last_event_id || undefined;
        const follow = req.query.follow;
        const backlog = await ctx.statusFeed.backlog(p, req.params.media_id, lastEventId);
        const done = !follow && backlog.settled;
        if (lastEventId && !backlog.events.length && done) return reply.code(204).send(null);

        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, {
          ...(reply.getHeaders() as OutgoingHttpHeaders),
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          'x-accel-buffering': 'no',
          'x-request-id': String(req.id),
        });
        streams.add(raw);
        let watch: { stop(): void } | undefined;
        const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), ctx.settings.mediaEventsHeartbeat);
        const finish = () => {
          clearInterval(heartbeat);
          watch?.stop();
          streams.delete(raw);
          if (!raw.writableEnded) raw.end();
        };
        raw.on('close', finish);
        const send = (events: MediaStreamEvent[]) => {
          for (const e of events) raw.write(sseFrame(e));
        };
        raw.write('retry: 3000\n\n');
        send(backlog.events);
        if (done) return finish();
        // Closed by the client meanwhile.
        if (raw.writableEnded) return;
        watch = ctx.statusFeed.watch(
          p,
          req.params.media_id,
          backlog,
          { follow },
          {
            onEvents: send,
            onSettled: finish,
            onGone: () => {
              raw.write('event: deleted\ndata: {}\n\n');
              finish();
            },
            onHidden: () => {
              raw.write('event: hidden\ndata: {}\n\n');
              finish();
            },
            onError: (err) => req.log.warn({ err }, 'media event stream poll failed'),
          },
        );
      },
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
      async (req, reply) => reply.code(202).send(mediaWithUrls(ctx.settings.apiPrefix, await ctx.media.reprocess(principalOf(req), req.params.media_id))),
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
