/**
 * The parent side of the model processes: ModelHost starts model-process.ts as a child process per
 * model family (vision, speech, text; IPC, structured-clone messages), sends each one request at a
 * time, bounds each by a time limit, and starts a new child on the next call after one died or was
 * killed. The models run there, off this process's event loop and memory; importing this module loads
 * none of them.
 */
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  type EmbedResult,
  METHOD_FAMILY,
  type MethodArgs,
  type MethodName,
  type MethodResult,
  MODEL_FAMILIES,
  type ModelErrorCode,
  type ModelFamily,
  type ModelName,
  type ModelProcessConfig,
  type ModelReply,
  type ModelRequest,
  type ModelStats,
  type OcrResult,
  type ReadyMessage,
  type SpeechOptions,
  type SpeechResult,
  type TimeSpan,
  type TranscribeResult,
  type VisionResult,
  type WhisperModel,
} from './model-protocol.js';
import { BYTES_PER_SAMPLE, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SPEECH_OPTIONS, DEFAULT_WINDOW_TIMEOUT_MS, SAMPLE_RATE, whisperWindows } from './speech-windows.js';

export type {
  EmbedResult,
  ModelErrorCode,
  ModelFamily,
  ModelName,
  ModelStats,
  NsfwClass,
  ObjectDetection,
  OcrLine,
  OcrResult,
  SpeechOptions,
  SpeechResult,
  TimeSpan,
  TranscribeResult,
  TranscriptCue,
  VisionResult,
  WhisperModel,
} from './model-protocol.js';
export { cosine } from './vectors.js';

export interface ModelHostOptions {
  /** V8 heap limit of each model process (--max-old-space-size). Model weights live in wasm and onnxruntime memory, outside it. */
  maxOldSpaceMb?: number;
  /** Time limit of one request, the start of the process and the loading of its models included (speech and transcribe add to it, see there). */
  requestTimeoutMs?: number;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** COCO-SSD's folder; default `.cache/models/coco-ssd` in the package root (tests point it elsewhere). */
  cocoSsdDir?: string;
  /** onnxruntime's threads per inference (OCR, VAD, Whisper); default 1. */
  onnxThreads?: number;
  /** npm packages holding model files, by name, found here instead of where Node resolves them (tests: a damaged copy, a missing package). */
  packageDirs?: Record<string, string>;
  /** Keep at most one of the heavy families (vision, speech) running when the other is idle; default true. */
  oneHeavyFamily?: boolean;
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

/** The niceness of a model process (0 normal, 19 lowest). */
const MODEL_NICENESS = 10;

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
    // Models are follow-up work: a new upload's ffmpeg gets the CPU first.
    if (this.proc.pid) {
      try {
        os.setPriority(this.proc.pid, MODEL_NICENESS);
      } catch {
        // Not allowed here: it runs at the worker's priority.
      }
    }
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

