import type fsp from 'node:fs/promises';

/** Size of the blocks of the hashing passes over files. */
const IO_BLOCK = 1024 * 1024;

/** Blocks of finished passes, reused: a pass per chunk would otherwise leave megabytes of garbage outside the heap. */
const spare: Buffer[] = [];
const MAX_SPARE = 8;
const takeBlock = () => spare.pop() ?? Buffer.allocUnsafeSlow(IO_BLOCK);
const giveBack = (b: Buffer) => {
  if (spare.length < MAX_SPARE) spare.push(b);
};

/**
 * Feeds `length` bytes of an open file from `start` into `hash`, through two reused blocks: the
 * next block is read while the current one is hashed. Returns the bytes read (short at EOF).
 */
export async function hashRange(fh: fsp.FileHandle, hash: { update(data: Buffer): unknown }, start: number, length: number): Promise<number> {
  let [current, next] = [takeBlock(), takeBlock()];
  let done = 0;
  const readAt = (buf: Buffer, offset: number) => fh.read(buf, 0, Math.min(buf.length, length - offset), start + offset);
  let reading = length > 0 ? readAt(current, 0) : undefined;
  try {
    while (reading) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      const block = current.subarray(0, bytesRead);
      done += bytesRead;
      reading = done < length ? readAt(next, done) : undefined;
      hash.update(block);
      [current, next] = [next, current];
    }
  } finally {
    // A read still under way (after a failed one) must not land in a block handed out again.
    await reading?.catch(() => undefined);
    giveBack(current);
    giveBack(next);
  }
  return done;
}
