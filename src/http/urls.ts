import { captionFile } from '../media/captions-manifests.js';
import type { CaptionTrackView } from '../media/captions-service.js';
import type { MediaRecord, MediaView } from '../media/media-service.js';

/**
 * API URLs of what the API answers, derived when a response is made from the paths the database
 * holds (relative to the media folder), under the API prefix this process serves. None is stored:
 * a changed API_PREFIX applies to every media at once, and `urls` that older versions stored in
 * file_metadata are ignored.
 */

/** The URL of a media's file under the authenticated API. */
export function mediaFileUrl(prefix: string, mediaId: string, relative: string): string {
  return `${prefix}/media/${mediaId}/files/${relative}`;
}

function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, f)]));
  return value;
}

/** API URLs of a media's artifacts (paths in file_metadata.artifacts), in the same shape as the paths. */
export function artifactUrls(prefix: string, mediaId: string, artifacts: Record<string, unknown>): Record<string, unknown> {
  return mapStrings(artifacts, (p) => mediaFileUrl(prefix, mediaId, p)) as Record<string, unknown>;
}

/** file_metadata with `urls` beside `artifacts` (when it has any), in place of any stored. */
function withFileUrls(prefix: string, mediaId: string, meta: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) {
    if (k === 'urls') continue;
    out[k] = v;
    if (k === 'artifacts' && v && typeof v === 'object') out.urls = artifactUrls(prefix, mediaId, v as Record<string, unknown>);
  }
  return out;
}

export type CaptionTrackResponse = CaptionTrackView & { url: string };

export function captionTrackWithUrl(prefix: string, mediaId: string, track: CaptionTrackView): CaptionTrackResponse {
  return { ...track, url: mediaFileUrl(prefix, mediaId, captionFile(track.language, track.source)) };
}

export function mediaWithUrls<T extends MediaView>(prefix: string, media: T): T {
  return { ...media, file_metadata: withFileUrls(prefix, media.id, media.file_metadata) };
}

export type MediaRecordResponse = Omit<MediaRecord, 'caption_tracks'> & { urls: Record<string, unknown>; caption_tracks: CaptionTrackResponse[] };

export function recordWithUrls(prefix: string, record: MediaRecord): MediaRecordResponse {
  return {
    ...mediaWithUrls(prefix, record),
    urls: artifactUrls(prefix, record.id, record.artifacts),
    caption_tracks: record.caption_tracks.map((t) => captionTrackWithUrl(prefix, record.id, t)),
  };
}