  /** Whether a request is in flight. */
  get busy(): boolean {
    return this.pending.size > 0;
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

/** The families whose models are large: at most one of them is kept (see makeRoomFor). */
const HEAVY_FAMILIES: readonly ModelFamily[] = ['vision', 'speech'];

/** Time per second of sound that `speech` may take on top of requestTimeoutMs (Silero runs at 200-400x real time). */
const SPEECH_MS_PER_SECOND = 10;
/** What a window may take past its own time limit (the encoder and the token in progress are not interrupted). */
const WINDOW_GRACE_MS = 10_000;

/** One family's child and its queue of requests. */
interface Family {
  child: ModelChild | undefined;
  tail: Promise<unknown>;
  /** Requests given to this family and not finished (running or waiting their turn). */
  queued: number;
}

/**
 * Runs the local models in child processes, one per family (see ModelFamily): vision (COCO-SSD,
 * nsfwjs, PaddleOCR), speech (Silero VAD, Whisper) and text (the sentence encoder), so that Whisper's
 * 1.2 GB never sits beside the vision models and the two TensorFlow.js copies never share a process.
 * A family's child starts on the first call of one of its methods. Requests to one child go one at a
 * time, in call order; each has a time limit, after which that child is killed and the request fails
 * with ModelError. A child that died or was killed is replaced on the next call; models load in it on
 * first use and stay loaded.
 */
export class ModelHost {
  private readonly families = new Map<ModelFamily, Family>(MODEL_FAMILIES.map((f) => [f, { child: undefined, tail: Promise.resolve(), queued: 0 }]));
  private readonly execArgv: string[];
  private readonly timeoutMs: number;
  private readonly config: Omit<ModelProcessConfig, 'family'>;

  constructor(private readonly opts: ModelHostOptions = {}) {
    const heapMb = opts.maxOldSpaceMb ?? DEFAULT_MODEL_MAX_OLD_SPACE_MB;
    this.execArgv = [...CHILD_LOADER, `--max-old-space-size=${heapMb}`];
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_MODEL_REQUEST_TIMEOUT_MS;
    this.config = {
      ...(opts.cocoSsdDir ? { cocoSsdDir: path.resolve(opts.cocoSsdDir) } : {}),
      ...(opts.onnxThreads ? { onnxThreads: opts.onnxThreads } : {}),
      ...(opts.packageDirs ? { packageDirs: Object.fromEntries(Object.entries(opts.packageDirs).map(([k, v]) => [k, path.resolve(v)])) } : {}),
    };
  }

  /**
   * Runs COCO-SSD (every detection with score >= minObjectScore, default 0.3: the caller filters
   * further; at most maxObjects, default 20) and nsfwjs (all five classes) on one picture file (JPEG,
   * PNG, WebP…), decoded in the child by sharp. `timeoutMs` overrides requestTimeoutMs for this call.
   */
  vision(file: string, opts: { minObjectScore?: number; maxObjects?: number; timeoutMs?: number } = {}): Promise<VisionResult> {
    return this.call('vision', [path.resolve(file), { minObjectScore: opts.minObjectScore ?? 0.3, maxObjects: opts.maxObjects ?? 20 }], opts.timeoutMs);
  }

  /**
   * Reads the text in a picture file (JPEG, PNG, WebP…): PaddleOCR PP-OCRv4 detection and recognition,
   * on the picture scaled to at most `maxSide` pixels (default 960, PaddleOCR's own limit: subtitles
   * of a 720p or 1080p frame stay readable). Lines below `minScore` (default 0.75) are dropped: what
   * the recogniser reads in textures scored 0.5-0.71 on the test photos, real text 0.82-0.998, so a
   * photo without text gives "". Lines come top to bottom, with boxes relative to the picture.
   */
  ocr(file: string, opts: { minScore?: number; maxSide?: number; timeoutMs?: number } = {}): Promise<OcrResult> {
    return this.call('ocr', [path.resolve(file), { minScore: opts.minScore ?? 0.75, maxSide: opts.maxSide ?? 960 }], opts.timeoutMs);
  }

  /**
   * Where someone speaks in a raw sound file: 16 kHz mono float32 little-endian samples (what
   * `ffmpeg -ac 1 -ar 16000 -f f32le` writes), through Silero VAD v5. Segments closer than mergeGapMs
   * (500) are merged, those shorter than minSpeechMs (250) dropped, the rest padded by padMs (200);
   * see SpeechOptions. The time limit grows with the file: requestTimeoutMs + 10 ms per second of sound.
   */
  speech(pcmFile: string, opts: Partial<SpeechOptions> & { timeoutMs?: number } = {}): Promise<SpeechResult> {
    const { timeoutMs, ...given } = opts;
    const file = path.resolve(pcmFile);
    const settings = { ...DEFAULT_SPEECH_OPTIONS, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) };
    return this.call('speech', [file, settings], timeoutMs ?? this.timeoutMs + Math.ceil(soundSeconds(file) * SPEECH_MS_PER_SECOND));
  }

  /**
   * Transcribes the speech windows of a raw sound file (as for `speech`; typically its segments) with
   * Whisper: `base` by default, `small` (more accurate, 2-3 times slower, about 2.5 GB) when its
   * optional npm package is installed, or a ModelError `model-files` naming it. Nothing outside the
   * windows is read; a window longer than 30 s is cut into equal parts. Each part generates at most
   * maxNewTokens (224; fewer for a short part) and may take windowTimeoutMs (60 s): past that it gives
   * no text and is listed in `timedOut`. Cues are in seconds of the whole file. No windows: no cues,
   * and no model is loaded. `language` is passed to Whisper (English when not given) and returned as
   * given: the pipeline here does not detect it. The call's time limit is requestTimeoutMs plus each
   * part's windowTimeoutMs and 10 s.
   */
  transcribe(
    pcmFile: string,
    opts: { windows: TimeSpan[]; model?: WhisperModel; language?: string; maxNewTokens?: number; windowTimeoutMs?: number; timeoutMs?: number },
  ): Promise<TranscribeResult> {
    const windowTimeoutMs = opts.windowTimeoutMs ?? DEFAULT_WINDOW_TIMEOUT_MS;
    const windows = opts.windows.map((w) => ({ start: w.start, end: w.end }));
    const settings = {
      windows,
      model: opts.model ?? 'base',
      maxNewTokens: opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS,
      windowTimeoutMs,
      ...(opts.language ? { language: opts.language } : {}),
    };
    const file = path.resolve(pcmFile);
    const parts = whisperWindows(windows, soundSeconds(file)).length;
    return this.call('transcribe', [file, settings], opts.timeoutMs ?? this.timeoutMs + parts * (windowTimeoutMs + WINDOW_GRACE_MS));
  }

  /**
   * 512-dimensional embeddings of English texts (Universal Sentence Encoder lite), one per text, unit
   * length; compare them with `cosine` (this module, no model). A text with no words gives zeros;
   * texts longer than 2,000 characters are cut there: give it sentences or cues, not whole documents.
   */
  embed(texts: string[], opts: { timeoutMs?: number } = {}): Promise<EmbedResult> {
    return this.call('embed', [texts], opts.timeoutMs);
  }

  /**
   * Loads a family's models now (a start-up check): those named, or all of the family's but Whisper
   * small. The load time of each in ms (as first loaded, when it already was).
   */
  warmUp(family: ModelFamily = 'vision', models?: ModelName[]): Promise<Record<string, number>> {
    return this.callFamily(family, 'warmUp', models ? [models] : [], this.timeoutMs);
  }

  /** A family's child's tensor count and memory (starts the child if none runs). */
  stats(family: ModelFamily = 'vision'): Promise<ModelStats> {
    return this.callFamily(family, 'stats', [], this.timeoutMs);
  }

  /** The pid of the running vision child, if one runs. */
  get pid(): number | undefined {
    return this.pidOf('vision');
  }

  /** The pid of a family's running child, if one runs. */
  pidOf(family: ModelFamily): number | undefined {
    const child = this.families.get(family)!.child;
    return child && !child.exited ? child.pid : undefined;
  }

  /** Stops every child (once its request in flight, if any, has ended). A later call starts a new one. */
  async close(): Promise<void> {
    await Promise.all(MODEL_FAMILIES.map((family) => this.closeFamily(this.families.get(family)!)));
  }

  private async closeFamily(state: Family): Promise<void> {
    await state.tail;
    const child = state.child;
    state.child = undefined;
    if (!child || child.exited) return;
    child.expected = true;
    const exited = new Promise<void>((resolve) => child.proc.once('exit', () => resolve()));
    // The child exits when its channel closes; one that does not within 2 s is killed.
    if (child.proc.connected) child.proc.disconnect();
    const timer = setTimeout(() => child.kill(), 2000);
    await exited;
    clearTimeout(timer);
  }

  private call<M extends Exclude<MethodName, 'warmUp' | 'stats'>>(method: M, args: MethodArgs<M>, timeoutMs = this.timeoutMs): Promise<MethodResult<M>> {
    return this.callFamily(METHOD_FAMILY[method], method, args, timeoutMs);
  }

  private callFamily<M extends MethodName>(family: ModelFamily, method: M, args: MethodArgs<M>, timeoutMs: number): Promise<MethodResult<M>> {
    const state = this.families.get(family)!;
    state.queued++;
    const run = state.tail.then(() => this.request(family, state, method, args, timeoutMs)).finally(() => state.queued--);
    state.tail = run.catch(() => undefined);
    return run as Promise<MethodResult<M>>;
  }

  /**
   * Stops the idle child of the other heavy family (vision: 0.3-0.8 GB, speech: 1.2 GB) before one
   * starts or works, so that a worker holds one of them at a time: labeling and transcripts take
   * turns in the follow-up slot, and reloading costs about a second, while keeping both would put
   * a worker at 2 GB. A busy one (two follow-ups at once) is left running.
   */
  private async makeRoomFor(family: ModelFamily): Promise<void> {
    if (this.opts.oneHeavyFamily === false || !HEAVY_FAMILIES.includes(family)) return;
    for (const other of HEAVY_FAMILIES) {
      if (other === family) continue;
      const state = this.families.get(other)!;
      if (state.child && !state.child.exited && !state.child.busy && state.queued === 0) {
        this.opts.log?.info({ family: other, pid: state.child.pid }, 'model process stopped to make room');
        await this.closeFamily(state);
      }
    }
  }

  private start(family: ModelFamily, state: Family): ModelChild {
    if (state.child && !state.child.exited) return state.child;
    const child = new ModelChild(this.execArgv, { ...this.config, family }, (c, code, signal) => {
      if (state.child === c) state.child = undefined;
      if (!c.expected) this.opts.log?.warn({ family, pid: c.pid, code, signal, stderr: c.stderrTail() }, 'the model process stopped unexpectedly');
    });
    state.child = child;
    this.opts.log?.info({ family, pid: child.pid }, 'model process started');
    return child;
  }

  private async request(family: ModelFamily, state: Family, method: MethodName, args: unknown[], timeoutMs: number): Promise<unknown> {
    let child: ModelChild | undefined;
    let timer: NodeJS.Timeout | undefined;
    // Before the time limit starts (and with no rejection waiting unhandled meanwhile).
    await this.makeRoomFor(family);
    const timeout = new Promise<never>((_, reject) => {
      // setTimeout takes at most 2^31-1 ms (24.8 days); a longer limit would fire at once.
      timer = setTimeout(
        () => reject(new ModelError(`The model took longer than ${timeoutMs} ms and was stopped.`, 'timeout')),
        Math.min(timeoutMs, 2 ** 31 - 1),
      );
    });
    try {
      const started = this.start(family, state);
      child = started;
      return await Promise.race([started.ready.then(() => started.call(method, args)), timeout]);
    } catch (err) {
      if (child && err instanceof ModelError && err.code === 'timeout') {
        this.opts.log?.warn({ family, pid: child.pid, method, timeoutMs }, 'a model request timed out: the model process was killed');
        if (state.child === child) state.child = undefined;
        child.kill();
      }
      if (err instanceof ModelError) throw err;
      throw new ModelError('The model process could not be started.', 'crashed', String(err));
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Seconds of sound in a raw 16 kHz float32 file (0 when it cannot be read: the child says why). */
function soundSeconds(file: string): number {
  try {
    return fs.statSync(file).size / BYTES_PER_SAMPLE / SAMPLE_RATE;
  } catch {
    return 0;
  }
}
