import path from 'node:path';
import type { Db } from '../db/database.js';
import { fromJson } from '../db/schema.js';
import { AppError, notFound } from '../shared/errors.js';
import { joinKey, keyBelow, mediaPrefix, UnsafePathError, type MediaRef } from '../storage/layout.js';
import type { MediaStore, ServeStrategy, StoredObject } from '../storage/store.js';
import type { Principal } from '../tenancy/principal.js';
import type { PlaybackTokens } from './playback-tokens.js';
import { assertModerationVisible, checkPlaybackToken, playbackSigningKey } from '../access/visibility.js';
import { captionFile } from './captions-manifests.js';
import { isOwnerOrAdmin } from '../access/ownership.js';

/** Folders of a media item that playback URLs may reach (never the original upload). */
const PLAYABLE = new Set(['hls', 'dash', 'webm', 'webp', 'thumbnails', 'posters', 'transcripts']);

const TYPES: Record<string, string> = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.mpd': 'application/dash+xml',
  '.m4s': 'video/mp4',
  '.mp4': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.webm': 'video/webm',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.vtt': 'text/vtt; charset=utf-8',
  '.json': 'application/json',
};

export function contentTypeFor(file: string): string {
  // The audio step names its rendition audio.webm: sound only, so players pick an audio element.
  if (path.basename(file) === 'audio.webm') return 'audio/webm';
  return TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

const PLAYLIST = /\.(m3u8|mpd)$/i;

/** Files whose relative references resolve against their own URL (segments, caption files, sprite cells): never redirected. */
const REFERS_RELATIVELY = /\.(m3u8|mpd|vtt)$/i;

/** A file fetched with an API key: playlists change when media is reprocessed; everything else is written once under its name. */
export function apiCacheControl(file: string): string {
  return PLAYLIST.test(file) ? 'private, max-age=30' : 'private, max-age=31536000, immutable';
}

/**
 * A file behind a playback token is cached no longer than the token is valid, and only by the
 * player's own browser: a shared cache would go on serving it after the media was held.
 */
export function playbackCacheControl(file: string, tokenExpiresAt: number, now = Date.now()): string {
  const left = Math.max(0, Math.floor((tokenExpiresAt - now) / 1000));
  return `private, max-age=${PLAYLIST.test(file) ? Math.min(30, left) : left}`;
}

/** Artifacts as the worker records them in file_metadata.artifacts: paths relative to the media folder. */
export interface ArtifactPaths {
  hls?: string;
  dash?: string;
  webm?: string;
  thumbnails?: string[];
  sprite?: { image: string; vtt: string };
  poster?: { jpeg?: string; webp?: string };
  /** Images: the full picture as WebP. */
  webp?: string;
  /** Audio: the spectrogram picture, and the cover art the file carries. */
  spectrogram?: string;
  cover?: { jpeg?: string; webp?: string };
}

export interface PackageView {
  media_id: string;
  status: string;
  expires_at: string;
  hls: string | null;
  dash: string | null;
  webm: string | null;
  poster: { jpeg: string | null; webp: string | null };
  thumbnails: string[];
  sprite: { image: string; vtt: string } | null;
  webp: string | null;
  spectrogram: string | null;
  cover: { jpeg: string | null; webp: string | null } | null;
  /** Caption tracks (WebVTT), also offered in the HLS master and the DASH manifest. */
  captions: Array<{ language: string; label: string; kind: string; url: string }>;
  pending: string[];
}

/** A stored file a request may have, and how to answer with it. */
export interface ServableFile {
  /** Send the local file, redirect to a signed URL, or stream it (see MediaStore.serve). */
  how: ServeStrategy;
  contentType: string;
  cacheControl: string;
}

/** What a store's lookup raises for a file that cannot be served: not there, a path through something that is no folder, a loop of links, a name too long, no access. */
const UNSERVABLE = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'EACCES']);

function cleanRelative(rel: string): string {
  const decoded = rel.split('/').filter((s) => s && s !== '.');
  if (!decoded.length || decoded.some((s) => s === '..' || s.includes('\\') || s.includes('\0'))) throw notFound('file');
  return decoded.join('/');
}

/**
 * Hands out artifact URLs and resolves requests for stored files: signed playback URLs for
 * players, and the same files under the authenticated API for clients with a key.
 */
export class DeliveryService {
  constructor(
    private readonly db: Db,
    private readonly store: MediaStore,
    private readonly tokens: PlaybackTokens,
    private readonly ttlMs: number,
  ) {}

