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

/** Name of a chunked session's data file inside its chunk folder (never matches `<index>.chunk`). */
export const SESSION_DATA_FILE = 'upload.data';

export interface MediaRef {
  tenantId: string;
  userId: string;
  mediaId: string;
}

export class StorageLayout {
  readonly root: string;
  constructor(root: string, readonly chunkDirName: string) {
    this.root = path.resolve(root);
  }

  /** <root>/<tenant>/<user>/<media> */
  mediaDir(ref: MediaRef): string {
    return safeJoin(this.root, assertId('tenant', ref.tenantId), assertId('user', ref.userId), assertId('media', ref.mediaId));
  }

  mediaFolder(ref: MediaRef, folder: MediaFolder): string {
    return safeJoin(this.mediaDir(ref), folder);
  }

  /** The stored original, named from ids and the detected extension, never from the client's name. */
  originalFile(ref: MediaRef, ext: string): string {
    const safeExt = /^[a-z0-9]{1,8}$/.test(ext) ? ext : 'bin';
    return safeJoin(this.mediaFolder(ref, 'media'), `original.${safeExt}`);
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
