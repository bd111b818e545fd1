/**
 * Comparing text embeddings (ModelHost.embed) in the calling process: plain arithmetic, no model.
 * @energetic-ai/embeddings' own `distance()` computes the same thing despite its name: cosine
 * SIMILARITY (1 for the same direction, higher is closer), on TensorFlow.js tensors.
 */

/**
 * Cosine similarity of two vectors of one length: 1 = same direction, 0 = unrelated, -1 = opposite.
 * 0 when either is all zeros (the vector of a text with no words).
 */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`vectors of different lengths (${a.length} and ${b.length})`);
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa === 0 || bb === 0 ? 0 : dot / Math.sqrt(aa * bb);
}
