/**
 * What the model host (parent, model-host.ts) and the model process (child, model-process.ts) say to
 * each other over the IPC channel: a request names a method and its arguments, the reply carries its
 * result or a failure. Types only: importing this loads no model code.
 */

export type NsfwClass = 'Drawing' | 'Hentai' | 'Neutral' | 'Porn' | 'Sexy';

export interface ObjectDetection {
  /** The COCO class as the model names it, e.g. 'bicycle'. */
  cls: string;
  score: number;
  /** x, y, width, height relative to the picture (0-1). */
  box: [number, number, number, number];
}

export interface VisionResult {
  objects: ObjectDetection[];
  /** All five classes, highest score first. */
  nsfw: Array<{ cls: NsfwClass; score: number }>;
  /** Inference time of each model, decoding excluded. */
  ms: { objects: number; nsfw: number };
}

export interface VisionOptions {
  minObjectScore: number;
  maxObjects: number;
}

/** The model process's own figures, for tests and diagnostics. */
export interface ModelStats {
  pid: number;
  /** Tensors alive in TensorFlow.js (tf.memory().numTensors): constant between calls once models are loaded. */
  numTensors: number;
  /** Bytes held by those tensors. */
  tensorBytes: number;
  rssMb: number;
  /** Peak resident memory of the process so far (VmHWM). */
  peakRssMb: number;
  heapUsedMb: number;
  /** The models loaded so far, with the time each took to load (ms). */
  loaded: Record<string, number>;
}

/**
 * Every method the model process answers. A new model (OCR, speech) is one module in this folder, its
 * method here and one line in METHODS (model-process.ts), plus its loader in MODELS for warmUp.
 */
export interface ModelMethods {
  vision(file: string, opts: VisionOptions): Promise<VisionResult>;
  /** Loads every model now; the load time of each in ms. */
  warmUp(): Promise<Record<string, number>>;
  stats(): Promise<ModelStats>;
}

export type MethodName = keyof ModelMethods;
export type MethodArgs<M extends MethodName> = Parameters<ModelMethods[M]>;
export type MethodResult<M extends MethodName> = Awaited<ReturnType<ModelMethods[M]>>;

export interface ModelRequest<M extends MethodName = MethodName> {
  id: number;
  method: M;
  args: MethodArgs<M>;
}

/** What went wrong, as the host's ModelError carries it. */
export type ModelErrorCode =
  /** The model's files are missing or do not match their sha256 (scripts/setup.sh fetches them). */
  | 'model-files'
  /** The picture could not be read or decoded. */
  | 'bad-input'
  /** The request took longer than the host's time limit (the process was killed). */
  | 'timeout'
  /** The model process died, or could not be started. */
  | 'crashed'
  /** The model itself failed. */
  | 'failed';

export interface ModelFailure {
  code: ModelErrorCode;
  /** Plain words, no file paths: safe to show. */
  message: string;
  /** What the library said (may hold paths): for the logs. */
  detail?: string;
}

export type ModelReply = { id: number; value: unknown } | { id: number; error: ModelFailure };

/** The first message of the child, once it listens for requests. */
export interface ReadyMessage {
  ready: true;
}

/** Handed to the child as its one argument (JSON). */
export interface ModelProcessConfig {
  /** COCO-SSD's folder (model.json and shards); default `.cache/models/coco-ssd` in the package root. */
  cocoSsdDir?: string;
}
