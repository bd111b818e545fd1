import fs from 'node:fs/promises';
import path from 'node:path';

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
