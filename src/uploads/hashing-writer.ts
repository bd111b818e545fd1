import fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { finished, type Readable } from 'node:stream';
import { bodyDeadlineOf } from './body-deadline.js';
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
 * goes out in one `writev` as soon as it ends; with `highWaterMark` gathered the body is paused
 * until then, and while a sink asks to wait. Returns the bytes written.
 *
 * The body is read through 'data' events rather than an async iterator: a 1 GiB upload arrives
 * in some 16,000 socket reads, and a promise and a generator step for each made the server spend
 * about 15 % more CPU on 1 GiB of 8 MiB PUTs (and take as much longer) than this does. A failed
 * write or sink destroys the body as an iterator would. A body over the limit, or one whose
 * deadline (see BodyDeadline) passes, is only paused and left to the HTTP layer, so that the
 * client can still be answered (413, 408) before the connection is closed.
 */
export async function writeHashed(body: Readable, file: string, opts: HashedWrite): Promise<number> {
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  const batchSize = opts.highWaterMark ?? WRITE_BATCH;
  const fh = opts.fd ?? (await fsp.open(file, opts.flags ?? 'r+'));
  let bytes = 0;
  let position = opts.start;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let writing: Promise<void> | undefined;
  let sinkWaits = 0;
  let ended = false;
  let settled = false;
  let stopDeadline: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: unknown, keepBody = false) => {
        if (settled) return;
        settled = true;
        body.off('data', onData);
        stopWatching();
        stopDeadline?.();
        if (err === undefined) return resolve();
        if (ended) {
          // nothing left to stop
        } else if (keepBody) body.pause();
        else body.destroy();
        reject(err);
      };
      const settleIfDone = () => {
        if (ended && !writing && batchBytes === 0 && sinkWaits === 0) settle();
      };
      const flow = () => {
        if (!settled && !ended && sinkWaits === 0 && batchBytes < batchSize) body.resume();
      };
      const flush = () => {
        if (writing || batchBytes === 0 || settled) return;
        const buffers = batch;
        const at = position;
        position += batchBytes;
        batch = [];
        batchBytes = 0;
        writing = writeAll(fh, buffers, at).then(
          () => {
            writing = undefined;
            flush();
            flow();
            settleIfDone();
          },
          (err: unknown) => {
            writing = undefined;
            settle(err);
          },
        );
        flow();
      };
      const onData = (chunk: Buffer) => {
        if (settled) return;
        // A throw here would escape through the body's emit as an uncaught exception.
        try {
          bytes += chunk.length;
          if (bytes > limit) return settle((opts.tooLarge ?? (() => new Error('too large')))(), true);
          for (const h of opts.hashes) {
            const ready = h.update(chunk);
            if (ready instanceof Promise) {
              sinkWaits++;
              body.pause();
              ready.then(
                () => {
                  sinkWaits--;
                  flow();
                  settleIfDone();
                },
                (err: unknown) => settle(err),
              );
            }
          }
          batch.push(chunk);
          batchBytes += chunk.length;
          if (!writing) flush();
          else if (batchBytes >= batchSize) body.pause();
        } catch (err) {
          settle(err);
        }
      };
      const stopWatching = finished(body, { writable: false }, (err) => {
        if (err) return settle(err);
        ended = true;
        flush();
        settleIfDone();
      });
      body.on('data', onData);
      stopDeadline = bodyDeadlineOf(body)?.onExpire((reason) => settle(reason, true));
      // A 'data' listener does not start a body that was paused before.
      flow();
    });
    return bytes;
  } finally {
    while (writing) await writing;
    await fh.close().catch(() => undefined);
  }
}
