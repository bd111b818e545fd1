import fs from 'node:fs/promises';

/* Helpers for local folders: upload staging, scratch folders and the local store's root. Media files go through a MediaStore. */

/** Removes a file or folder, ignoring one that is already gone. */
export async function removePath(p: string): Promise<void> {
  await fs.rm(p, { recursive: true, force: true });
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
