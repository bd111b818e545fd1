/**
 * Where each model's files are, and their check: every file is read once, its sha256 compared with
 * the committed list (weights.sha256), and those same bytes are what the model is built from. A file
 * that is missing or differs fails the load with a message that says what to run; nothing is ever
 * downloaded.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
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
  /** The prefix of its lines in weights.sha256, e.g. 'coco-ssd/'. */
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

/**
 * Reads every file listed for the set, checking each one's sha256; returns their bytes by file name
 * (relative to the set's folder). The model must be built from these bytes, not from a second read.
 */
export function readVerified(set: ModelFileSet): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const [listed, sha256] of listedSums()) {
    if (!listed.startsWith(set.listed)) continue;
    const name = listed.slice(set.listed.length);
    const file = path.join(set.dir, name);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw new ModelFilesError(`The ${set.model} model's file ${name} is missing: ${set.fix}.`, String(err));
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) {
      throw new ModelFilesError(
        `The ${set.model} model's file ${name} is damaged or of another version (its sha256 does not match): ${set.fix}.`,
        `${file}: sha256 ${actual}, expected ${sha256}`,
      );
    }
    files.set(name, bytes);
  }
  if (files.size === 0) throw new ModelFilesError(`No checksums are listed for the ${set.model} model: restore src/models/weights.sha256.`, set.listed);
  return files;
}
