import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { PermanentJobError } from '../../shared/errors.js';
import { ToolFailure } from '../../tools/tool-failure.js';

export interface ZipLimits {
  maxEntries: number;
  /** Uncompressed bytes of any one entry we read. */
  maxEntryBytes: number;
  /** Uncompressed bytes of all entries together, as the central directory declares them. */
  maxTotalBytes: number;
  /** Uncompressed : compressed, for every entry (declared, and counted for entries we read) and for the whole zip. */
  maxRatio: number;
}

/**
 * The ratio is only held against entries past this size: small text entries (a 10 KB OPF of
 * repeated markup) compress far better than 200:1 and are harmless.
 */
export const RATIO_FLOOR_BYTES = 1024 * 1024;

/** A system error (ENOENT, EMFILE, ENOSPC…) is the machine's, not the file's: it is retried. */
function isSystemError(err: unknown): boolean {
  return typeof (err as NodeJS.ErrnoException)?.code === 'string' && /^E[A-Z]+$/.test((err as NodeJS.ErrnoException).code!);
}

/** The zip library's complaint stays in the logs (`detail`); the reason says only what is wrong. */
function unreadable(what: string, err: unknown): Error {
  if (err instanceof PermanentJobError || isSystemError(err)) return err as Error;
  return new ToolFailure(what, 'unreadable-media', err instanceof Error ? err.message : String(err));
}

/**
 * An EPUB's zip, read lazily: the central directory is listed once (names and sizes only) and
 * an entry's bytes are inflated only when asked for, one entry at a time, counting bytes as
 * they come (declared sizes are checked but never trusted). The declared sizes of every entry,
 * read or not, are held against the ratio and total limits when listing: a bomb in a chapter we
 * never inflate would still blow up a reader that unpacks the book. Limits refuse the file as
 * `too-large`; a damaged zip is `unreadable-media`.
 */
export class EpubZip {
  private constructor(
    private readonly zip: yauzl.ZipFile,
    private readonly entries: Map<string, yauzl.Entry>,
    private readonly limits: ZipLimits,
  ) {}

  static async open(file: string, limits: ZipLimits): Promise<EpubZip> {
    let zip: yauzl.ZipFile;
    try {
      // Sizes are validated here while inflating, so an entry that lies about its size is
      // stopped at our limit rather than at its own claim.
      zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false, validateEntrySizes: false, strictFileNames: false, decodeStrings: true });
    } catch (err) {
      throw unreadable('the file is not a readable EPUB (zip)', err);
    }
    try {
      if (zip.entryCount > limits.maxEntries) {
        throw new PermanentJobError(`the EPUB holds ${zip.entryCount} files, over the limit of ${limits.maxEntries}`, 'too-large');
      }
      const entries = new Map<string, yauzl.Entry>();
      let uncompressed = 0;
      let compressed = 0;
      for await (const entry of zip.eachEntry()) {
        if (entries.size >= limits.maxEntries) throw new PermanentJobError(`the EPUB holds over ${limits.maxEntries} files`, 'too-large');
        checkRatio(`${entry.fileName} in the EPUB`, entry.uncompressedSize, entry.compressedSize, limits.maxRatio);
        uncompressed += entry.uncompressedSize;
        compressed += entry.compressedSize;
        if (uncompressed > limits.maxTotalBytes) {
          throw new PermanentJobError(`the EPUB would unpack to over ${limits.maxTotalBytes} bytes, its limit (a zip bomb?)`, 'too-large');
        }
        if (!entry.fileName.endsWith('/')) entries.set(entry.fileName, entry);
      }
      // Many small entries each under the ratio floor can still add up to a bomb.
      checkRatio('the EPUB as a whole', uncompressed, compressed, limits.maxRatio);
      return new EpubZip(zip, entries, limits);
    } catch (err) {
      zip.close();
      throw unreadable('the EPUB (zip) is damaged', err);
    }
  }

  /** Entry names by their lower case, made at the first lookup that needs it. */
  private byLowerCase: Map<string, string[]> | undefined;

  /** The entry's name as stored: exact, else the only case-insensitive match. */
  find(name: string): string | undefined {
    if (this.entries.has(name)) return name;
    // One index for every lookup: a spine of thousands of mismatched hrefs stays linear.
    if (!this.byLowerCase) {
      this.byLowerCase = new Map();
      for (const n of this.entries.keys()) {
        const lower = n.toLowerCase();
        const same = this.byLowerCase.get(lower);
        if (same) same.push(n);
        else this.byLowerCase.set(lower, [n]);
      }
    }
    const matches = this.byLowerCase.get(name.toLowerCase()) ?? [];
    return matches.length === 1 ? matches[0] : undefined;
  }

  /** The uncompressed size the zip declares for an entry (found with `find`). */
  declaredSize(name: string): number | undefined {
    return this.entries.get(name)?.uncompressedSize;
  }

  /** The whole uncompressed content of one entry (found with `find`). */
  async read(name: string): Promise<Buffer> {
    const entry = this.entries.get(name);
    if (!entry) throw new PermanentJobError(`the EPUB has no ${name}`, 'unreadable-media');
    const { maxEntryBytes } = this.limits;
    if (entry.isEncrypted()) throw new PermanentJobError(`${name} in the EPUB is encrypted`, 'unreadable-media');
    if (entry.uncompressedSize > maxEntryBytes) {
      throw new PermanentJobError(`${name} in the EPUB declares ${entry.uncompressedSize} bytes, over the limit of ${maxEntryBytes}`, 'too-large');
    }
    checkRatio(`${name} in the EPUB`, entry.uncompressedSize, entry.compressedSize, this.limits.maxRatio);
    let stream: Readable;
    try {
      stream = await this.zip.openReadStreamPromise(entry);
    } catch (err) {
      throw unreadable(`${name} in the EPUB cannot be read`, err);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > maxEntryBytes) throw new PermanentJobError(`${name} in the EPUB inflates past the limit of ${maxEntryBytes} bytes`, 'too-large');
        checkRatio(`${name} in the EPUB`, total, entry.compressedSize, this.limits.maxRatio);
        chunks.push(chunk);
      }
    } catch (err) {
      throw unreadable(`${name} in the EPUB is damaged`, err);
    } finally {
      stream.destroy();
    }
    if (total !== entry.uncompressedSize) {
      throw new PermanentJobError(`${name} in the EPUB is damaged: ${total} bytes where ${entry.uncompressedSize} were declared`, 'unreadable-media');
    }
    return Buffer.concat(chunks, total);
  }

  close(): void {
    this.zip.close();
  }
}

function checkRatio(what: string, uncompressed: number, compressed: number, maxRatio: number): void {
  if (uncompressed > RATIO_FLOOR_BYTES && uncompressed / Math.max(1, compressed) > maxRatio) {
    throw new PermanentJobError(`${what} is compressed over ${maxRatio}:1 (a zip bomb?)`, 'too-large');
  }
}
