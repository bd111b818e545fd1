import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { removePath } from '../../storage/files.js';

const WORK_PREFIX = '.work-';
const OLD_PREFIX = '.old-';

/** A fresh scratch folder inside the media folder (same file system, so moves out of it are renames). */
export async function makeWorkDir(mediaDir: string): Promise<string> {
  const dir = path.join(mediaDir, `${WORK_PREFIX}${randomBytes(6).toString('hex')}`);
  await fs.mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Removes what an interrupted attempt left in the media folder: scratch folders, and folders
 * a swap had moved aside. Only one job works on a media at a time, so any such leftover is
 * from a dead attempt.
 */
export async function clearLeftovers(mediaDir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = await fs.readdir(mediaDir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(WORK_PREFIX) || n.startsWith(OLD_PREFIX)).map((n) => removePath(path.join(mediaDir, n))));
}

/**
 * Moves each produced folder of `workDir` into the media folder, replacing the previous
 * version: the old folder is renamed aside first, the new one renamed in, then the old one
 * removed. A reader sees the old or the new folder, never a half-written one. Returns the
 * folders published.
 */
export async function publishFolders(workDir: string, mediaDir: string, folders: readonly string[]): Promise<string[]> {
  const aside: string[] = [];
  const published: string[] = [];
  for (const name of folders) {
    const fresh = path.join(workDir, name);
    if (!(await fs.stat(fresh).catch(() => undefined))) continue;
    published.push(name);
    const target = path.join(mediaDir, name);
    if (await fs.stat(target).catch(() => undefined)) {
      const old = path.join(mediaDir, `${OLD_PREFIX}${name}-${randomBytes(4).toString('hex')}`);
      await fs.rename(target, old);
      aside.push(old);
    }
    await fs.rename(fresh, target);
  }
  await Promise.all(aside.map((p) => removePath(p)));
  await removePath(workDir);
  return published;
}

/**
 * Removes the folders of `folders` this run did not publish: what an earlier run made and a
 * reprocess with other settings no longer makes (WebP turned off, audio now too short for
 * HLS…). Called once the record no longer points at them.
 */
export async function removeUnpublished(mediaDir: string, folders: readonly string[], published: readonly string[]): Promise<void> {
  await Promise.all(folders.filter((f) => !published.includes(f)).map((f) => removePath(path.join(mediaDir, f))));
}
