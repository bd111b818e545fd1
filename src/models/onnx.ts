/**
 * onnxruntime in the model processes (OCR, Silero VAD, Whisper): the CPU library that ships inside the
 * onnxruntime-node package (its install script, which fetches a CUDA provider, never runs). One setting
 * for every session: a fixed number of intra-op threads (1 by default: the worker's ffmpeg jobs share
 * the machine, and on a busy 2-core machine one thread was as fast as two), no inter-op pool, and ORT's
 * memory arena kept (without it Whisper used 4x the CPU).
 */
import type { InferenceSession } from 'onnxruntime-node';

export const DEFAULT_ONNX_THREADS = 1;

let threads = DEFAULT_ONNX_THREADS;

export function setOnnxThreads(n: number | undefined): void {
  if (n !== undefined) threads = Math.max(1, Math.floor(n));
}

export function sessionOptions(): InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: true,
    enableMemPattern: true,
    logSeverityLevel: 3,
  };
}
