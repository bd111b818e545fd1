import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * A worker thread that keeps running sha256 states and feeds them from file ranges it reads
 * itself (the page cache, as a rule), so that hashing an upload never holds the event loop
 * that receives it: on two cores the bytes arrive on one while they are hashed on the other.
 *
 * The worker's code is plain CommonJS evaluated from a string: it needs only `fs`, `path`,
 * `crypto` and the CRC-32 package, and it loads the same way from the compiled package and under
 * a TypeScript loader.
 */
/** Resolved here: code evaluated from a string resolves packages from the working directory. */
const CRC32_MODULE = createRequire(import.meta.url).resolve('@node-rs/crc32');

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { crc32 } = require(workerData.crc32Module);
const BLOCK = 1024 * 1024;
const block = Buffer.allocUnsafeSlow(BLOCK);
const states = new Map();
const CHECKSUM = /^(crc32:[0-9a-f]{8}|sha256:[0-9a-f]{64})$/;
function stateOf(name) {
  let hash = states.get(name);
  if (!hash) { hash = crypto.createHash('sha256'); states.set(name, hash); }
  return hash;
}
// Feeds a range into the hash; with check, also into a receipt checksum (crc32 or sha256), returned tagged.
function hashRange(hash, fd, start, length, check) {
  let done = 0;
  let crc = 0;
  const sha = check === 'sha256' ? crypto.createHash('sha256') : undefined;
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
  return { done, checksum: sha ? 'sha256:' + sha.digest('hex') : 'crc32:' + crc.toString(16).padStart(8, '0') };
}
function feed(m) {
  const hash = stateOf(m.state);
  const fd = fs.openSync(m.file, 'r');
  try {
    const length = m.length < 0 ? Math.max(0, fs.fstatSync(fd).size - m.start) : m.length;
    return hashRange(hash, fd, m.start, length).done;
  } finally {
    fs.closeSync(fd);
  }
}
function statOf(file) {
  try { return fs.statSync(file, { bigint: true }); } catch { return undefined; }
}
function receiptOf(file, index, size) {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8'));
    return r && r.index === index && r.size === size && CHECKSUM.test(r.checksum) ? r.checksum : undefined;
  } catch { return undefined; }
}
// Hashes the chunks from m.next on while their receipts are there (see PrefixHasher).
function prefix(m) {
  let hash = stateOf(m.state);
  const checksums = [];
  let next = m.next;
  let fd;
  try {
    while (next < m.chunkCount) {
      const receiptFile = path.join(m.dir, next + '.chunk');
      const before = statOf(receiptFile);
      if (!before) break;
      const size = Math.min(m.chunkSize, m.totalSize - next * m.chunkSize);
      const checksum = receiptOf(receiptFile, next, size);
      if (!checksum) break;
      fd ??= fs.openSync(m.dataFile, 'r');
      const saved = hash.copy();
      const read = hashRange(hash, fd, next * m.chunkSize, size, checksum.slice(0, checksum.indexOf(':')));
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
parentPort.on('message', (m) => {
  let reply;
  try {
    if (m.op === 'update') {
      stateOf(m.state).update(Buffer.from(m.buf, 0, m.length));
      reply = { value: m.buf, transfer: [m.buf] };
    } else if (m.op === 'prefix') reply = { value: prefix(m) };
    else if (m.op === 'feed') reply = { value: feed(m) };
    else if (m.op === 'digest') {
      const hash = states.get(m.state) || crypto.createHash('sha256');
      states.delete(m.state);
      reply = { value: hash.digest('hex') };
    } else if (m.op === 'drop') { states.delete(m.state); reply = { value: null }; }
    else throw new Error('unknown op ' + m.op);
  } catch (err) {
    reply = { error: { message: String(err && err.message || err), code: err && err.code } };
  }
  reply.id = m.id;
  const transfer = reply.transfer;
  delete reply.transfer;
  parentPort.postMessage(reply, transfer);
});
`;

export interface PrefixArgs {
  dir: string;
  dataFile: string;
  next: number;
  chunkCount: number;
  chunkSize: number;
  totalSize: number;
}

interface Reply {
  id: number;
  value?: unknown;
  error?: { message: string; code?: string };
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/**
 * Named sha256 states in one worker thread. Calls on one state run in the order they were
 * made (the thread takes its messages one at a time).
 */
export class HashThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private start(): Worker {
    if (this.worker) return this.worker;
    // The thread holds a few hash states and one 1 MiB block: a small heap is plenty.
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'qasar-hash', workerData: { crc32Module: CRC32_MODULE }, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 } });
    worker.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error) p.reject(Object.assign(new Error(r.error.message), r.error.code ? { code: r.error.code } : {}));
      else p.resolve(r.value);
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the hashing thread exited (${code})`)));
    // An idle thread does not keep the process alive; a call in flight does (see call()).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private call(msg: Record<string, unknown>, transfer?: ArrayBuffer[]): Promise<unknown> {
    const worker = this.start();
    const id = this.nextId++;
    if (this.pending.size === 0) worker.ref();
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...msg, id }, transfer);
    }).finally(() => {
      if (this.pending.size === 0) this.worker?.unref();
    });
  }

  /**
   * Feeds the chunks of a session's data file from `next` on into the state, for as long as each
   * has its receipt (`<dir>/<index>.chunk`, of the size its index calls for), its range has the
   * receipt's checksum, and the receipt is the same file after the range was read as before; a
   * chunk that fails any of these is undone and ends the pass. Returns the new `next` and the receipt checksum of each chunk fed.
   */
  async prefix(state: string, args: PrefixArgs): Promise<{ next: number; checksums: string[] }> {
    return (await this.call({ op: 'prefix', state, ...args })) as { next: number; checksums: string[] };
  }

  /** Feeds `length` bytes of `file` from `start` (to its end when length < 0) into the state; returns the bytes read (short at EOF). */
  async feed(state: string, file: string, start: number, length: number): Promise<number> {
    return (await this.call({ op: 'feed', state, file, start, length })) as number;
  }

  /** Feeds the first `length` bytes of `buf` (handed over to the thread, and handed back) into the state. */
  async update(state: string, buf: ArrayBuffer, length: number): Promise<ArrayBuffer> {
    return (await this.call({ op: 'update', state, buf, length }, [buf])) as ArrayBuffer;
  }

  /** The state's sha256 (of nothing when it was never fed); the state is gone afterwards. */
  async digest(state: string): Promise<string> {
    return (await this.call({ op: 'digest', state })) as string;
  }

  async drop(state: string): Promise<void> {
    if (!this.worker) return;
    await this.call({ op: 'drop', state });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}

