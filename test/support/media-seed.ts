import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { nowIso, toJson, type MediaKind, type MediaStatus, type ModerationState } from '../../src/db/schema.js';
import { newId } from '../../src/shared/ids.js';
import { ensureLabel } from '../../src/labels/media-label-store.js';
import type { TestApp } from './harness.js';
import { SessionClient } from './upload-client.js';

export interface MediaSeed {
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

/**
 * Inserts a media row as ingest would, labels included (source model), and tells the listeners
 * (the search indexer): a library for search, feed and recommendation tests without uploads.
 */
export async function insertMedia(t: TestApp, s: MediaSeed): Promise<string> {
  const db = t.ctx.database.db;
  const id = newId();
  const tenantId = s.tenantId ?? t.tenant.id;
  const userId = s.userId ?? 'alice';
  const at = s.createdAt ?? nowIso();
  await db
    .insertInto('mediaassets')
    .values({
      id,
      tenant_id: tenantId,
      user_id: userId,
      status: s.status ?? 'ready',
      error_code: null,
      error_reason: null,
      kind: s.kind ?? 'video',
      original_filename: s.filename ?? `${id}.mp4`,
      mime_type: 'video/mp4',
      size: 10,
      sha256: 'x'.repeat(64),
      caption: s.caption ?? null,
      user_tags: toJson(s.tags ?? []),
      file_metadata: toJson(s.fileMetadata ?? { duration: 12.5, width: 1280, height: 720 }),
      upload_session_id: null,
      created_at: at,
      updated_at: at,
      processing_started_at: null,
      ready_at: at,
      playback_key: randomBytes(16).toString('hex'),
      title: s.title ?? null,
      description: s.description ?? null,
      moderation_state: s.moderation ?? 'none',
    })
    .execute();
  for (const name of s.labels ?? []) {
    const labelId = await ensureLabel(db, tenantId, name);
    await db
      .insertInto('asset_labels')
      .values({
        id: newId(),
        tenant_id: tenantId,
        user_id: userId,
        media_id: id,
        label_id: labelId,
        source: 'model',
        count: 1,
        confidence: s.confidence ?? 0.9,
        frame_data: '[]',
        first_seen_at: at,
        last_seen_at: at,
      })
      .execute();
  }
  await t.ctx.changes.emit({ tenantId, mediaId: id, reason: 'created' });
  return id;
}

/**
 * Inserts `count` ready media of one user at once, each with the given labels (source model) and
 * tags, created a second apart (the last newest), and indexes them as the indexer does (which also
 * fills `media_tags`): a library too large to insert one by one. Returns their ids, oldest first.
 */
export async function insertManyMedia(
  t: TestApp,
  count: number,
  s: { labels?: string[]; tags?: string[]; userId?: string; kind?: MediaKind; newest?: number },
): Promise<string[]> {
  const db = t.ctx.database.db;
  const tenantId = t.tenant.id;
  const userId = s.userId ?? 'alice';
  const newest = s.newest ?? Date.now();
  const labelIds: string[] = [];
  for (const name of s.labels ?? []) labelIds.push(await ensureLabel(db, tenantId, name));
  const ids: string[] = [];
  for (let b = 0; b < count; b += 200) {
    const rows = Array.from({ length: Math.min(200, count - b) }, (_, k) => {
      const at = new Date(newest - (count - 1 - (b + k)) * 1000).toISOString();
      return {
        id: newId(),
        tenant_id: tenantId,
        user_id: userId,
        status: 'ready' as const,
        error_code: null,
        error_reason: null,
        kind: s.kind ?? ('video' as const),
        original_filename: `bulk-${b + k}.mp4`,
        mime_type: 'video/mp4',
        size: 10,
        sha256: 'x'.repeat(64),
        caption: null,
        user_tags: toJson(s.tags ?? []),
        file_metadata: toJson({}),
        upload_session_id: null,
        created_at: at,
        updated_at: at,
        processing_started_at: null,
        ready_at: at,
        playback_key: randomBytes(8).toString('hex'),
        title: null,
        description: null,
      };
    });
    await db.insertInto('mediaassets').values(rows).execute();
    const links = rows.flatMap((r) =>
      labelIds.map((labelId) => ({
        id: newId(),
        tenant_id: tenantId,
        user_id: userId,
        media_id: r.id,
        label_id: labelId,
        source: 'model' as const,
        count: 1,
        confidence: 0.9,
        frame_data: '[]',
        first_seen_at: r.created_at,
        last_seen_at: r.created_at,
      })),
    );
    if (links.length) await db.insertInto('asset_labels').values(links).execute();
    ids.push(...rows.map((r) => r.id));
  }
  await t.ctx.discovery.indexer.reindexMany(tenantId, ids);
  return ids;
}

/**
 * Uploads a small file as `key`'s user and gives it a poster file (`posters/poster.jpg`, holding
 * `poster`) recorded as an artifact, so that its package has a playback URL. Returns its id and folder.
 */
export async function uploadWithPoster(t: TestApp, key: string, poster: string): Promise<{ id: string; dir: string }> {
  const client = new SessionClient(t.app, key);
  const { completed } = await client.uploadWhole(randomBytes(1000), { filename: 'clip.bin', chunkSize: 1024 });
  assert.equal(completed.statusCode, 201, completed.body);
  const media = completed.json();
  const dir = t.ctx.layout.mediaDir({ tenantId: media.tenant_id, userId: media.user_id, mediaId: media.id });
  await fs.mkdir(path.join(dir, 'posters'), { recursive: true });
  await fs.writeFile(path.join(dir, 'posters', 'poster.jpg'), poster);
  await t.ctx.database.db
    .updateTable('mediaassets')
    .set({ file_metadata: JSON.stringify({ artifacts: { poster: { jpeg: 'posters/poster.jpg' } } }) })
    .where('id', '=', media.id)
    .execute();
  return { id: media.id, dir };
}
