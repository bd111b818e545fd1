import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { nowIso, toJson, type MediaKind, type MediaStatus, type ModerationState } from '../../src/db/schema.js';
import { newId } from '../../src/ids.js';
import { ensureLabel } from '../../src/labels/label-service.js';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';

interface Seed {
  tenantId?: string;
  userId?: string;
  caption?: string | null;
  title?: string | null;
  description?: string | null;
  filename?: string;
  tags?: string[];
  labels?: string[];
  /** Label confidence (0.9 unless given). */
  confidence?: number;
  fileMetadata?: Record<string, unknown>;
  kind?: MediaKind;
  status?: MediaStatus;
  moderation?: ModerationState;
  createdAt?: string;
}

/** Inserts a media row as ingest would, labels included, and tells the listeners (the indexer). */
async function insertMedia(t: TestApp, s: Seed): Promise<string> {
  const db = t.ctx.database.db;
  const id = newId();
  const tenantId = s.tenantId ?? t.tenant.id;
  const userId = s.userId ?? 'alice';
  const at = s.createdAt ?? nowIso();
  await db
    .insertInto('mediaassets')
    .values({
      id, tenant_id: tenantId, user_id: userId, status: s.status ?? 'ready', error_code: null, error_reason: null,
      kind: s.kind ?? 'video', original_filename: s.filename ?? `${id}.mp4`, mime_type: 'video/mp4', size: 10, sha256: 'x'.repeat(64),
      caption: s.caption ?? null, user_tags: toJson(s.tags ?? []), file_metadata: toJson(s.fileMetadata ?? { duration: 12.5, width: 1280, height: 720 }),
      upload_session_id: null, created_at: at, updated_at: at, processing_started_at: null, ready_at: at,
      playback_key: randomBytes(16).toString('hex'), title: s.title ?? null, description: s.description ?? null,
      moderation_state: s.moderation ?? 'none',
    })
    .execute();
  for (const name of s.labels ?? []) {
    const labelId = await ensureLabel(db, tenantId, name);
    await db
      .insertInto('asset_labels')
      .values({ id: newId(), tenant_id: tenantId, user_id: userId, media_id: id, label_id: labelId, source: 'model', count: 1, confidence: s.confidence ?? 0.9, frame_data: '[]', first_seen_at: at, last_seen_at: at })
      .execute();
  }
  await t.ctx.changes.emit({ tenantId, mediaId: id, reason: 'created' });
  return id;
}

type Page = { items: any[]; next_cursor: string | null };

describe('feeds', () => {
  let t: TestApp;
  const get = async (url: string, key?: string): Promise<Page> => {
    const res = await t.app.inject({ url, headers: t.auth(key ?? t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    return res.json();
  };

  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  it('new: ready media moderation has not held, newest first, in the item shape', async () => {
    const base = Date.parse('2024-05-01T00:00:00Z');
    const at = (i: number) => new Date(base + i * 1000).toISOString();
    const video = await insertMedia(t, {
      caption: 'the river', title: 'River', labels: ['water'], tags: ['Outdoor'], createdAt: at(1),
      fileMetadata: { duration: 31.5, width: 1440, height: 1080, display_width: 1920, display_height: 1080, artifacts: { hls: 'hls/master.m3u8', dash: 'dash/manifest.mpd', poster: { jpeg: 'posters/poster.jpg', webp: 'posters/poster.webp' } } },
    });
    const approved = await insertMedia(t, { caption: 'approved', moderation: 'approved', createdAt: at(2) });
    await insertMedia(t, { caption: 'held', moderation: 'held', createdAt: at(3) });
    await insertMedia(t, { caption: 'rejected', moderation: 'rejected', createdAt: at(4) });
    await insertMedia(t, { caption: 'processing', status: 'processing', createdAt: at(5) });
    await insertMedia(t, { caption: 'other tenant', tenantId: t.other.id, createdAt: at(6) });
    const newest = await insertMedia(t, { caption: 'newest', kind: 'audio', createdAt: at(7), fileMetadata: { duration: 5 } });

    const page = await get('/api/v1/feed/new');
    assert.deepEqual(page.items.map((i) => i.id), [newest, approved, video]);
    assert.equal(page.next_cursor, null);
    const item = page.items[2];
    assert.equal(item.kind, 'video');
    assert.equal(item.status, 'ready');
    assert.equal(item.title, 'River');
    assert.equal(item.caption, 'the river');
    assert.equal(item.duration, 31.5);
    assert.deepEqual([item.width, item.height], [1920, 1080], 'displayed size');
    assert.deepEqual(item.labels, ['water']);
    assert.deepEqual(item.tags, ['Outdoor']);
    assert.match(item.poster.jpeg, /\/play\/[^/]+\/posters\/poster\.jpg$/);
    assert.match(item.playback.hls, /\/play\/[^/]+\/hls\/master\.m3u8$/);
    assert.match(item.playback.dash, /\/play\/[^/]+\/dash\/manifest\.mpd$/);
    assert.equal(item.playback.webm, null);
    const poster = await t.app.inject({ url: new URL(item.poster.jpeg).pathname });
    assert.notEqual(poster.statusCode, 403, 'the poster URL is validly signed');
    const audio = page.items[0];
    assert.equal(audio.duration, 5);
    assert.equal(audio.width, null);
    assert.equal(audio.poster.jpeg, null);

    const theirs = await get('/api/v1/feed/new', t.other.userKey);
    assert.equal(theirs.items.length, 1);
    assert.equal(theirs.items[0].caption, 'other tenant');
  });

  it('new: cursor pages are stable when media arrive between pages', async () => {
    const all = (await get('/api/v1/feed/new?limit=100')).items.map((i) => i.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await get(`/api/v1/feed/new?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next_cursor;
      pages++;
      await insertMedia(t, { caption: 'arrived meanwhile' });
    } while (cursor && pages < 10);
    assert.equal(pages, 2);
    assert.deepEqual(seen, all);
    expectProblem(await t.app.inject({ url: '/api/v1/feed/new?cursor=bm9wZQ', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(await t.app.inject({ url: '/api/v1/feed/new?limit=1000', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    const searchCursor = (await get('/api/v1/feed/search?q=arrived&limit=1')).next_cursor!;
    expectProblem(
      await t.app.inject({ url: `/api/v1/feed/new?cursor=${encodeURIComponent(searchCursor)}`, headers: t.auth(t.tenant.userKey) }),
      400,
      'validation-failed',
    );
  });

  it('search: relevance order in the item shape, ready media only, paged', async () => {
    const caption = await insertMedia(t, { caption: 'wombat burrow' });
    const tag = await insertMedia(t, { caption: 'hole in the ground', tags: ['wombat'] });
    await insertMedia(t, { caption: 'wombat queued', status: 'queued' });
    const first = await get('/api/v1/feed/search?q=womb&limit=1');
    assert.deepEqual(first.items.map((i) => i.id), [caption]);
    assert.equal(first.items[0].score, undefined, 'feed items have no score');
    const second = await get(`/api/v1/feed/search?q=womb&limit=1&cursor=${encodeURIComponent(first.next_cursor!)}`);
    assert.deepEqual(second.items.map((i) => i.id), [tag]);
    assert.equal(second.next_cursor, null);
    expectProblem(await t.app.inject({ url: '/api/v1/feed/search?q=womb&status=queued', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
    expectProblem(await t.app.inject({ url: '/api/v1/feed/search', headers: t.auth(t.tenant.userKey) }), 400, 'validation-failed');
  });
});
