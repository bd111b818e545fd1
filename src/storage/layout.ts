import path from 'node:path';

/** Sub-folders of one media item, as the storage layout names them. */
export const MEDIA_FOLDERS = ['media', 'hls', 'dash', 'webm', 'webp', 'thumbnails', 'posters', 'transcripts'] as const;
export type MediaFolder = (typeof MEDIA_FOLDERS)[number];

const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

/** Ids become path segments: only a conservative alphabet is ever accepted. */
export function assertId(kind: string, value: string): string {
  if (!ID.test(value)) throw new UnsafePathError(`${kind} id is not a safe path segment`);
  return value;
}

/**
 * Joins segments under a root and refuses any result outside it (.., absolute parts,
 * NUL bytes). Every storage path goes through here.
 */
export function safeJoin(root: string, ...segments: string[]): string {
  const base = path.resolve(root);
  for (const s of segments) {
    if (s.includes('\0')) throw new UnsafePathError('path segment contains NUL');
  }
  const full = path.resolve(base, ...segments);
  if (full !== base && !full.startsWith(base + path.sep)) throw new UnsafePathError('path escapes the storage root');
  return full;
}

/**
 * One segment of a storage key: not empty, no leading dot (dot names in a stored folder belong to
 * the store and its scratch folders: `.work-…`, `.old-…`, temporary files), no separator, no
 * control character.
 */
const KEY_SEGMENT = /^[^./\\\u0000-\u001f][^/\\\u0000-\u001f]*$/;
const MAX_KEY_LENGTH = 1024;

/**
 * Refuses anything that is not a storage key: keys are relative, '/'-separated paths of the
 * layout below (`<tenant>/<user>/<media>/<folder>/<file>`), the same on every backend. No `..`,
 * `.`, empty or dot-led segment, no absolute key, no backslash or NUL.
 */
export function assertKey(key: string): string {
  if (typeof key !== 'string' || !key || key.length > MAX_KEY_LENGTH) throw new UnsafePathError('not a storage key');
  for (const segment of key.split('/')) {
    if (!KEY_SEGMENT.test(segment)) throw new UnsafePathError('storage key has a segment that is not allowed');
  }
  return key;
}

/** `rest` below `prefix` (the empty prefix is the top), checked as a key. */
export function joinKey(prefix: string, rest: string): string {
  return assertKey(prefix ? `${prefix}/${rest}` : rest);
}

/** What `key` names below `prefix`, or undefined when it is not below it. */
export function keyBelow(key: string, prefix: string): string | undefined {
  if (!prefix) return key;
  return key.startsWith(`${prefix}/`) && key.length > prefix.length + 1 ? key.slice(prefix.length + 1) : undefined;
}

/** Name of a chunked session's data file inside its chunk folder (never matches `<index>.chunk`). */
export const SESSION_DATA_FILE = 'upload.data';

export interface MediaRef {
  tenantId: string;
  userId: string;
  mediaId: string;
}

/** Key prefix of one media item's files: `<tenant>/<user>/<media>`. */
export function mediaPrefix(ref: MediaRef): string {
  return `${assertId('tenant', ref.tenantId)}/${assertId('user', ref.userId)}/${assertId('media', ref.mediaId)}`;
}

/** Key of the stored original, named from ids and the detected extension, never from the client's name. */
export function originalKey(ref: MediaRef, ext: string): string {
  const safeExt = /^[a-z0-9]{1,8}$/.test(ext) ? ext : 'bin';
  return `${mediaPrefix(ref)}/media/original.${safeExt}`;
}

/**
 * Local paths under the storage root. Media files are reached through a MediaStore by key (see
 * store.ts); what stays here are the folders that are local by nature — upload staging (chunk
 * sessions, tus, the hand-off folder) — and the local store's own mapping of keys to paths.
 */
export class StorageLayout {
  readonly root: string;
  constructor(
    root: string,
    readonly chunkDirName: string,
  ) {
    this.root = path.resolve(root);
  }

  /** <root>/<tenant>/<user>/<media> */
  mediaDir(ref: MediaRef): string {
    return safeJoin(this.root, ...mediaPrefix(ref).split('/'));
  }

  mediaFolder(ref: MediaRef, folder: MediaFolder): string {
    return safeJoin(this.mediaDir(ref), folder);
  }

  /** The stored original, named from ids and the detected extension, never from the client's name. */
  originalFile(ref: MediaRef, ext: string): string {
    return safeJoin(this.root, ...originalKey(ref, ext).split('/'));
  }

  /** <root>/<chunks>/<tenant> */
  chunkRoot(tenantId: string): string {
    return safeJoin(this.root, this.chunkDirName, assertId('tenant', tenantId));
  }

  /** <root>/<chunks>/<tenant>/<session> */
  sessionChunkDir(tenantId: string, sessionId: string): string {
    return safeJoin(this.chunkRoot(tenantId), assertId('session', sessionId));
  }

  chunkFile(tenantId: string, sessionId: string, index: number): string {
    if (!Number.isSafeInteger(index) || index < 0) throw new UnsafePathError('chunk index is not a whole number');
    return safeJoin(this.sessionChunkDir(tenantId, sessionId), `${index}.chunk`);
  }

  /** The one file a chunked session's bytes are written into, each chunk at index × chunk_size. */
  sessionDataFile(tenantId: string, sessionId: string): string {
    return safeJoin(this.sessionChunkDir(tenantId, sessionId), SESSION_DATA_FILE);
  }

  /** Held (created exclusively) while one request writes a chunk, so two sends of one index never interleave. */
  chunkLockFile(tenantId: string, sessionId: string, index: number): string {
    if (!Number.isSafeInteger(index) || index < 0) throw new UnsafePathError('chunk index is not a whole number');
    return safeJoin(this.sessionChunkDir(tenantId, sessionId), `${index}.lock`);
  }

  /** Where tus keeps its in-progress files (one flat folder, ids chosen by the server). */
  tusDir(): string {
    return safeJoin(this.root, this.chunkDirName, 'tus');
  }

  /** A scratch folder on the same file system, so renames out of it are atomic. */
  tmpDir(): string {
    return safeJoin(this.root, this.chunkDirName, 'tmp');
  }

  /** Relative path of a stored file, as kept in file_metadata and used in URLs. */
  relative(file: string): string {
    const rel = path.relative(this.root, file);
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new UnsafePathError('path escapes the storage root');
    return rel.split(path.sep).join('/');
  }
}
