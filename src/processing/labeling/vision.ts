import type { SpeechModels } from './speech.js';

/**
 * What the labeling step asks of the local vision models (see src/models/model-host.ts, which
 * runs them in a process of their own). A better model (an image–text matcher, a violence
 * classifier) is one more method here and one module in the model process.
 */
export interface VisionModels {
  vision(
    file: string,
    opts?: { minObjectScore?: number },
  ): Promise<{
    objects: Array<{ cls: string; score: number; box: [number, number, number, number] }>;
    nsfw: Array<{ cls: string; score: number }>;
  }>;
  /** On-screen text (OCR), when the model process has a reader: its lines, in reading order. */
  ocr?(file: string): Promise<{ text: string; lines: Array<{ text: string; score: number; box: [number, number, number, number] }> }>;
  /** A sentence encoder, when the model process has one: bank phrases are then matched by meaning too. */
  embed?(texts: string[]): Promise<{ vectors: number[][] }>;
}

/** The local models a worker has: vision always, speech once the model process has it. */
export type LocalModels = VisionModels & Partial<SpeechModels>;