/** Bytes copied into one block before it goes to the thread. */
const SINK_BLOCK = 1024 * 1024;
/** Blocks a sink may have in the thread at once; past that, writing waits (bounded memory). */
const SINK_MAX_IN_FLIGHT = 4;
/** Blocks kept for reuse across sinks. */
const spareBlocks: ArrayBuffer[] = [];

/**
 * A running sha256 in the hashing thread, fed as bytes pass (e.g. a tus PATCH body): bytes are
 * copied into 1 MiB blocks, each handed to the thread and back, so the event loop only copies.
 * `update` answers a promise when too many blocks are in the thread; the writer waits for it.
 * `flush` hands over the last partial block and waits until every byte was hashed.
 */
export class ThreadHashSink {
  private block: Buffer | undefined;
  private used = 0;
  private inFlight = 0;
  private failed: unknown;
  private readonly idle: Array<() => void> = [];

  constructor(
    private readonly thread: HashThread,
    readonly state: string,
  ) {}

  update(data: Buffer): Promise<void> | undefined {
    let at = 0;
    while (at < data.length) {
      this.block ??= Buffer.from(spareBlocks.pop() ?? new ArrayBuffer(SINK_BLOCK));
      const n = data.copy(this.block, this.used, at);
      this.used += n;
      at += n;
      if (this.used === this.block.length) this.send();
    }
    return this.inFlight >= SINK_MAX_IN_FLIGHT ? this.below(SINK_MAX_IN_FLIGHT) : undefined;
  }

  async flush(): Promise<void> {
    if (this.used) this.send();
    await this.below(1);
    if (this.failed !== undefined) throw this.failed;
  }

  private send(): void {
    const block = this.block!;
    const length = this.used;
    this.block = undefined;
    this.used = 0;
    this.inFlight++;
    this.thread.update(this.state, block.buffer as ArrayBuffer, length).then(
      (back) => {
        if (spareBlocks.length < 16) spareBlocks.push(back);
        this.settled();
      },
      (err: unknown) => {
        this.failed ??= err;
        this.settled();
      },
    );
  }

  private settled(): void {
    this.inFlight--;
    for (const wake of this.idle.splice(0)) wake();
  }

  private async below(limit: number): Promise<void> {
    while (this.inFlight >= limit) await new Promise<void>((resolve) => this.idle.push(resolve));
  }
}