  async package(p: Principal, mediaId: string, baseUrl: string, now = Date.now()): Promise<PackageView> {
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'user_id', 'status', 'file_metadata', 'playback_key', 'moderation_state'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    assertModerationVisible(p, row);
    const meta = fromJson<{ artifacts?: ArtifactPaths; pending?: string[] }>(row.file_metadata, {});
    const a = meta.artifacts ?? {};
    const expiresAt = now + this.ttlMs;
    const signKey = playbackSigningKey(row);
    const token = signKey ? this.tokens.sign(row.id, signKey, expiresAt) : undefined;
    const url = (rel: string | undefined) => (rel && token ? `${baseUrl}/play/${token}/${rel}` : null);
    const captionTracks = await this.db
      .selectFrom('caption_tracks')
      .select(['language', 'label', 'kind'])
      .where('tenant_id', '=', p.tenantId)
      .where('media_id', '=', row.id)
      .orderBy('language')
      .execute();
    return {
      media_id: row.id,
      status: row.status,
      expires_at: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString(),
      hls: url(a.hls),
      dash: url(a.dash),
      webm: url(a.webm),
      poster: { jpeg: url(a.poster?.jpeg), webp: url(a.poster?.webp) },
      thumbnails: (a.thumbnails ?? []).map((t) => url(t)!).filter(Boolean),
      sprite: a.sprite && token ? { image: url(a.sprite.image)!, vtt: url(a.sprite.vtt)! } : null,
      webp: url(a.webp),
      spectrogram: url(a.spectrogram),
      cover: a.cover ? { jpeg: url(a.cover.jpeg), webp: url(a.cover.webp) } : null,
      captions: token ? captionTracks.map((t) => ({ ...t, url: url(captionFile(t.language))! })) : [],
      pending: meta.pending ?? [],
    };
  }

  /** A file behind a playback token: 403 for a bad or expired token, 404 for what is not there. */
  async resolvePlayback(token: string, rel: string, now = Date.now()): Promise<ServableFile> {
    const claims = this.tokens.parse(token);
    if (!claims) throw new AppError('forbidden', 'the playback token is not valid');
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'playback_key', 'moderation_state'])
      .where('id', '=', claims.mediaId)
      .executeTakeFirst();
    const verdict = row?.playback_key ? checkPlaybackToken((key) => this.tokens.verify(claims, key, now), row.playback_key, row.moderation_state) : 'invalid';
    if (verdict === 'hidden') throw new AppError('moderation-hidden', 'the media is held for moderation or was rejected');
    if (!row || verdict !== 'ok') {
      throw new AppError('forbidden', claims.expiresAt <= now ? 'the playback token has expired' : 'the playback token is not valid');
    }
    const clean = cleanRelative(rel);
    const playable = (file: string) => PLAYABLE.has(file.split('/')[0]!);
    if (!playable(clean)) throw notFound('file');
    const file = await this.stored({ tenantId: row.tenant_id, userId: row.user_id, mediaId: row.id }, clean, playable);
    return this.servable(file, playbackCacheControl(file.relative, claims.expiresAt, now), claims.expiresAt);
  }

  /** A stored file of a media of the caller's tenant (the original included, for its owner or an admin). */
  async resolveForApi(p: Principal, mediaId: string, rel: string): Promise<ServableFile> {
    const row = await this.db
      .selectFrom('mediaassets')
      .select(['id', 'tenant_id', 'user_id', 'moderation_state'])
      .where('id', '=', mediaId)
      .where('tenant_id', '=', p.tenantId)
      .executeTakeFirst();
    if (!row) throw notFound('media');
    assertModerationVisible(p, row);
    const clean = cleanRelative(rel);
    const ownerOrAdmin = isOwnerOrAdmin(p, row.user_id);
    const allowed = (file: string) => {
      const folder = file.split('/')[0]!;
      return PLAYABLE.has(folder) || (folder === 'media' && ownerOrAdmin);
    };
    if (!allowed(clean)) throw notFound('file');
    const file = await this.stored({ tenantId: row.tenant_id, userId: row.user_id, mediaId: row.id }, clean, allowed);
    return this.servable(file, apiCacheControl(file.relative), Date.now() + this.ttlMs);
  }

  /**
   * A file of a media's folder where it really is: one that is really elsewhere (a local store
   * follows links: out of the folder, or into a part of it the caller may not read, the original)
   * is not found. `relative` is where it is below the media's prefix.
   */
  private async stored(ref: MediaRef, clean: string, allowed: (file: string) => boolean): Promise<{ object: StoredObject; relative: string }> {
    const prefix = mediaPrefix(ref);
    try {
      const object = await this.store.stat(joinKey(prefix, clean));
      const relative = object && keyBelow(object.key, prefix);
      if (!object || !relative || !allowed(relative)) throw notFound('file');
      return { object, relative };
    } catch (err) {
      if (err instanceof UnsafePathError || UNSERVABLE.has((err as NodeJS.ErrnoException).code ?? '')) throw notFound('file');
      throw err;
    }
  }

  /** How the store answers with a file, with our types and caching; `expiresAt` bounds a signed URL. */
  private async servable(file: { object: StoredObject; relative: string }, cacheControl: string, expiresAt: number): Promise<ServableFile> {
    const contentType = contentTypeFor(file.relative);
    const how = await this.store.serve(file.object, { contentType, cacheControl, expiresAt, redirect: !REFERS_RELATIVELY.test(file.relative) });
    return { how, contentType, cacheControl };
  }
}
