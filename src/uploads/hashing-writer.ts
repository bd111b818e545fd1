import fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ByteSink } from './chunk-checksum.js';

/** Bytes gathered before one write (the benchmark's baseline server buffers as much per write). */
const WRITE_BATCH = 1024 * 1024;

export interface HashedWrite {
  /** Where to write: an open handle of `file` (closed when done) or flags to open it with ('r+' unless said). */
  fd?: FileHandle;
  flags?: string;
  start: number;
  /** Bytes gathered per write, 1 MiB unless said. */
  highWaterMark?: number;
  hashes: ByteSink[];
  limit?: number;
  tooLarge?: () => Error;
}

async function writeAll(fh: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let at = position;
  let rest = buffers;
  while (rest.length) {
    const { bytesWritten } = await fh.writev(rest, at);
    at += bytesWritten;
    let skip = bytesWritten;
    const left: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        left.push(skip ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    if (left.length && bytesWritten === 0) throw new Error('the write made no progress');
    rest = left;
  }
}

/**
 * Streams `body` into `file` at `start`, feeding every byte to `hashes` on the way, and fails
 * as soon as more than `limit` bytes arrive, so an oversized body never reaches the disk past its
 * range. Like a file write stream: while one write is under way, what arrives is gathered and
 * goes out in one `writev` as soon as it ends; more than `highWaterMark` gathered waits for it.
 * Returns the bytes written.
 */
export async function writeHashed(body: Readable, file: string, opts: HashedWrite): Promise<number> {
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  const batchSize = opts.highWaterMark ?? WRITE_BATCH;
  const fh = opts.fd ?? (await fsp.open(file, opts.flags ?? 'r+'));
  let bytes = 0;
  let position = opts.start;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let inFlight: Promise<void> | undefined;
  let writeError: unknown;
  const startWrite = () => {
    const buffers = batch;
    const at = position;
    position += batchBytes;
    batch = [];
    batchBytes = 0;
    // Never rejects (a rejection nobody awaits yet would be unhandled): the error is kept and rethrown.
    inFlight = writeAll(fh, buffers, at).then(
      () => {
        inFlight = undefined;
        if (batchBytes && writeError === undefined) startWrite();
      },
      (err: unknown) => {
        writeError = err;
        inFlight = undefined;
      },
    );
  };
  const settle = async () => {
    while (inFlight) await inFlight;
    if (writeError !== undefined) throw writeError;
  };
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > limit) throw (opts.tooLarge ?? (() => new Error('too large')))();
      for (const h of opts.hashes) {
        const ready = h.update(chunk);
        if (ready instanceof Promise) await ready;
      }
      batch.push(chunk);
      batchBytes += chunk.length;
      if (!inFlight) {
        if (writeError !== undefined) throw writeError;
        startWrite();
      } else if (batchBytes >= batchSize) {
        await settle();
        if (batchBytes) startWrite();
      }
    }
    await settle();
    if (batchBytes) startWrite();
    await settle();
    return bytes;
  } finally {
    while (inFlight) await inFlight;
    await fh.close().catch(() => undefined);
  }
}
