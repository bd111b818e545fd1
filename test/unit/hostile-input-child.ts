/**
 * Child process of hostile-input-memory.test.ts: runs one derivation with the default settings
 * and prints `{"code": …, "message": …}` (the PermanentJobError it ended with, or code `none`),
 * then waits for its stdin to close, so the parent can read this process's peak RSS while it lives.
 *
 *   node --import tsx test/unit/hostile-input-child.ts image|epub|audio <file> <work folder>
 */
import os from 'node:os';
import { loadSettings } from '../../src/config/settings.js';
import { packageAudio } from '../../src/processing/audio/package-audio.js';
import { deriveEpub } from '../../src/processing/document/derive-document.js';
import { deriveImage, DEFAULT_IMAGE_OPTIONS } from '../../src/processing/image/derive-image.js';
import { PermanentJobError } from '../../src/shared/errors.js';

const [what, file, work] = process.argv.slice(2) as [string, string, string];
const s = loadSettings({});

async function derive(): Promise<unknown> {
  if (what === 'image') {
    return deriveImage(file, work, { ...DEFAULT_IMAGE_OPTIONS, maxPixels: s.imageMaxPixels, timeoutMs: s.imageTimeout });
  }
  if (what === 'epub') {
    return deriveEpub(file, work, {
      thumbnails: true,
      posters: true,
      thumbnailSize: s.imageThumbnailSize,
      posterSize: s.imagePosterSize,
      timeoutMs: s.documentTimeout,
      maxPixels: s.imageMaxPixels,
      epubMaxEntries: s.epubMaxEntries,
      epubMaxEntryBytes: s.epubMaxEntryBytes,
      epubMaxTotalBytes: s.epubMaxTotalBytes,
      epubMaxRatio: s.epubMaxRatio,
      textMaxChars: s.documentTextMaxChars,
    });
  }
  if (what === 'audio') {
    return packageAudio(file, work, {
      webm: true,
      hls: true,
      posters: true,
      thumbnails: true,
      hlsMinDuration: s.audioHlsMinDuration / 1000,
      thumbnailSize: s.imageThumbnailSize,
      threads: Math.min(2, os.availableParallelism()),
      probeTimeoutMs: s.ffprobeTimeout,
      ffmpegTimeoutMs: s.ffmpegTimeout,
      maxDurationSeconds: s.maxVideoDuration / 1000,
    });
  }
  throw new Error(`unknown derivation ${what}`);
}

let outcome: { code: string; message: string };
try {
  await derive();
  outcome = { code: 'none', message: 'derived without error' };
} catch (err) {
  if (!(err instanceof PermanentJobError)) throw err;
  outcome = { code: err.code, message: err.message };
}
process.stdout.write(`${JSON.stringify(outcome)}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
