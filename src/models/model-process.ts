/**
 * A model process (started by ModelHost, model-host.ts, one per model family): answers requests that
 * come over the IPC channel, one method each, and keeps every model it loaded for the next request. It
 * exits when its parent goes (the channel closes).
 */
import fs from 'node:fs';
import { BadInput } from './inputs.js';
import { LazyModel } from './lazy-model.js';
import { ModelFilesError, overridePackageDirs } from './model-files.js';
import {
  METHOD_FAMILY,
  MODEL_NAMES,
  type MethodName,
  type ModelFailure,
  type ModelMethods,
  type ModelName,
  type ModelProcessConfig,
  type ModelReply,
  type ModelRequest,
  type ModelStats,
  type ReadyMessage,
} from './model-protocol.js';
import { setOnnxThreads } from './onnx.js';

const send = process.send?.bind(process);
if (!send) throw new Error('model-process runs as a child process with an IPC channel (see ModelHost)');

const config = JSON.parse(process.argv[2] ?? '{}') as ModelProcessConfig;
const family = config.family ?? 'vision';
overridePackageDirs(config.packageDirs);
setOnnxThreads(config.onnxThreads);

// Nothing in this process downloads: a library that tried to would fail at once instead of waiting on the network.
globalThis.fetch = () => Promise.reject(new Error('the model process does not use the network'));

// Every model, by the name warmUp and stats report. Each module is imported on first use, so a process
// loads only its own family's libraries (the speech and text processes never load the vision models' TF.js).
const coco = new LazyModel('coco-ssd', async () => (await import('./coco-ssd.js')).loadCocoSsd(config.cocoSsdDir));
const nsfw = new LazyModel('nsfwjs', async () => (await import('./nsfw.js')).loadNsfw());
const ocrModel = new LazyModel('ocr', async () => (await import('./ocr.js')).loadOcr());
const vad = new LazyModel('silero-vad', async () => (await import('./vad.js')).loadSileroVad());
const whisper = {
  base: new LazyModel('whisper-base', async () => (await import('./whisper.js')).loadWhisper('base')),
  small: new LazyModel('whisper-small', async () => (await import('./whisper.js')).loadWhisper('small')),
};
const use = new LazyModel('use-lite', async () => (await import('./embeddings.js')).loadEmbeddings());
const MODELS: Record<ModelName, LazyModel<unknown>> = {
  'coco-ssd': coco,
  nsfwjs: nsfw,
  ocr: ocrModel,
  'silero-vad': vad,
  'whisper-base': whisper.base,
  'whisper-small': whisper.small,
  'use-lite': use,
};

/** This family's models; Whisper small (optional, 2.5 GB) only when named. */
const familyModels = (Object.keys(MODELS) as ModelName[]).filter((name) => MODEL_NAMES[name] === family);

async function warmUp(names: ModelName[] = familyModels.filter((name) => name !== 'whisper-small')): Promise<Record<string, number>> {
  const times: Record<string, number> = {};
  // One after another: each load's time is its own, not shared with another's on the same CPU.
  for (const name of names) {
    if (MODEL_NAMES[name] !== family) throw new Error(`${name} is a model of the ${MODEL_NAMES[name]} family, not of ${family}`);
    const model = MODELS[name];
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

async function tensors(): Promise<{ numTensors: number; numBytes: number }> {
  if (family === 'vision') {
    const { tf, tfReady } = await import('./tfjs.js');
    await tfReady();
    return tf.memory();
  }
  if (family === 'text' && use.loadMs !== undefined) return (await import('./embeddings.js')).embeddingTensors();
  return { numTensors: 0, numBytes: 0 };
}

async function stats(): Promise<ModelStats> {
  const memory = await tensors();
  const usage = process.memoryUsage();
  const loaded: Record<string, number> = {};
  for (const model of Object.values(MODELS)) if (model.loadMs !== undefined) loaded[model.name] = model.loadMs;
  return {
    pid: process.pid,
    family,
    numTensors: memory.numTensors,
    tensorBytes: memory.numBytes,
    rssMb: Math.round(usage.rss / 1024 / 1024),
    peakRssMb: peakRssMb(),
    heapUsedMb: Math.round(usage.heapUsed / 1024 / 1024),
    loaded,
  };
}

/** The method table: a new model's method is one line here (and its signature in ModelMethods, its family in METHOD_FAMILY). */
const METHODS: { [M in MethodName]: (...args: Parameters<ModelMethods[M]>) => ReturnType<ModelMethods[M]> } = {
  vision: async (file, opts) => (await import('./vision.js')).vision(file, opts, { coco, nsfw }),
  ocr: async (file, opts) => (await import('./ocr.js')).ocr(await ocrModel.get(), file, opts),
  speech: async (pcmFile, opts) => (await import('./vad.js')).speech(await vad.get(), pcmFile, opts),
  transcribe: async (pcmFile, opts) => (await import('./whisper.js')).transcribe(whisper, pcmFile, opts),
  embed: async (texts) => (await import('./embeddings.js')).embed(await use.get(), texts),
  warmUp,
  stats,
};

const INPUT: Partial<Record<MethodName, string>> = { vision: 'picture', ocr: 'picture', speech: 'sound', transcribe: 'sound', embed: 'text' };

function failureOf(err: unknown, method: MethodName): ModelFailure {
  const detail = String((err as Error)?.stack ?? err);
  if (err instanceof ModelFilesError) return { code: 'model-files', message: err.message, detail: err.detail };
  if (err instanceof BadInput) return { code: 'bad-input', message: err.message, detail: err.detail };
  const input = INPUT[method];
  return { code: 'failed', message: input ? `The model failed on this ${input}.` : 'The model failed.', detail };
}

async function answer(req: ModelRequest): Promise<void> {
  let reply: ModelReply;
  try {
    const method = METHODS[req.method] as (...args: unknown[]) => Promise<unknown>;
    if (typeof method !== 'function') throw new Error(`unknown method ${String(req.method)}`);
    const owner = (METHOD_FAMILY as Partial<Record<MethodName, string>>)[req.method];
    if (owner && owner !== family) throw new Error(`${req.method} is a method of the ${owner} process, not of ${family}`);
    reply = { id: req.id, value: await method(...req.args) };
  } catch (err) {
    reply = { id: req.id, error: failureOf(err, req.method) };
  }
  if (process.connected) send!(reply);
}

process.on('message', (req: ModelRequest) => {
  void answer(req);
});
// The parent went (closed the channel, exited or was killed): so does this process.
process.on('disconnect', () => process.exit(0));
send({ ready: true } satisfies ReadyMessage);
