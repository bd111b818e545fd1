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
