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

/** A line of text read in a picture, in reading order. */
export interface OcrLine {
  text: string;
  /** The recogniser's mean character confidence (0-1). */
  score: number;
  /** x, y, width, height relative to the picture (0-1). */
  box: [number, number, number, number];
}

export interface OcrResult {
  /** Every line kept, joined by newlines; "" when the picture shows no text. */
  text: string;
  lines: OcrLine[];
  /** Detection and recognition time, decoding excluded. */
  ms: number;
}

export interface OcrOptions {
  /** Lines whose mean confidence is below this are dropped (junk read in textures). */
  minScore: number;
  /** The picture is scaled so that its longer side is at most this many pixels before detection. */
  maxSide: number;
}

/** A stretch of a sound file, in seconds from its start. */
export interface TimeSpan {
  start: number;
  end: number;
}

/** How speech is found in the voice-activity probabilities (one per 32 ms frame). */
export interface SpeechOptions {
  /** A frame at or above this probability is speech. */
  threshold: number;
  /** Speech ends after this long below threshold - 0.15. */
  minSilenceMs: number;
  /** Segments closer than this are merged into one. */
  mergeGapMs: number;
  /** Each segment grows by this much on both sides (never into a neighbour, never past the file). */
  padMs: number;
  /** Merged segments shorter than this (before padding) are dropped. */
  minSpeechMs: number;
}

export interface SpeechResult {
  segments: TimeSpan[];
  /** Length of the file, in seconds. */
  duration: number;
  ms: number;
}

export type WhisperModel = 'base' | 'small';

export interface TranscribeOptions {
  /** The stretches to transcribe (speech segments); nothing outside them is read. */
  windows: TimeSpan[];
  model: WhisperModel;
  /** Spoken language (ISO code such as 'en', or Whisper's name such as 'english'); English when not given. */
  language?: string;
  /** Most tokens generated for one window (each window's cap also shrinks with its length). */
  maxNewTokens: number;
  /** Time limit of one window: past it, the window gives no text and is listed in `timedOut`. */
  windowTimeoutMs: number;
}

export interface TranscriptCue extends TimeSpan {
  text: string;
}

export interface TranscribeResult {
  /** Seconds in the whole file, in order. */
  cues: TranscriptCue[];
  /** The language given (Whisper's pipeline here does not report a detected one), or null. */
  language: string | null;
  /** Windows (or parts of long ones) that passed windowTimeoutMs and gave no text. */
  timedOut: TimeSpan[];
  ms: number;
}

export interface EmbedResult {
  /** One 512-dimensional vector per text, unit length (a text with no words gives zeros). */
  vectors: number[][];
  ms: number;
}

/**
 * The model processes: one child process per family, started on the first call of one of its methods.
 * vision: TF.js (COCO-SSD, nsfwjs) and PaddleOCR on onnxruntime, fed pictures. speech: Silero VAD and
 * Whisper on onnxruntime. text: the Universal Sentence Encoder, on the copy of TF.js its package bundles,
 * which must not share a process with the vision models' TF.js (both register the same global kernels).
 */
export type ModelFamily = 'vision' | 'speech' | 'text';

export const MODEL_FAMILIES: readonly ModelFamily[] = ['vision', 'speech', 'text'];

/** Each model by the name warmUp and stats use, with its family. */
export const MODEL_NAMES = {
  'coco-ssd': 'vision',
  nsfwjs: 'vision',
  ocr: 'vision',
  'silero-vad': 'speech',
  'whisper-base': 'speech',
  'whisper-small': 'speech',
  'use-lite': 'text',
} as const satisfies Record<string, ModelFamily>;

export type ModelName = keyof typeof MODEL_NAMES;

/** The model process's own figures, for tests and diagnostics. */
export interface ModelStats {
  pid: number;
  family: ModelFamily;
  /** Tensors alive in TensorFlow.js (tf.memory().numTensors; 0 in the speech family): constant between calls once models are loaded. */
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
 * Every method the model processes answer. A new model is one module in this folder, its method here
 * with its family in METHOD_FAMILY, and one line in METHODS (model-process.ts), plus its loader in
 * MODELS for warmUp.
 */
export interface ModelMethods {
  vision(file: string, opts: VisionOptions): Promise<VisionResult>;
  ocr(file: string, opts: OcrOptions): Promise<OcrResult>;
  /** `pcmFile`: 16 kHz mono float32 little-endian samples, nothing else (ffmpeg -ac 1 -ar 16000 -f f32le). */
  speech(pcmFile: string, opts: SpeechOptions): Promise<SpeechResult>;
  transcribe(pcmFile: string, opts: TranscribeOptions): Promise<TranscribeResult>;
  embed(texts: string[]): Promise<EmbedResult>;
  /** Loads the models named (default: the family's, Whisper small excepted) now; the load time of each in ms. */
  warmUp(models?: ModelName[]): Promise<Record<string, number>>;
  stats(): Promise<ModelStats>;
}

/** The family whose process answers each model method (warmUp and stats go to the family named). */
export const METHOD_FAMILY = {
  vision: 'vision',
  ocr: 'vision',
  speech: 'speech',
  transcribe: 'speech',
  embed: 'text',
} as const satisfies Record<Exclude<keyof ModelMethods, 'warmUp' | 'stats'>, ModelFamily>;

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
  /** The input (a picture, a sound file, the texts) could not be read or is not what the method takes. */
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
  family: ModelFamily;
  /** COCO-SSD's folder (model.json and shards); default `.cache/models/coco-ssd` in the package root. */
  cocoSsdDir?: string;
  /** onnxruntime's threads per inference (intra-op); the other pool is always 1 thread. */
  onnxThreads?: number;
  /** Where to find npm packages holding model files, by package name, instead of where Node resolves them (tests). */
  packageDirs?: Record<string, string>;
}
