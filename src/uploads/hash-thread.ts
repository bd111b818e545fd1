import { Worker } from 'node:worker_threads';
import type { HashCall, HashReply, PrefixArgs } from './hash-protocol.js';

export type { PrefixArgs };

/**
 * The thread's module beside this one. Run from TypeScript sources (tests, benchmarks), the
 * thread registers the same loader first: a worker thread does not inherit `--import tsx`.
 */
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const WORKER_MODULE = new URL(FROM_SOURCES ? './hash-worker.ts' : './hash-worker.js', import.meta.url);
const WORKER_ENTRY: URL | string = FROM_SOURCES
  ? // Resolved here: code evaluated from a string would resolve the package from the working directory.
    `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_MODULE.href)}); });`
  : WORKER_MODULE;

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/**
 * A worker thread that keeps running sha256 states and feeds them from file ranges it reads
 * itself (the page cache, as a rule), so that hashing an upload never holds the event loop
 * that receives it: on two cores the bytes arrive on one while they are hashed on the other.
 * Calls on one state run in the order they were
 * made (the thread takes its messages one at a time).
 */
export class HashThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private start(): Worker {
    if (this.worker) return this.worker;
    // The thread holds a few hash states and one 1 MiB block: a small heap is plenty.
    const worker = new Worker(WORKER_ENTRY, {
      eval: FROM_SOURCES,
      name: 'qasar-hash',
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
    });
    worker.on('message', (r: HashReply) => {
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

  private call(msg: HashCall, transfer?: ArrayBuffer[]): Promise<unknown> {
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
