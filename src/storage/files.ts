import fs from 'node:fs/promises';
import path from 'node:path';
import { UnsafePathError } from './layout.js';

/** Removes a file or folder, ignoring one that is already gone. */
export async function removePath(p: string): Promise<void> {
  await fs.rm(p, { recursive: true, force: true });
}

/** Moves a file into place atomically (same file system), creating the target folder. */
export async function moveIntoPlace(from: string, to: string): Promise<void> {
  await fs.mkdir(path.dirname(to), { recursive: true });
  await fs.rename(from, to);
}

/** Removes now-empty parent folders from `dir` up to, but not including, `stopAt`. */
export async function pruneEmptyParents(dir: string, stopAt: string): Promise<void> {
  let current = path.resolve(dir);
  const stop = path.resolve(stopAt);
  while (current.startsWith(stop + path.sep)) {
    try {
      await fs.rmdir(current);
    } catch {
      return;
    }
    current = path.dirname(current);
  }
}

export async function isWritableDir(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir, { recursive: true });
    await fs.access(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where `relative` inside `folder` really is, following every symbolic link on the way, or an
 * UnsafePathError when that is outside the folder: a link planted in storage (to /etc/passwd,
 * another tenant's file, a linked folder) must not turn a file request into a read of anything
 * else. `trustedBase` is the ancestor of `folder` whose own location may be a link (the storage
 * root, which an operator may mount anywhere); every component below it is checked. The answer
 * gives the real folder and the file's path inside it. A missing file rejects with ENOENT.
 */
export async function realPathInside(trustedBase: string, folder: string, relative: string): Promise<{ folder: string; relative: string }> {
  const base = path.resolve(trustedBase);
  const lexicalFolder = path.resolve(folder);
  if (lexicalFolder !== base && !lexicalFolder.startsWith(base + path.sep)) throw new UnsafePathError('folder is outside its base');
  const realFolder = path.join(await fs.realpath(base), path.relative(base, lexicalFolder));
  const real = await fs.realpath(path.resolve(lexicalFolder, relative));
  if (!real.startsWith(realFolder + path.sep)) throw new UnsafePathError('path leads outside its folder');
  return { folder: realFolder, relative: path.relative(realFolder, real).split(path.sep).join('/') };
}
