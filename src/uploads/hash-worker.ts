/**
 * The hashing thread's code (see HashThread): named running sha256 states, fed from file ranges
 * the thread reads itself or from blocks handed over to it.
 */
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import { crc32 } from '@node-rs/crc32';
import { parseReceipt } from './chunk-receipt.js';
import type { ChunkChecksumAlgorithm } from './chunk-checksum.js';
import type { HashRequest, HashReply, PrefixArgs } from './hash-protocol.js';

const BLOCK = 1024 * 1024;
const block = Buffer.allocUnsafeSlow(BLOCK);
const states = new Map<string, Hash>();

function stateOf(name: string): Hash {
  let hash = states.get(name);
  if (!hash) {
    hash = createHash('sha256');
    states.set(name, hash);
  }
  return hash;
}

/** Feeds a range into the hash; with `check`, also into a receipt checksum, returned tagged. */
function hashRange(hash: Hash, fd: number, start: number, length: number, check?: ChunkChecksumAlgorithm): { done: number; checksum?: string } {
  let done = 0;
  let crc = 0;
  const sha = check === 'sha256' ? createHash('sha256') : undefined;
  while (done < length) {
    const n = fs.readSync(fd, block, 0, Math.min(BLOCK, length - done), start + done);
    if (n === 0) break;
    const part = n === BLOCK ? block : block.subarray(0, n);
    hash.update(part);
    if (sha) sha.update(part);
    else if (check === 'crc32') crc = crc32(part, crc);
    done += n;
  }
  if (!check) return { done };
  return { done, checksum: sha ? `sha256:${sha.digest('hex')}` : `crc32:${crc.toString(16).padStart(8, '0')}` };
}

function feed(m: { state: string; file: string; start: number; length: number }): number {
  const hash = stateOf(m.state);
  const fd = fs.openSync(m.file, 'r');
  try {
    const length = m.length < 0 ? Math.max(0, fs.fstatSync(fd).size - m.start) : m.length;
    return hashRange(hash, fd, m.start, length).done;
  } finally {
    fs.closeSync(fd);
  }
}

function statOf(file: string): fs.BigIntStats | undefined {
  try {
    return fs.statSync(file, { bigint: true });
  } catch {
    return undefined;
  }
}

function receiptOf(file: string, index: number, size: number): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const r = parseReceipt(text, index);
  return r && r.size === size ? r.checksum : undefined;
}

/** Hashes the chunks from `next` on while their receipts are there (see PrefixHasher). */
function prefix(m: PrefixArgs & { state: string }): { next: number; checksums: string[] } {
  let hash = stateOf(m.state);
  const checksums: string[] = [];
  let next = m.next;
  let fd: number | undefined;
  try {
    while (next < m.chunkCount) {
      const receiptFile = path.join(m.dir, `${next}.chunk`);
      const before = statOf(receiptFile);
      if (!before) break;
      const size = Math.min(m.chunkSize, m.totalSize - next * m.chunkSize);
      const checksum = receiptOf(receiptFile, next, size);
      if (!checksum) break;
      fd ??= fs.openSync(m.dataFile, 'r');
      const saved = hash.copy();
      const read = hashRange(hash, fd, next * m.chunkSize, size, checksum.startsWith('sha256:') ? 'sha256' : 'crc32');
      const after = statOf(receiptFile);
      const same = after && after.ino === before.ino && after.mtimeNs === before.mtimeNs && after.ctimeNs === before.ctimeNs;
      if (read.done !== size || read.checksum !== checksum || !same) {
        // Sent again while it was read (what was hashed may mix two sends), or the range is not
        // what its receipt says (damaged since). Undone; a later pass takes it once sent again.
        hash = saved;
        states.set(m.state, hash);
        break;
      }
      checksums.push(checksum);
      next++;
    }
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return { next, checksums };
}

function answer(m: HashRequest): { value: unknown; transfer?: ArrayBuffer[] } {
  switch (m.op) {
    case 'update':
      stateOf(m.state).update(Buffer.from(m.buf, 0, m.length));
      return { value: m.buf, transfer: [m.buf] };
    case 'prefix':
      return { value: prefix(m) };
    case 'feed':
      return { value: feed(m) };
    case 'digest': {
      const hash = states.get(m.state) ?? createHash('sha256');
      states.delete(m.state);
      return { value: hash.digest('hex') };
    }
    case 'drop':
      states.delete(m.state);
      return { value: null };
  }
}

const port = parentPort;
if (!port) throw new Error('hash-worker runs in a worker thread');
port.on('message', (m: HashRequest) => {
  let reply: HashReply;
  let transfer: ArrayBuffer[] | undefined;
  try {
    const out = answer(m);
    reply = { id: m.id, value: out.value };
    transfer = out.transfer;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    reply = { id: m.id, error: { message: String(e?.message ?? err), ...(e?.code ? { code: e.code } : {}) } };
  }
  port.postMessage(reply, transfer);
});
