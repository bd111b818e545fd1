/**
 * Where each model's files are, and their check against the committed list (weights.sha256). Small
 * models: every file is read once, its sha256 compared, and those same bytes are what the model is
 * built from (readVerified). Whisper, whose library opens its files by path: each file is hashed as a
 * stream first, once per process (verifyFiles). A file that is missing or differs fails the load with
 * a message that says what to run; nothing is ever downloaded.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root: two folders up from this module, in src/models/ (sources) and dist/models/ (built) alike. */
export const PACKAGE_ROOT = path.resolve(import.meta.dirname, '../..');

/** Where scripts/setup.sh puts COCO-SSD's files. */
export const DEFAULT_COCO_SSD_DIR = path.join(PACKAGE_ROOT, '.cache', 'models', 'coco-ssd');

/** The committed checksums (kept with the sources: scripts/setup.sh reads them too). */
const SUMS_FILE = path.join(PACKAGE_ROOT, 'src', 'models', 'weights.sha256');

/** nsfwjs's `dist/models/` folder, wherever npm put the package. */
export function nsfwjsModelsDir(): string {
  // nsfwjs/core is dist/esm/core.js
  return path.resolve(path.dirname(fileURLToPath(import.meta.resolve('nsfwjs/core'))), '..', 'models');
}

/** Package folders given instead of Node's resolution, by package name (tests: a damaged copy, a missing package). */
const packageDirOverrides = new Map<string, string>();

export function overridePackageDirs(dirs: Record<string, string> | undefined): void {
  for (const [name, dir] of Object.entries(dirs ?? {})) packageDirOverrides.set(name, dir);
}

/**
 * The folder of an installed npm package (one that holds model files and may export no module), found
 * the way Node finds packages from here; undefined when it is not installed.
 */
export function packageDir(name: string): string | undefined {
  const given = packageDirOverrides.get(name);
  if (given !== undefined) return fs.existsSync(path.join(given, 'package.json')) ? given : undefined;
  for (const modules of createRequire(import.meta.url).resolve.paths(name) ?? []) {
    const dir = path.join(modules, name);
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  return undefined;
}

/** A model's files cannot be used. The message is plain words with no path, naming the model and the fix. */
export class ModelFilesError extends Error {
  constructor(
    message: string,
    readonly detail: string,
  ) {
    super(message);
    this.name = 'ModelFilesError';
  }
}

export interface ModelFileSet {
  /** The model's name in messages, e.g. 'COCO-SSD (object detection)'. */
  model: string;
  /** The prefix of its lines in weights.sha256, e.g. 'coco-ssd/' (the folder below holds what follows it). */
  listed: string;
  /** The folder holding those files. */
  dir: string;
  /** What to run when they are missing or damaged. */
  fix: string;
}

let sums: Map<string, string> | undefined;

function listedSums(): Map<string, string> {
  if (sums) return sums;
  let text: string;
  try {
    text = fs.readFileSync(SUMS_FILE, 'utf8');
  } catch (err) {
    throw new ModelFilesError('The list of model checksums (src/models/weights.sha256) is missing: restore it from the repository.', String(err));
  }
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](\S+)$/.exec(line.trim());
    if (m) map.set(m[2]!, m[1]!);
  }
  sums = map;
  return map;
}

/** The set's listed files: name (relative to its folder) and sha256. */
function listedFiles(set: ModelFileSet): Array<[string, string]> {
  const files: Array<[string, string]> = [];
  for (const [listed, sha256] of listedSums()) if (listed.startsWith(set.listed)) files.push([listed.slice(set.listed.length), sha256]);
  if (files.length === 0) throw new ModelFilesError(`No checksums are listed for the ${set.model} model: restore src/models/weights.sha256.`, set.listed);
  return files;
}

const missing = (set: ModelFileSet, name: string, err: unknown) =>
  new ModelFilesError(`The ${set.model} model's file ${name} is missing: ${set.fix}.`, String(err));

function checkSum(set: ModelFileSet, name: string, file: string, actual: string, expected: string): void {
  if (actual !== expected) {
    throw new ModelFilesError(
      `The ${set.model} model's file ${name} is damaged or of another version (its sha256 does not match): ${set.fix}.`,
      `${file}: sha256 ${actual}, expected ${expected}`,
    );
  }
}

/**
 * Reads every file listed for the set, checking each one's sha256; returns their bytes by file name
 * (relative to the set's folder). The model must be built from these bytes, not from a second read.
 */
export function readVerified(set: ModelFileSet): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const [name, sha256] of listedFiles(set)) {
    const file = path.join(set.dir, name);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw missing(set, name, err);
    }
    checkSum(set, name, file, createHash('sha256').update(bytes).digest('hex'), sha256);
    files.set(name, bytes);
  }
  return files;
}

/** Files this process already hashed and found right, by path, with the size and times they had then. */
const verified = new Map<string, string>();

const identity = (st: fs.Stats) => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

/**
 * Checks the sha256 of every file listed for the set, reading each as a stream (Whisper's weights are
 * 80-250 MB), for a library that then opens the files itself. A file is hashed once per process: again
 * only when its size, inode or times changed since. Returns the set's folder.
 */
export function verifyFiles(set: ModelFileSet): string {
  const buffer = Buffer.allocUnsafe(1 << 20);
  for (const [name, sha256] of listedFiles(set)) {
    const file = path.join(set.dir, name);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw missing(set, name, err);
    }
    try {
      const before = identity(fs.fstatSync(fd));
      if (verified.get(file) === before) continue;
      const hash = createHash('sha256');
      for (let n = fs.readSync(fd, buffer); n > 0; n = fs.readSync(fd, buffer)) hash.update(buffer.subarray(0, n));
      checkSum(set, name, file, hash.digest('hex'), sha256);
      verified.set(file, before);
    } finally {
      fs.closeSync(fd);
    }
  }
  return set.dir;
}
