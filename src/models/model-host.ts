/**
 * The parent side of the model process: ModelHost starts model-process.ts as a child process (IPC,
 * structured-clone messages), sends it one request at a time, bounds each by a time limit, and starts
 * a new child on the next call after one died or was killed. The models run there, off this process's
 * event loop and memory; importing this module loads none of them.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { Socket } from 'node:net';
import path from 'node:path';
import type {
  MethodArgs,
  MethodName,
  MethodResult,
  ModelErrorCode,
  ModelProcessConfig,
  ModelReply,
  ModelRequest,
  ModelStats,
  ReadyMessage,
  VisionResult,
} from './model-protocol.js';

export type { ModelErrorCode, ModelStats, NsfwClass, ObjectDetection, VisionResult } from './model-protocol.js';

export interface ModelHostOptions {
  /** V8 heap limit of the model process (--max-old-space-size). Model weights live in wasm memory, outside it. */
  maxOldSpaceMb?: number;
  /** Time limit of one request, the start of the process and the loading of its models included. */
  requestTimeoutMs?: number;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** COCO-SSD's folder; default `.cache/models/coco-ssd` in the package root (tests point it elsewhere). */
  cocoSsdDir?: string;
}

export const DEFAULT_MODEL_MAX_OLD_SPACE_MB = 256;
export const DEFAULT_MODEL_REQUEST_TIMEOUT_MS = 60_000;

/** A model failed, timed out or could not be loaded. `message` is plain words with no file paths; `detail` is for the logs. */
export class ModelError extends Error {
  constructor(
    message: string,
    readonly code: ModelErrorCode = 'failed',
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'ModelError';
  }
}

/**
 * The child's module beside this one: the TypeScript source under tsx (tests), which the child then
 * loads with the same loader, or the compiled JavaScript in dist/.
 */
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const CHILD_MODULE = path.join(import.meta.dirname, FROM_SOURCES ? 'model-process.ts' : 'model-process.js');
// Resolved here: a bare `--import tsx` would be resolved from the child's working directory.
const CHILD_LOADER: string[] = FROM_SOURCES ? ['--import', import.meta.resolve('tsx')] : [];

/** What a child printed on stderr last, kept for the log line of its death. */
const STDERR_TAIL = 4000;

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/** One started child and its requests in flight. */
class ModelChild {
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderr = '';
  exited = false;
  /** Set when the host killed it (time limit, close): its exit is no surprise. */
  expected = false;

