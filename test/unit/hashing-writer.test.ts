import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ByteSink } from '../../src/uploads/chunk-checksum.js';
import { BodyDeadline, setBodyDeadline } from '../../src/uploads/body-deadline.js';
import { writeHashed } from '../../src/uploads/hashing-writer.js';

/** A sha256 sink that answers a promise on every other update, as a busy hashing thread does. */
class SlowSink implements ByteSink {
  readonly hash = createHash('sha256');
  waits = 0;
  private n = 0;
  update(data: Buffer): Promise<void> | undefined {
    this.hash.update(data);
    if (this.n++ % 2) return undefined;
    this.waits++;
    return sleep(1);
  }
}

class Sha256Sink implements ByteSink {
  readonly hash = createHash('sha256');
  update(data: Buffer): void {
    this.hash.update(data);
  }
}

/** A body arriving in pieces of 64 KiB at most, as from a socket. */
function pieces(data: Buffer, size = 64 * 1024): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) parts.push(data.subarray(at, at + size));
  return Readable.from(parts, { objectMode: false });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('writeHashed', () => {
  let dir = '';
  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'qasar-writer-'));
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  async function sparse(name: string, size: number): Promise<string> {
    const file = path.join(dir, name);
    const fh = await fsp.open(file, 'w');
    await fh.truncate(size);
    await fh.close();
    return file;
  }

  it('writes the body at its offset in batches and feeds every byte to each sink in order', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const file = await sparse('offset.bin', 1024 + data.length + 1024);
    const plain = new Sha256Sink();
    const slow = new SlowSink();
    const n = await writeHashed(pieces(data), file, { start: 1024, hashes: [plain, slow], highWaterMark: 256 * 1024 });
    assert.equal(n, data.length);
    const stored = await fsp.readFile(file);
    assert.equal(sha(stored.subarray(1024, 1024 + data.length)), sha(data));
    assert.ok(
      stored.subarray(0, 1024).every((b) => b === 0),
      'nothing before the offset',
    );
    assert.ok(
      stored.subarray(1024 + data.length).every((b) => b === 0),
      'nothing after the range',
    );
    assert.equal(plain.hash.digest('hex'), sha(data));
    assert.equal(slow.hash.digest('hex'), sha(data));
    assert.ok(slow.waits > 10, 'the slow sink was waited for');
  });

  it('fails at the first byte over the limit, writes nothing past the range and leaves the body paused for the answer', async () => {
    const limit = 300 * 1024;
    const file = await sparse('limit.bin', 2 * 1024 * 1024);
    const body = new PassThrough();
    const tooLarge = () => Object.assign(new Error('over'), { code: 'TOO_LARGE' });
    const writing = writeHashed(body, file, { start: 0, hashes: [], limit, tooLarge });
    const failed = assert.rejects(writing, { code: 'TOO_LARGE' });
    // Slowly, so that every piece before the one too many has reached the disk.
    let settled = false;
    void failed.finally(() => (settled = true));
    for (let i = 0; i < 16 && !settled; i++) {
      body.write(Buffer.alloc(64 * 1024, 7));
      await sleep(5);
    }
    await failed;
    // Destroying a request body takes its socket with it: the 413 could not be sent.
    assert.ok(!body.destroyed, 'the body is not destroyed');
    assert.equal(body.readableFlowing, false, 'the body is paused');
    assert.equal(body.listenerCount('data'), 0, 'nothing reads it any more');
    const stored = await fsp.readFile(file);
    assert.ok(
      stored.subarray(limit).every((b) => b === 0),
      'no byte past the limit reached the disk',
    );
  });

  it('rejects when the body ends early (the client went away), after its writes settled', async () => {
    const file = await sparse('aborted.bin', 1024 * 1024);
    const body = new PassThrough();
    const writing = writeHashed(body, file, { start: 0, hashes: [new Sha256Sink()] });
    body.write(randomBytes(100 * 1024));
    await sleep(5);
    body.destroy();
    await assert.rejects(writing, { code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('rejects when a sink fails, and when the file cannot be written', async () => {
    const file = await sparse('sink.bin', 1024 * 1024);
    const failing: ByteSink = { update: () => Promise.reject(new Error('sink broke')) };
    await assert.rejects(writeHashed(pieces(randomBytes(200 * 1024)), file, { start: 0, hashes: [failing] }), /sink broke/);
    const readOnly = await fsp.open(file, 'r');
    await assert.rejects(writeHashed(pieces(randomBytes(200 * 1024)), file, { fd: readOnly, start: 0, hashes: [] }), { code: 'EBADF' });
    assert.ok(fs.existsSync(file));
  });

  it('rejects when a sink throws, instead of the throw escaping the stream', async () => {
    const file = await sparse('throws.bin', 1024 * 1024);
    const throwing: ByteSink = {
      update: () => {
        throw new Error('sink threw');
      },
    };
    const body = pieces(randomBytes(200 * 1024));
    await assert.rejects(writeHashed(body, file, { start: 0, hashes: [throwing] }), /sink threw/);
    assert.ok(body.destroyed);
  });

  it('reads a body that was paused before it was handed over', async () => {
    const data = randomBytes(300 * 1024);
    const file = await sparse('paused.bin', data.length);
    const body = new PassThrough();
    body.pause();
    body.end(data);
    const sink = new Sha256Sink();
    assert.equal(await writeHashed(body, file, { start: 0, hashes: [sink] }), data.length);
    assert.equal(sink.hash.digest('hex'), sha(data));
    assert.equal(sha(await fsp.readFile(file)), sha(data));
  });

  it("stops when its body's deadline passes, closing the file and leaving the body paused for the answer", async () => {
    const file = await sparse('deadline.bin', 1024 * 1024);
    const body = new PassThrough();
    const deadline = new BodyDeadline();
    setBodyDeadline(body, deadline);
    const writing = writeHashed(body, file, { start: 0, hashes: [] });
    body.write(randomBytes(10));
    await sleep(5);
    const reason = Object.assign(new Error('too slow'), { code: 'TOO_SLOW' });
    assert.equal(deadline.expire(reason), true, 'the writer was listening');
    await assert.rejects(writing, { code: 'TOO_SLOW' });
    assert.ok(!body.destroyed, 'the body is not destroyed');
    assert.equal(body.readableFlowing, false);
    assert.equal(body.listenerCount('data'), 0);
    // A deadline that passed before the write began stops it at once.
    const late = new PassThrough();
    setBodyDeadline(late, deadline);
    await assert.rejects(writeHashed(late, file, { start: 0, hashes: [] }), { code: 'TOO_SLOW' });
  });

  it('takes an empty body', async () => {
    const file = await sparse('empty.bin', 10);
    assert.equal(await writeHashed(Readable.from([]), file, { start: 0, hashes: [new Sha256Sink()] }), 0);
  });
});
