import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isWritableDir, removePath } from './files.js';
import { assertKey, safeJoin, UnsafePathError } from './layout.js';
import { notStored, type ByteRange, type MediaStore, type ServeOptions, type ServeStrategy, type StoredObject } from './store.js';

/** Prefix of a folder a publish moved aside (or staged), in the folder's parent; such folders are only ever deleted. */
export const ASIDE_PREFIX = '.old-';

/** What realpath and stat answer for a key that names no file: not there, through something that is no folder, a loop of links, a name too long. */
const NOT_THERE = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? '';
}

/**
 * The media store over a local folder: a key is the path below `root`. Reads follow symbolic
 * links as long as they stay inside the root (and report the key they lead to, so callers can
 * hold it to where they allow: see StoredObject.key); writes, deletes, listings and moves never
 * go through a link below the root, so a link planted in storage cannot turn them onto another
 * media's files. The root itself may be a link (operators mount storage anywhere).
 */
export class LocalStore implements MediaStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  private pathOf(key: string): string {
    return safeJoin(this.root, ...assertKey(key).split('/'));
  }

  private prefixPath(prefix: string): string {
    return prefix ? this.pathOf(prefix) : this.root;
  }

  /**
   * Where a key really is, following every link on the way, with the key of that place; an
   * UnsafePathError when that is outside the root, or a name that is no key. Rejects with the
   * file system's error (ENOENT…) when there is nothing.
   */
  private async resolve(key: string): Promise<{ file: string; key: string }> {
    const lexical = this.pathOf(key);
    const [root, file] = await Promise.all([fs.realpath(this.root), fs.realpath(lexical)]);
    if (!file.startsWith(root + path.sep)) throw new UnsafePathError('the key leads outside the store');
    return { file, key: assertKey(path.relative(root, file).split(path.sep).join('/')) };
  }

  /** Refuses a folder below the root that is, or is reached through, a symbolic link (what exists of it is checked). */
  private async assertNoLinks(dir: string): Promise<void> {
    const rel = path.relative(this.root, dir);
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new UnsafePathError('path escapes the storage root');
    const parts = rel ? rel.split(path.sep) : [];
    for (let n = parts.length; n > 0; n--) {
      const lexical = path.join(this.root, ...parts.slice(0, n));
      let real: string;
      try {
        real = await fs.realpath(lexical);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') continue;
        throw err;
      }
      if (real !== path.join(await fs.realpath(this.root), ...parts.slice(0, n))) {
        throw new UnsafePathError('a folder on the way is a symbolic link');
      }
      return;
    }
  }

  /** A fresh name beside `file`, for writing before a rename. */
  private static temporaryBeside(file: string): string {
    return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  }

  /** Makes the folder of a file about to be written, refusing one reached through a link. */
  private async folderFor(file: string): Promise<void> {
    const dir = path.dirname(file);
    await this.assertNoLinks(dir);
    await fs.mkdir(dir, { recursive: true });
  }

  async put(key: string, data: string | Uint8Array | Readable): Promise<void> {
    const file = this.pathOf(key);
    await this.folderFor(file);
    const tmp = LocalStore.temporaryBeside(file);
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await fs.writeFile(tmp, data, { flag: 'wx' });
      else await pipeline(data, createWriteStream(tmp, { flags: 'wx' }));
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async putFile(key: string, file: string, opts: { move?: boolean } = {}): Promise<void> {
    const target = this.pathOf(key);
    await this.folderFor(target);
    if (opts.move) {
      try {
        await fs.rename(file, target);
        return;
      } catch (err) {
        if (errnoOf(err) !== 'EXDEV') throw err;
      }
    }
    const tmp = LocalStore.temporaryBeside(target);
    try {
      await fs.copyFile(file, tmp);
      await fs.rename(tmp, target);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    if (opts.move) await fs.rm(file, { force: true });
  }

  async moveToLocal(key: string, file: string): Promise<boolean> {
    const source = this.pathOf(key);
    await this.assertNoLinks(path.dirname(source));
    const st = await fs.lstat(source).catch((err) => {
      if (NOT_THERE.has(errnoOf(err))) return undefined;
      throw err;
    });
    if (!st) return false;
    // A link would carry its target out into staging, where it would be read as the upload's bytes.
    if (!st.isFile()) throw new UnsafePathError('only a stored file can be moved out');
    try {
      await fs.rename(source, file);
    } catch (err) {
      if (errnoOf(err) !== 'EXDEV') throw err;
      await fs.copyFile(source, file);
      await fs.rm(source, { force: true });
    }
    return true;
  }

  /** Like resolve, with a missing key as the store's not-stored error. */
  private async existing(key: string): Promise<string> {
    try {
      return (await this.resolve(key)).file;
    } catch (err) {
      if (NOT_THERE.has(errnoOf(err))) throw notStored(key);
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const fh = await fs.open(await this.existing(key), 'r');
    try {
      if (!(await fh.stat()).isFile()) throw notStored(key);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return fh.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const found = await this.resolve(key);
      const st = await fs.stat(found.file);
      if (!st.isFile()) return undefined;
      return { key: found.key, size: st.size, modified: st.mtime };
    } catch (err) {
      if (NOT_THERE.has(errnoOf(err))) return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const top = this.prefixPath(prefix);
    await this.assertNoLinks(top);
    const out: StoredObject[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (NOT_THERE.has(errnoOf(err))) return;
        throw err;
      }
      for (const e of entries) {
        // Dot names are the store's own (scratch, folders moved aside, files being written); links are no objects.
        if (e.name.startsWith('.')) continue;
        const key = keyPrefix ? `${keyPrefix}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), key);
        else if (e.isFile()) {
          const st = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
          if (st?.isFile()) out.push({ key, size: st.size, modified: st.mtime });
        }
      }
    };
    await walk(top, prefix);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    await this.assertNoLinks(path.dirname(file));
    await fs.rm(file, { force: true });
  }

  async deletePrefix(prefix: string): Promise<void> {
    if (!prefix) throw new UnsafePathError('refusing to delete the whole store');
    const dir = this.pathOf(prefix);
    // The prefix's own folder may be a link: rm removes the link, not what it leads to.
    await this.assertNoLinks(path.dirname(dir));
    await removePath(dir);
  }

  /**
   * Swaps the folder in: the old one is renamed aside first, the new one renamed in, then the old
   * one removed, so a reader sees the old or the new folder, never a half-written one. A folder on
   * another file system is copied beside the target first, so the swap is still a rename.
   */
  async publishFolder(dir: string, prefix: string): Promise<void> {
    const target = this.pathOf(prefix);
    const parent = path.dirname(target);
    await this.assertNoLinks(parent);
    await fs.mkdir(parent, { recursive: true });
    const tag = () => `${ASIDE_PREFIX}${path.basename(target)}-${randomBytes(4).toString('hex')}`;
    let fresh = dir;
    const [from, to] = await Promise.all([fs.stat(dir), fs.stat(parent)]);
    if (from.dev !== to.dev) {
      fresh = path.join(parent, tag());
      await fs.cp(dir, fresh, { recursive: true });
    }
    let aside: string | undefined;
    if (await fs.lstat(target).catch(() => undefined)) {
      aside = path.join(parent, tag());
      await fs.rename(target, aside);
    }
    try {
      await fs.rename(fresh, target);
    } catch (err) {
      // The old folder goes back: the record still points at it.
      if (aside) await fs.rename(aside, target).catch(() => undefined);
      if (fresh !== dir) await removePath(fresh);
      throw err;
    }
    if (aside) await removePath(aside);
    if (fresh !== dir) await removePath(dir);
  }

  async withLocalFile<T>(key: string, fn: (file: string) => Promise<T>): Promise<T> {
    const file = await this.existing(key);
    if (!(await fs.stat(file)).isFile()) throw notStored(key);
    return fn(file);
  }

  async scratchRoot(prefix: string): Promise<string> {
    const dir = this.prefixPath(prefix);
    // Scratch folders are made and cleared (rm -rf) here: never through a link out of the folder.
    await this.assertNoLinks(dir);
    return dir;
  }

  /** A local file is sent by the HTTP layer itself (Range, ETag, Last-Modified). */
  async serve(object: StoredObject, _opts: ServeOptions): Promise<ServeStrategy> {
    return { kind: 'file', root: this.root, relative: assertKey(object.key) };
  }

  async probe(): Promise<void> {
    if (!(await isWritableDir(this.root))) throw new Error('storage root is not writable');
  }
}
