import type { Hash } from 'node:crypto';
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** The default write buffer of upload writes (the benchmark's baseline server uses the same). */
const WRITE_HWM = 1024 * 1024;

/**
 * Counts and hashes bytes as they pass, and fails the stream as soon as more arrive than
 * `limit`, so an oversized body never reaches the disk in full.
 */
class MeteredHash extends Transform {
  bytes = 0;
  constructor(
    private readonly hashes: Hash[],
    private readonly limit: number,
    private readonly tooLarge: () => Error,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return cb(this.tooLarge());
    for (const h of this.hashes) h.update(chunk);
    cb(null, chunk);
  }
}

export interface HashedWrite {
  /** Where to write: an open handle of `file` (the stream closes it) or flags to open it with. */
  fd?: FileHandle;
  flags?: string;
  start: number;
  /** Write buffer, 1 MiB unless said. */
  highWaterMark?: number;
  hashes: Hash[];
  limit?: number;
  tooLarge?: () => Error;
}

/** Streams `body` into `file` at `start`, hashing on the way. Returns the bytes written. */
export async function writeHashed(body: Readable, file: string, opts: HashedWrite): Promise<number> {
  const meter = new MeteredHash(opts.hashes, opts.limit ?? Number.POSITIVE_INFINITY, opts.tooLarge ?? (() => new Error('too large')));
  const out = fs.createWriteStream(file, {
    start: opts.start,
    highWaterMark: opts.highWaterMark ?? WRITE_HWM,
    ...(opts.fd !== undefined ? { fd: opts.fd } : {}),
    ...(opts.flags ? { flags: opts.flags } : {}),
  });
  await pipeline(body, meter, out);
  return meter.bytes;
}
