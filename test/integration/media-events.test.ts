import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toJson } from '../../src/db/schema.js';
import { appendMediaEvents, writeWithEvents } from '../../src/events/media-events.js';
import { moveModerationState } from '../../src/moderation/moderation-move.js';
import type { RunningWorker } from '../../src/queue/queue.js';
import { SAMPLES, startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
}

/** A real HTTP SSE reader over fetch: parses frames as they arrive. */
class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  ended = false;
  private buffer = '';
  private readonly done: Promise<void>;

  constructor(
    readonly res: Response,
    private readonly controller: AbortController,
  ) {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    this.done = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          this.buffer += decoder.decode(value, { stream: true });
          for (let i = this.buffer.indexOf('\n\n'); i >= 0; i = this.buffer.indexOf('\n\n')) {
            const frame = this.buffer.slice(0, i);
            this.buffer = this.buffer.slice(i + 2);
            const e: SseEvent = {};
            for (const line of frame.split('\n')) {
              if (line.startsWith(':')) this.comments.push(line);
              const m = /^(id|event|data): ?(.*)$/.exec(line);
              if (m) e[m[1] as keyof SseEvent] = m[2];
            }
            if (e.event) this.events.push(e);
          }
        }
      } catch {
        // aborted by the test
      } finally {
        this.ended = true;
      }
    })();
  }

  statuses(): string[] {
    return this.events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data!).status);
  }

  /** The moderation events: decision, new state and the labels it was made on. */
  decisions(): Array<{
    decision: string;
    previous_state: string;
    state: string;
    labels: Array<{ name: string; confidence: number; threshold: number }>;
    note: string | null;
    at: string;
  }> {
    return this.events.filter((e) => e.event === 'moderation').map((e) => JSON.parse(e.data!));
  }

  async closed(): Promise<void> {
    await this.done;
  }

  abort(): void {
    this.controller.abort();
  }
}