  constructor(execArgv: string[], config: ModelProcessConfig, onExit: (child: ModelChild, code: number | null, signal: NodeJS.Signals | null) => void) {
    this.proc = fork(CHILD_MODULE, [JSON.stringify(config)], {
      execArgv,
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.proc.stderr?.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString('utf8')).slice(-STDERR_TAIL);
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: ReadyMessage | ModelReply) => {
        if ('ready' in m) {
          this.proc.off('message', onMessage);
          resolve();
        }
      };
      this.proc.on('message', onMessage);
      this.proc.once('error', reject);
      this.proc.once('exit', () => reject(new ModelError('The model process stopped while starting.', 'crashed', this.stderrTail())));
    });
    this.ready.catch(() => undefined);
    this.proc.on('message', (m: ReadyMessage | ModelReply) => {
      if (!('id' in m)) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ('error' in m) p.reject(new ModelError(m.error.message, m.error.code, m.error.detail));
      else p.resolve(m.value);
      this.idle();
    });
    const gone = (code: number | null, signal: NodeJS.Signals | null, detail: string) => {
      if (this.exited) return;
      this.exited = true;
      const err = new ModelError('The model process stopped unexpectedly.', 'crashed', detail);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      onExit(this, code, signal);
    };
    this.proc.once('exit', (code, signal) => gone(code, signal, this.stderrTail()));
    // A process that could not be started emits 'error' and never 'exit'.
    this.proc.on('error', (err) => {
      if (this.proc.pid === undefined) gone(null, null, String(err));
    });
    // An idle child does not keep this process alive; a request in flight does (see call()).
    this.idle();
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  stderrTail(): string {
    return this.stderr.trim().split('\n').slice(-8).join('\n');
  }

  call(method: MethodName, args: unknown[]): Promise<unknown> {
    if (this.exited) return Promise.reject(new ModelError('The model process stopped unexpectedly.', 'crashed'));
    const id = this.nextId++;
    this.proc.ref();
    this.proc.channel?.ref();
    (this.proc.stderr as Socket | null)?.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.send({ id, method, args } as ModelRequest, (err) => {
        if (!err || !this.pending.has(id)) return;
        this.pending.delete(id);
        reject(new ModelError('The model process could not be reached.', 'crashed', String(err)));
        this.idle();
      });
    });
  }

  private idle(): void {
    if (this.pending.size > 0) return;
    this.proc.unref();
    this.proc.channel?.unref();
    (this.proc.stderr as Socket | null)?.unref();
  }

  /** SIGKILL by pid: a child busy in a model never reads a polite request. */
  kill(): void {
    this.expected = true;
    if (this.exited || this.proc.pid === undefined) return;
    try {
      process.kill(this.proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Runs the local vision models (COCO-SSD object detection, nsfwjs moderation classes) in a child
 * process. Requests go one at a time, in call order; each has `requestTimeoutMs`, after which the child
 * is killed and the request fails with ModelError. A child that died or was killed is replaced on the
 * next call; models load in it on first use and stay loaded.
 */
export class ModelHost {
  private child: ModelChild | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly execArgv: string[];
  private readonly timeoutMs: number;
  private readonly config: ModelProcessConfig;

  constructor(private readonly opts: ModelHostOptions = {}) {
    const heapMb = opts.maxOldSpaceMb ?? DEFAULT_MODEL_MAX_OLD_SPACE_MB;
    this.execArgv = [...CHILD_LOADER, `--max-old-space-size=${heapMb}`];
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_MODEL_REQUEST_TIMEOUT_MS;
    this.config = opts.cocoSsdDir ? { cocoSsdDir: path.resolve(opts.cocoSsdDir) } : {};
  }

  /**
   * Runs COCO-SSD (every detection with score >= minObjectScore, default 0.3: the caller filters
   * further; at most maxObjects, default 20) and nsfwjs (all five classes) on one picture file (JPEG,
   * PNG, WebP…), decoded in the child by sharp. `timeoutMs` overrides requestTimeoutMs for this call.
   */
  vision(file: string, opts: { minObjectScore?: number; maxObjects?: number; timeoutMs?: number } = {}): Promise<VisionResult> {
    return this.call('vision', [path.resolve(file), { minObjectScore: opts.minObjectScore ?? 0.3, maxObjects: opts.maxObjects ?? 20 }], opts.timeoutMs);
  }

  /** Loads the models now (a start-up check); the load time of each in ms (as first loaded, when it already was). */
  warmUp(): Promise<Record<string, number>> {
    return this.call('warmUp', []);
  }

  /** The child's tensor count and memory (starts the child if none runs). */
  stats(): Promise<ModelStats> {
    return this.call('stats', []);
  }

  /** The pid of the running child, if one runs. */
  get pid(): number | undefined {
    return this.child && !this.child.exited ? this.child.pid : undefined;
  }

  /** Stops the child (once the request in flight, if any, has ended). A later call starts a new one. */
  async close(): Promise<void> {
    await this.tail;
    const child = this.child;
    this.child = undefined;
    if (!child || child.exited) return;
    child.expected = true;
    const exited = new Promise<void>((resolve) => child.proc.once('exit', () => resolve()));
    // The child exits when its channel closes; one that does not within 2 s is killed.
    if (child.proc.connected) child.proc.disconnect();
    const timer = setTimeout(() => child.kill(), 2000);
    await exited;
    clearTimeout(timer);
  }

  private call<M extends MethodName>(method: M, args: MethodArgs<M>, timeoutMs = this.timeoutMs): Promise<MethodResult<M>> {
    const run = this.tail.then(() => this.request(method, args, timeoutMs));
    this.tail = run.catch(() => undefined);
    return run as Promise<MethodResult<M>>;
  }

  private start(): ModelChild {
    if (this.child && !this.child.exited) return this.child;
    const child = new ModelChild(this.execArgv, this.config, (c, code, signal) => {
      if (this.child === c) this.child = undefined;
      if (!c.expected) this.opts.log?.warn({ pid: c.pid, code, signal, stderr: c.stderrTail() }, 'the model process stopped unexpectedly');
    });
    this.child = child;
    this.opts.log?.info({ pid: child.pid }, 'model process started');
    return child;
  }

  private async request(method: MethodName, args: unknown[], timeoutMs: number): Promise<unknown> {
    let child: ModelChild | undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ModelError(`The model took longer than ${timeoutMs} ms and was stopped.`, 'timeout')), timeoutMs);
    });
    try {
      const started = this.start();
      child = started;
      return await Promise.race([started.ready.then(() => started.call(method, args)), timeout]);
    } catch (err) {
      if (child && err instanceof ModelError && err.code === 'timeout') {
        this.opts.log?.warn({ pid: child.pid, method, timeoutMs }, 'a model request timed out: the model process was killed');
        if (this.child === child) this.child = undefined;
        child.kill();
      }
      if (err instanceof ModelError) throw err;
      throw new ModelError('The model process could not be started.', 'crashed', String(err));
    } finally {
      clearTimeout(timer);
    }
  }
}
