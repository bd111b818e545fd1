import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { removePath } from './files.js';
import { mediaPrefix, type MediaRef } from './layout.js';
import { ASIDE_PREFIX, LocalStore } from './local-store.js';
import type { MediaStore } from './store.js';

/**
 * Scratch folders: the local folders in which a processing run makes its outputs (ffmpeg, sharp
 * and poppler write files), before they are published into the store folder by folder. They are
 * local whatever the store; the store says where (`scratchRoot`: inside the media's own folder
 * for the local store, so publishing is a rename). This is the one place outside the stores that
 * creates, lists and removes them.
 */

const WORK_PREFIX = '.work-';

/**
 * Which kind of job a scratch folder belongs to. A media's processing job and its WebM job can
 * run at the same time (a reprocess while an earlier WebM is still encoding), so each clears
 * only its own kind's leftovers.
 */
export type ScratchOwner = 'media' | 'webm' | 'labels' | 'transcript';

const OWNERS: readonly ScratchOwner[] = ['media', 'webm', 'labels', 'transcript'];

/** A folder of a store: the media's prefix, where outputs are published and near which scratch folders are made. */
export interface StoreFolder {
  store: MediaStore;
  prefix: string;
}

/** A media's folder in a store. */
export function mediaFolderIn(store: MediaStore, ref: MediaRef): StoreFolder {
  return { store, prefix: mediaPrefix(ref) };
}

/** The owner of a scratch folder; folders named before owners were (`.work-<hex>`) were the processing job's. */
function ownerOf(name: string): ScratchOwner {
  const tag = name.slice(WORK_PREFIX.length).split('-')[0];
  return OWNERS.find((o) => o === tag) ?? 'media';
}

/** A fresh scratch folder for outputs to be published into `target`. */
export async function makeWorkDir(target: StoreFolder, owner: ScratchOwner): Promise<string> {
  const dir = path.join(await target.store.scratchRoot(target.prefix), `${WORK_PREFIX}${owner}-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Removes what interrupted attempts of the `owners`' jobs left: their scratch folders, and
 * folders a local store's swap had moved aside (those are only ever deleted, so removing one of
 * another job's is harmless). At most one job of each kind works on a media at a time, so a
 * scratch folder of a kind whose job is not running is from a dead attempt.
 */
export async function clearLeftovers(target: StoreFolder, owners: readonly ScratchOwner[]): Promise<void> {
  const root = await target.store.scratchRoot(target.prefix);
  let names: string[] = [];
  try {
    names = await fs.readdir(root);
  } catch {
    return;
  }
  const leftover = (n: string) => (n.startsWith(WORK_PREFIX) && owners.includes(ownerOf(n))) || n.startsWith(ASIDE_PREFIX);
  await Promise.all(names.filter(leftover).map((n) => removePath(path.join(root, n))));
}

/**
 * Publishes each produced folder of `workDir` into `target`, replacing the previous version
 * (see MediaStore.publishFolder), then removes the scratch folder. Returns the folders published.
 */
export async function publishFolders(workDir: string, target: StoreFolder, folders: readonly string[]): Promise<string[]> {
  const published: string[] = [];
  for (const name of folders) {
    const fresh = path.join(workDir, name);
    if (!(await fs.stat(fresh).catch(() => undefined))) continue;
    published.push(name);
    await target.store.publishFolder(fresh, `${target.prefix}/${name}`);
  }
  await removePath(workDir);
  return published;
}

/**
 * Removes the folders of `folders` this run did not publish: what an earlier run made and a
 * reprocess with other settings no longer makes (WebP turned off, audio now too short for
 * HLS…). Called once the record no longer points at them.
 */
export async function removeUnpublished(target: StoreFolder, folders: readonly string[], published: readonly string[]): Promise<void> {
  await Promise.all(folders.filter((f) => !published.includes(f)).map((f) => target.store.deletePrefix(`${target.prefix}/${f}`)));
}

/** Removes a scratch folder (or one inside it), ignoring one that is already gone. */
export async function removeScratch(dir: string): Promise<void> {
  await removePath(dir);
}

/**
 * The files of a scratch folder seen as a store folder, for code that edits outputs both before
 * and after they are published (the caption tracks of a video's manifests).
 */
export function scratchFolder(dir: string): StoreFolder {
  return { store: new LocalStore(dir), prefix: '' };
}
