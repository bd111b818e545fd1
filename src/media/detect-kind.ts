import fs from 'node:fs/promises';
import { fileTypeFromFile } from 'file-type';
import type { MediaKind } from '../db/schema.js';
import { ffprobe, hasAudio, hasVideo, ProbeError } from '../tools/ffprobe.js';

export interface DetectedType {
  kind: MediaKind;
  mime: string;
  ext: string;
  /** Why the kind was chosen, for logs. */
  via: 'magic' | 'ffprobe' | 'text' | 'unknown';
}

const DOCUMENT_MIMES = new Set(['application/pdf', 'application/epub+zip']);
const AV_CONTAINER_MIMES = new Set(['application/ogg', 'application/x-matroska', 'application/mxf', 'application/vnd.ms-asf']);

function isAudioVisual(mime: string): boolean {
  return mime.startsWith('video/') || mime.startsWith('audio/') || AV_CONTAINER_MIMES.has(mime);
}

async function looksLikeText(file: string): Promise<boolean> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const head = buf.subarray(0, bytesRead);
    if (head.includes(0)) return false;
    try {
      // A multi-byte character cut at the buffer's end is not an error.
      new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(0, Math.max(0, bytesRead - 4)));
      return true;
    } catch {
      return false;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Decides what a stored file is from its bytes, never its name: magic numbers first, then
 * (hardened) ffprobe for containers whose streams decide between video and audio, and for
 * what magic numbers do not know.
 */
export async function detectKind(file: string, probeTimeoutMs: number): Promise<DetectedType> {
  const ft = await fileTypeFromFile(file);
  if (ft) {
    if (ft.mime.startsWith('image/')) return { kind: 'image', mime: ft.mime, ext: ft.ext, via: 'magic' };
    if (DOCUMENT_MIMES.has(ft.mime)) return { kind: 'document', mime: ft.mime, ext: ft.ext, via: 'magic' };
    if (isAudioVisual(ft.mime)) {
      const fallback: MediaKind = ft.mime.startsWith('audio/') ? 'audio' : 'video';
      try {
        const probe = await ffprobe(file, probeTimeoutMs);
        const kind: MediaKind = hasVideo(probe) ? 'video' : hasAudio(probe) ? 'audio' : fallback;
        const mime = kind === 'audio' && ft.mime.startsWith('video/') ? ft.mime.replace('video/', 'audio/') : ft.mime;
        return { kind, mime, ext: ft.ext, via: 'ffprobe' };
      } catch (err) {
        if (!(err instanceof ProbeError)) throw err;
        // Unreadable streams: keep the container's kind; the worker reports the damage.
        return { kind: fallback, mime: ft.mime, ext: ft.ext, via: 'magic' };
      }
    }
    return { kind: 'other', mime: ft.mime, ext: ft.ext, via: 'magic' };
  }
  try {
    const probe = await ffprobe(file, probeTimeoutMs);
    if (hasVideo(probe) || hasAudio(probe)) {
      const kind: MediaKind = hasVideo(probe) ? 'video' : 'audio';
      const format = probe.format.format_name?.split(',')[0] ?? 'bin';
      return {
        kind,
        mime: kind === 'video' ? 'video/octet-stream' : 'audio/octet-stream',
        ext: format.replace(/[^a-z0-9]/g, '').slice(0, 8) || 'bin',
        via: 'ffprobe',
      };
    }
  } catch (err) {
    if (!(err instanceof ProbeError)) throw err;
  }
  if (await looksLikeText(file)) return { kind: 'other', mime: 'text/plain', ext: 'txt', via: 'text' };
  return { kind: 'other', mime: 'application/octet-stream', ext: 'bin', via: 'unknown' };
}

/** Kinds the worker derives files for; anything else is ready as soon as it is stored. */
export function needsProcessing(kind: MediaKind): boolean {
  return kind !== 'other';
}

const CLAIMS: Array<[RegExp, MediaKind]> = [
  [/\.(mp4|m4v|mov|mkv|webm|avi|wmv|flv|mts|m2ts|ts|3gp|3g2|mpg|mpeg|ogv|mxf|m3u8|m3u|mpd|ffconcat)$/i, 'video'],
  [/\.(mp3|m4a|aac|flac|ogg|oga|opus|wav|aif|aiff|amr|wma)$/i, 'audio'],
  [/\.(jpe?g|png|gif|webp|heic|heif|avif|tiff?|bmp)$/i, 'image'],
  [/\.(pdf|epub)$/i, 'document'],
];

/**
 * What the client says the file is, from its name or declared type. Never used to decide the
 * kind; only to tell a person that a file sent as a video is not one (rather than quietly
 * storing it as an opaque file).
 */
export function claimedKind(filename: string, contentType: string | null): MediaKind | undefined {
  for (const [re, kind] of CLAIMS) if (re.test(filename)) return kind;
  const ct = contentType?.toLowerCase() ?? '';
  if (ct.startsWith('video/') || ct.includes('mpegurl') || ct.includes('dash+xml')) return 'video';
  if (ct.startsWith('audio/')) return 'audio';
  if (ct.startsWith('image/')) return 'image';
  if (ct === 'application/pdf' || ct === 'application/epub+zip') return 'document';
  return undefined;
}
