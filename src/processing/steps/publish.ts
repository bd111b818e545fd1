import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { removePath } from '../../storage/files.js';

const WORK_PREFIX = '.work-';
const OLD_PREFIX = '.old-';

/**
 * Which kind of job a scratch folder belongs to. A media's processing job and its WebM job can
 * run at the same time (a reprocess while an earlier WebM is still encoding), so each clears
 * only its own kind's leftovers.
 */
export type ScratchOwner = 'media' | 'webm';

const OWNERS: readonly ScratchOwner[] = ['media', 'webm'];

/** The owner of a scratch folder; folders named before owners were (`.work-<hex>`) were the processing job's. */
function ownerOf(name: string): ScratchOwner {
  const tag = name.slice(WORK_PREFIX.length).split('-')[0];
  return OWNERS.find((o) => o === tag) ?? 'media';
}

/** A fresh scratch folder inside the media folder (same file system, so moves out of it are renames). */
export async function makeWorkDir(mediaDir: string, owner: ScratchOwner): Promise<string> {
  const dir = path.join(mediaDir, `${WORK_PREFIX}${owner}-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Removes what interrupted attempts of the `owners`' jobs left in the media folder: their
 * scratch folders, and folders a swap had moved aside (those are only ever deleted, so removing
 * one of another job's is harmless). At most one job of each kind works on a media at a time,
 * so a scratch folder of a kind whose job is not running is from a dead attempt.
 */
export async function clearLeftovers(mediaDir: string, owners: readonly ScratchOwner[]): Promise<void> {
  let names: string[] = [];
  try {
    names = await fs.readdir(mediaDir);
  } catch {
    return;
  }
  const leftover = (n: string) => (n.startsWith(WORK_PREFIX) && owners.includes(ownerOf(n))) || n.startsWith(OLD_PREFIX);
  await Promise.all(names.filter(leftover).map((n) => removePath(path.join(mediaDir, n))));
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