describe('media status events (Server-Sent Events)', () => {
  let t: TestApp;
  let origin: string;
  let mediaId: string;
  let worker: RunningWorker | undefined;

  async function open(id: string, opts: { key?: string; headers?: Record<string, string>; query?: string } = {}): Promise<{ res: Response; sse?: SseReader }> {
    const controller = new AbortController();
    const res = await fetch(`${origin}/api/v1/media/${id}/events${opts.query ? `?${opts.query}` : ''}`, {
      headers: { ...t.auth(opts.key ?? t.tenant.userKey), ...opts.headers },
      signal: controller.signal,
    });
    if (res.status !== 200 || !String(res.headers.get('content-type')).startsWith('text/event-stream')) return { res };
    return { res, sse: new SseReader(res, controller) };
  }

  before(async () => {
    // The worker starts only once a client is listening, so every transition is seen live.
    t = await startTestApp({ MEDIA_EVENTS_POLL_INTERVAL: '200ms', MEDIA_EVENTS_HEARTBEAT: '300ms' }, { worker: false });
    origin = new URL(await t.app.listen({ host: '127.0.0.1', port: 0 })).origin;
    const client = new SessionClient(t.app, t.tenant.userKey);
    const { session, completed } = await client.uploadWhole(await fs.readFile(path.join(SAMPLES, 'h264-640x272-noaudio-bikes.mp4')), {
      filename: 'bikes.mp4',
      chunkSize: 256 * 1024,
    });
    let res = completed;
    for (let i = 0; res.statusCode === 409 && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await client.complete(session.session_id);
    }
    assert.equal(res.statusCode, 201, res.body);
    mediaId = res.json().id;
  });
  after(async () => {
    await worker?.close();
    await t.close();
  });

  it('streams the current status, then each change, and ends after ready', async () => {
    const { res, sse } = await open(mediaId);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-cache, no-transform');
    assert.ok(res.headers.get('x-request-id'));
    await waitFor('the current status', async () => sse!.events.length >= 1);
    assert.deepEqual(sse!.statuses(), ['queued']);
    // Heartbeats keep an idle stream alive.
    await waitFor('a heartbeat', async () => sse!.comments.includes(': keep-alive'));

    worker = t.ctx.worker.start(1);
    await waitFor('the stream to end after ready', async () => sse!.ended, 60_000);
    await sse!.closed();
    assert.deepEqual(sse!.statuses(), ['queued', 'processing', 'ready']);
    const ids = sse!.events.map((e) => e.id!);
    assert.ok(
      ids.every((id) => /^[0-9a-f-]{36}$/.test(id)),
      JSON.stringify(ids),
    );
    assert.deepEqual([...ids].sort(), ids, 'event ids increase');
    const ready = JSON.parse(sse!.events.at(-1)!.data!);
    assert.equal(ready.error_code, null);
    assert.equal(ready.error_reason, null);
    assert.ok(!Number.isNaN(Date.parse(ready.at)));
    const history = (await t.app.inject({ url: `/api/v1/media/${mediaId}`, headers: t.auth(t.tenant.userKey) })).json().status_history;
    assert.deepEqual(
      history.map((h: { at: string }) => h.at),
      sse!.events.map((e) => JSON.parse(e.data!).at),
    );
  });

  it('replays what followed a Last-Event-ID, and says 204 when nothing is left', async () => {
    const first = await open(mediaId);
    await first.sse!.closed();
    assert.deepEqual(first.sse!.statuses(), ['ready'], 'a new client gets the current status only');

    const all = await t.ctx.database.db.selectFrom('media_status_events').select(['id', 'status']).where('media_id', '=', mediaId).orderBy('id').execute();
    const queued = all.find((e) => e.status === 'queued')!;
    const replay = await open(mediaId, { headers: { 'last-event-id': queued.id } });
    await replay.sse!.closed();
    assert.deepEqual(replay.sse!.statuses(), ['processing', 'ready']);
    assert.deepEqual(
      replay.sse!.events.map((e) => e.id),
      all.slice(1).map((e) => e.id),
    );

    const viaQuery = await open(mediaId, { query: `last_event_id=${queued.id}` });
    await viaQuery.sse!.closed();
    assert.deepEqual(viaQuery.sse!.statuses(), ['processing', 'ready']);

    const nothingLeft = await open(mediaId, { headers: { 'last-event-id': all.at(-1)!.id } });
    assert.equal(nothingLeft.res.status, 204);
    assert.equal(nothingLeft.sse, undefined);
  });

  it('follows a reprocess when asked to stay open', async () => {
    const { sse } = await open(mediaId, { query: 'follow=true' });
    await waitFor('the current status', async () => sse!.events.length >= 1);
    const reprocess = await t.app.inject({ method: 'POST', url: `/api/v1/media/${mediaId}/reprocess`, headers: t.auth(t.tenant.userKey) });
    assert.equal(reprocess.statusCode, 202, reprocess.body);
    await waitFor('the reprocess to be ready', async () => sse!.statuses().length >= 4, 60_000);
    assert.deepEqual(sse!.statuses(), ['ready', 'queued', 'processing', 'ready']);
    assert.equal(sse!.ended, false, 'follow keeps the stream open');
    sse!.abort();
    await sse!.closed();
  });

  it('sees changes written by another process (no in-process notification) by polling, with the error reason', async () => {
    const { sse } = await open(mediaId, { query: 'follow=true' });
    await waitFor('the current status', async () => sse!.events.length >= 1);
    // What a worker process elsewhere does: update the row, append the event; nothing is emitted here.
    await t.ctx.database.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('mediaassets')
        .set({ status: 'error', error_code: 'processing-failed', error_reason: 'the disk is full' })
        .where('id', '=', mediaId)
        .execute();
      await appendMediaEvents(tx, [{ tenantId: t.tenant.id, mediaId, type: 'status', data: { status: 'error', error_code: 'processing-failed' } }]);
    });
    await waitFor('the error event', async () => sse!.statuses().includes('error'), 10_000);
    const e = JSON.parse(sse!.events.at(-1)!.data!);
    assert.deepEqual([e.status, e.error_code, e.error_reason], ['error', 'processing-failed', 'the disk is full']);
    sse!.abort();
    await sse!.closed();
  });

  it('ends the stream when the media is deleted', async () => {
    const { sse } = await open(mediaId, { query: 'follow=true' });
    await waitFor('the current status', async () => sse!.events.length >= 1);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${mediaId}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(del.statusCode, 204);
    await sse!.closed();
    assert.equal(sse!.events.at(-1)!.event, 'deleted');
  });

  it('answers another tenant, and a missing media, with a 404 problem instead of a stream', async () => {
    for (const key of [t.other.adminKey, t.other.userKey]) {
      const { res, sse } = await open(mediaId, { key });
      assert.equal(sse, undefined);
      assert.equal(res.status, 404);
      assert.match(String(res.headers.get('content-type')), /^application\/problem\+json/);
      assert.equal(((await res.json()) as { type: string }).type, '/problems/not-found');
    }
    const missing = await open('01a21155-0000-7000-8000-000000000000');
    assert.equal(missing.res.status, 404);
    assert.equal(((await missing.res.json()) as { type: string }).type, '/problems/not-found');
    const unauth = await fetch(`${origin}/api/v1/media/${mediaId}/events`);
    assert.equal(unauth.status, 401);
  });

  it('answers moderation-hidden instead of a stream for held media, except to its owner and admins; ends open streams when held', async () => {
    const bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    const client = new SessionClient(t.app, t.tenant.userKey);
    const { completed } = await client.uploadWhole(Buffer.alloc(3000, 7), { filename: 'plain.bin', chunkSize: 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    const id = completed.json().id;

    const bobs = await open(id, { key: bobKey, query: 'follow=true' });
    const owners = await open(id, { query: 'follow=true' });
    await waitFor('both current statuses', async () => bobs.sse!.events.length >= 1 && owners.sse!.events.length >= 1);
    await t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [{ name: 'nudity', kind: 'moderation', confidence: 0.99, source: 'model' }]);
    await bobs.sse!.closed();
    assert.equal(bobs.sse!.events.at(-1)!.event, 'hidden');
    assert.deepEqual(bobs.sse!.decisions(), [], 'nothing of the decision for others');
    await waitFor("the owner's moderation event", async () => owners.sse!.decisions().length >= 1);
    assert.deepEqual(owners.sse!.decisions(), [
      {
        decision: 'hold',
        previous_state: 'none',
        state: 'held',
        labels: [{ name: 'nudity', confidence: 0.99, threshold: 0.8 }],
        note: null,
        at: owners.sse!.decisions()[0]!.at,
      },
    ]);
    assert.equal(owners.sse!.ended, false, "the owner's stream stays open");
    owners.sse!.abort();
    await owners.sse!.closed();

    const refused = await open(id, { key: bobKey });
    assert.equal(refused.sse, undefined);
    assert.equal(refused.res.status, 403);
    assert.match(String(refused.res.headers.get('content-type')), /^application\/problem\+json/);
    assert.equal(((await refused.res.json()) as { type: string }).type, '/problems/moderation-hidden');
    for (const key of [t.tenant.userKey, t.tenant.adminKey]) {
      const { res, sse } = await open(id, { key });
      assert.equal(res.status, 200);
      await sse!.closed();
      assert.deepEqual(sse!.statuses(), ['ready']);
      assert.deepEqual(
        sse!.decisions().map((d) => [d.decision, d.state, d.labels.map((l) => l.name)]),
        [['hold', 'held', ['nudity']]],
        'the current decision on connecting',
      );
    }
  });

  it('tells the owner and admin keys, and only them, what moderation decided on which labels; waits for the models first', async () => {
    const bobKey = (await t.ctx.tenancy.createKey({ tenantId: t.tenant.id, userId: 'bob' })).key;
    const client = new SessionClient(t.app, t.tenant.userKey);
    /** A ready media waiting for the models, as the worker leaves it when labeling is on. */
    const awaiting = async () => {
      const { completed } = await client.uploadWhole(Buffer.alloc(2000, 9), { filename: 'waiting.bin', chunkSize: 1024 });
      assert.equal(completed.statusCode, 201, completed.body);
      const id: string = completed.json().id;
      await writeWithEvents(t.ctx.database.db, t.ctx.changes, async (tx, record) => {
        await tx
          .updateTable('mediaassets')
          .set({ file_metadata: toJson({ pending: ['labels'] }) })
          .where('id', '=', id)
          .execute();
        await moveModerationState(tx, record, {
          tenantId: t.tenant.id,
          mediaId: id,
          from: 'none',
          to: 'pending',
          decision: 'await',
          labels: [],
          note: null,
          actor: null,
        });
      });
      return id;
    };
    const flag = (id: string, confidence: number) =>
      t.ctx.labels.addLabels({ system: true, tenantId: t.tenant.id }, id, [{ name: 'nudity', kind: 'moderation', confidence, source: 'model' }]);
    const settle = async (sse: SseReader) => {
      await sse.closed();
      return sse.decisions().map((d) => [d.decision, d.state, d.labels.map((l) => [l.name, l.confidence, l.threshold])]);
    };

    // Held: the stream says why, then ends.
    const held = await awaiting();
    const owners = await open(held);
    const admins = await open(held, { key: t.tenant.adminKey });
    assert.equal((await open(held, { key: bobKey })).res.status, 403, 'others do not see a media waiting for the models');
    await waitFor('the backlogs', async () => owners.sse!.decisions().length >= 1 && admins.sse!.decisions().length >= 1);
    assert.deepEqual(owners.sse!.statuses(), ['ready']);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(owners.sse!.ended, false, 'ready, but moderation still waits for the models');
    await flag(held, 0.9);
    for (const { sse } of [owners, admins]) {
      assert.deepEqual(await settle(sse!), [
        ['await', 'pending', []],
        ['hold', 'held', [['nudity', 0.9, 0.8]]],
      ]);
    }
    const record = (await t.app.inject({ url: `/api/v1/media/${held}`, headers: t.auth(t.tenant.userKey) })).json();
    assert.deepEqual(
      [record.moderation.decision, record.moderation.labels],
      ['hold', [{ name: 'nudity', confidence: 0.9, threshold: 0.8 }]],
      'the record says it too',
    );

    // Cleared by the models: every moderation label with its threshold; others see the status only.
    const cleared = await awaiting();
    const waiting = await open(cleared);
    await waitFor('the backlog', async () => waiting.sse!.decisions().length >= 1);
    await flag(cleared, 0.1);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(waiting.sse!.ended, false, 'a label under its threshold decides nothing until the models are done');
    await t.ctx.moderation.evaluate(t.tenant.id, cleared, { modelsDone: true });
    assert.deepEqual(await settle(waiting.sse!), [
      ['await', 'pending', []],
      ['clear', 'none', [['nudity', 0.1, 0.8]]],
    ]);
    const readyId = waiting.sse!.events.find((e) => e.event === 'status')!.id!;
    const replay = await open(cleared, { headers: { 'last-event-id': readyId } });
    assert.deepEqual(await settle(replay.sse!), [
      ['await', 'pending', []],
      ['clear', 'none', [['nudity', 0.1, 0.8]]],
    ]);
    for (const headers of [{}, { 'last-event-id': readyId }] as Array<Record<string, string>>) {
      const bobs = await open(cleared, { key: bobKey, headers });
      if (bobs.sse) {
        await bobs.sse.closed();
        assert.deepEqual(bobs.sse.decisions(), [], 'no moderation event for another user');
      } else assert.equal(bobs.res.status, 204, 'nothing left for another user');
    }

    // The models failed: nothing more to wait for (a moderator decides); the stream ends pending.
    const failed = await awaiting();
    const stuck = await open(failed);
    await waitFor('the backlog', async () => stuck.sse!.decisions().length >= 1);
    await writeWithEvents(t.ctx.database.db, t.ctx.changes, async (tx, record) => {
      await tx
        .updateTable('mediaassets')
        .set({ file_metadata: toJson({ pending: [], labeling: { state: 'failed', at: new Date().toISOString(), reason: 'the models gave up' } }) })
        .where('id', '=', failed)
        .execute();
      record({ tenantId: t.tenant.id, mediaId: failed, type: 'artifacts' });
    });
    assert.deepEqual(await settle(stuck.sse!), [['await', 'pending', []]]);
  });
});
