import { isChunkChecksum } from './chunk-checksum.js';
import type { ChunkRecord } from './chunk-state.js';

/** A chunk's receipt file (`<index>.chunk`) read back: undefined when torn, not JSON, or of another chunk. */
export function parseReceipt(text: string, index: number): ChunkRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<ChunkRecord> | null;
    if (r && r.index === index && Number.isSafeInteger(r.size) && isChunkChecksum(r.checksum)) {
      return { index, size: r.size!, checksum: r.checksum };
    }
  } catch {
    // torn or not JSON
  }
  return undefined;
}
