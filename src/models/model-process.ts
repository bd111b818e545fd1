/**
 * The model process (started by ModelHost, model-host.ts): answers requests that come over the IPC
 * channel, one method each, and keeps every model it loaded for the next request. It exits when its
 * parent goes (the channel closes).
 */
import fs from 'node:fs';
import { loadCocoSsd } from './coco-ssd.js';
import { LazyModel } from './lazy-model.js';
import { ModelFilesError } from './model-files.js';
import type { MethodName, ModelFailure, ModelMethods, ModelProcessConfig, ModelReply, ModelRequest, ModelStats, ReadyMessage } from './model-protocol.js';
import { loadNsfw } from './nsfw.js';
import { tf, tfReady } from './tfjs.js';
import { BadInput, vision } from './vision.js';

const send = process.send?.bind(process);
if (!send) throw new Error('model-process runs as a child process with an IPC channel (see ModelHost)');

const config = JSON.parse(process.argv[2] ?? '{}') as ModelProcessConfig;

// Nothing in this process downloads: a library that tried to would fail at once instead of waiting on the network.
globalThis.fetch = () => Promise.reject(new Error('the model process does not use the network'));

/** Every model, by the name warmUp and stats report. */
const coco = new LazyModel('coco-ssd', () => loadCocoSsd(config.cocoSsdDir));
const nsfw = new LazyModel('nsfwjs', () => loadNsfw());
const MODELS: LazyModel<unknown>[] = [coco, nsfw];

async function warmUp(): Promise<Record<string, number>> {
  const times: Record<string, number> = {};
  // One after another: each load's time is its own, not shared with another's on the same CPU.
  for (const model of MODELS) {
    await model.get();
    times[model.name] = model.loadMs!;
  }
  return times;
}

function peakRssMb(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    // not Linux
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

async function stats(): Promise<ModelStats> {
  await tfReady();
  const memory = tf.memory();
  const usage = process.memoryUsage();
  const loaded: Record<string, number> = {};
  for (const model of MODELS) if (model.loadMs !== undefined) loaded[model.name] = model.loadMs;
  return {
    pid: process.pid,
    numTensors: memory.numTensors,
    tensorBytes: memory.numBytes,
    rssMb: Math.round(usage.rss / 1024 / 1024),
    peakRssMb: peakRssMb(),
    heapUsedMb: Math.round(usage.heapUsed / 1024 / 1024),
    loaded,
  };
}

/** The method table: a new model's method is one line here (and its signature in ModelMethods). */
const METHODS: { [M in MethodName]: (...args: Parameters<ModelMethods[M]>) => ReturnType<ModelMethods[M]> } = {
  vision: (file, opts) => vision(file, opts, { coco, nsfw }),
  warmUp,
  stats,
};

function failureOf(err: unknown): ModelFailure {
  const detail = String((err as Error)?.stack ?? err);
  if (err instanceof ModelFilesError) return { code: 'model-files', message: err.message, detail: err.detail };
  if (err instanceof BadInput) return { code: 'bad-input', message: err.message, detail: err.detail };
  return { code: 'failed', message: 'The model failed on this picture.', detail };
}

async function answer(req: ModelRequest): Promise<void> {
  let reply: ModelReply;
  try {
    const method = METHODS[req.method] as (...args: unknown[]) => Promise<unknown>;
    if (typeof method !== 'function') throw new Error(`unknown method ${String(req.method)}`);
    reply = { id: req.id, value: await method(...req.args) };
  } catch (err) {
    reply = { id: req.id, error: failureOf(err) };
  }
  if (process.connected) send!(reply);
}

process.on('message', (req: ModelRequest) => {
  void answer(req);
});
// The parent went (closed the channel, exited or was killed): so does this process.
process.on('disconnect', () => process.exit(0));
send({ ready: true } satisfies ReadyMessage);
