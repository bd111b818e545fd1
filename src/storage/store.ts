import type { Readable } from 'node:stream';

/**
 * Where media files are kept: originals and everything derived from them. Files are named by
 * keys, relative '/'-separated paths such as `<tenant>/<user>/<media>/hls/master.m3u8` (see
 * `mediaPrefix` and `assertKey` in layout.ts); file_metadata records keys, and URLs show the part
 * below the media's prefix. The local folder is the first backend (LocalStore); an object store
 * (S3) is meant to be the second, so nothing here assumes a file system: no folders (a prefix is
 * all the keys below it), no renames (publishing a folder is one call), no paths except where a
 * local file is explicitly asked for (`withLocalFile`, `scratchRoot`) or handed in (`putFile`,
 * `publishFolder`).
 *
 * Every method refuses a key that is not one with UnsafePathError. A key that is not stored is
 * `undefined` from `stat`, `false` from `moveToLocal`, nothing for the deletes, and an error with
 * `code: 'ENOENT'` from `read` and `withLocalFile` (see `isNotStored`).
 *
 * Upload staging (chunk sessions, tus files, the hand-off of a finished upload) and processing
 * scratch folders are not in the store: they are local by nature (sparse files written at
 * offsets, ffmpeg's working folders) and live under StorageLayout; a finished upload enters the
 * store through `putFile`, a processing run's outputs through `publishFolder`.
 */
export interface MediaStore {
  /** Stores `data` under `key`, replacing what was there; readers see the old or the new object, never part of one. */
  put(key: string, data: string | Uint8Array | Readable): Promise<void>;
  /** Stores a local file under `key`; `move` hands the file over (a rename where it can be, the file is gone after). */
  putFile(key: string, file: string, opts?: { move?: boolean }): Promise<void>;
  /** Moves an object out to a local file (the inverse of a moving putFile); false when there is none. */
  moveToLocal(key: string, file: string): Promise<boolean>;
  /** The object's bytes, or those of `range` (inclusive offsets, as in HTTP). */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /** The object, or undefined when there is none. */
  stat(key: string): Promise<StoredObject | undefined>;
  /** Every object below `prefix` (empty: every object), in key order. */
  list(prefix: string): Promise<StoredObject[]>;
  /** Removes one object; one that is not there is fine. */
  delete(key: string): Promise<void>;
  /** Removes every object below `prefix`, and whatever the store kept for it (scratch, folders moved aside). */
  deletePrefix(prefix: string): Promise<void>;
  /**
   * Replaces everything below `prefix` with the files of the local folder `dir`, which is used up.
   * The local store swaps folders with renames, so readers see the old or the new folder; an
   * object store uploads the new files (playlists and manifests last, so they never name a
   * segment that is not there yet) and then removes keys the folder no longer has.
   */
  publishFolder(dir: string, prefix: string): Promise<void>;
  /**
   * Runs `fn` with a local path holding the object's bytes (for ffmpeg, sharp and other tools that
   * want a file). The local store hands its own file (nothing is copied); an object store downloads
   * to a temporary file removed when `fn` settles. `fn` must not change the file.
   */
  withLocalFile<T>(key: string, fn: (file: string) => Promise<T>): Promise<T>;
  /**
   * The local folder in which scratch folders for outputs that will be published below `prefix`
   * are made (see scratch.ts). The local store answers the prefix's own folder, so publishing is a
   * rename on one file system (refusing one reached through a symbolic link, as every write
   * does); an object store answers a folder of local staging.
   */
  scratchRoot(prefix: string): Promise<string>;
  /** How to answer an HTTP request for an object `stat` just found (see ServeStrategy). */
  serve(object: StoredObject, opts: ServeOptions): Promise<ServeStrategy>;
  /** Throws when the store cannot be written (readiness). */
  probe(): Promise<void>;
}

export interface StoredObject {
  /**
   * Where the bytes are: the key asked for, except that a local store follows symbolic links
   * inside its root and answers the key they lead to (callers check it is where they allow).
   */
  key: string;
  size: number;
  modified: Date;
  /** The backend's entity tag, when it keeps one (an object store's ETag). */
  etag?: string;
}

/** Inclusive byte offsets, as in an HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ServeOptions {
  /** The Content-Type the answer carries (our own types, not the backend's guess). */
  contentType: string;
  /** The Cache-Control the answer carries. */
  cacheControl: string;
  /** Until when (ms since the epoch) the answer may be used: a signed URL expires no later. */
  expiresAt: number;
  /**
   * Whether the client may be sent elsewhere. Not for files whose relative references resolve
   * against their own URL (playlists, manifests, WebVTT): redirected, their segments would resolve
   * against the object store and miss the playback token.
   */
  redirect: boolean;
}

/**
 * How a stored file reaches a client: a local file sent by the HTTP layer (Range, ETag), a
 * redirect to a signed, expiring URL of the object store, or the object streamed through the app.
 */
export type ServeStrategy =
  | { kind: 'file'; root: string; relative: string }
  | { kind: 'redirect'; url: string }
  | { kind: 'stream'; object: StoredObject; open(range?: ByteRange): Promise<Readable> };

/** Whether an error says the key is not stored (`read`, `withLocalFile`). */
export function isNotStored(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** The error a store raises for a key that is not stored. */
export function notStored(key: string): Error {
  return Object.assign(new Error(`nothing is stored under ${key}`), { code: 'ENOENT' });
}

/** An object's bytes as UTF-8 text (for small files: playlists, manifests, captions). */
export async function readText(store: MediaStore, key: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(key)) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}
