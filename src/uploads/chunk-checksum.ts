import { createHash, type Hash } from 'node:crypto';
import type fsp from 'node:fs/promises';
import { crc32 } from '@node-rs/crc32';
import { hashRange } from './file-hash.js';

/**
 * What a chunk's receipt records of its bytes: `sha256:<hex>` when the client sent a sha256 to
 * check the chunk against, else `crc32:<hex>`. The receipt only has to tell a verified range
 * from a torn or lost one when the state is rebuilt from disk, which CRC-32 does at a third of
 * sha256's cost; the whole file's sha256 is computed once, apart (see PrefixHasher).
 */
export type ChunkChecksum = string;

export type ChunkChecksumAlgorithm = 'crc32' | 'sha256';

const STORED = /^(crc32:[0-9a-f]{8}|sha256:[0-9a-f]{64})$/;

export function isChunkChecksum(value: unknown): value is ChunkChecksum {
  return typeof value === 'string' && STORED.test(value);
}

export function algorithmOf(checksum: ChunkChecksum): ChunkChecksumAlgorithm {
  return checksum.startsWith('sha256:') ? 'sha256' : 'crc32';
}

/** The hex digest of a sha256 checksum, or undefined for any other. */
export function sha256Of(checksum: ChunkChecksum): string | undefined {
  return checksum.startsWith('sha256:') ? checksum.slice(7) : undefined;
}

/**
 * Something bytes can be fed to, as they pass (a chunk's checksum, a running sha256). A sink that
 * answers a promise asks the writer to wait for it before feeding more.
 */
export interface ByteSink {
  update(data: Buffer): unknown;
}

/** A running checksum of one algorithm. */
export class ChunkDigest implements ByteSink {
  private crc = 0;
  private readonly hash: Hash | undefined;
  constructor(readonly algorithm: ChunkChecksumAlgorithm) {
    this.hash = algorithm === 'sha256' ? createHash('sha256') : undefined;
  }
  update(data: Buffer): this {
    if (this.hash) this.hash.update(data);
    else this.crc = crc32(data, this.crc);
    return this;
  }
  digest(): ChunkChecksum {
    return this.hash ? `sha256:${this.hash.digest('hex')}` : `crc32:${this.crc.toString(16).padStart(8, '0')}`;
  }
}

/** The checksum, by `algorithm`, of one range of an open file; '' when the file is shorter. */
export async function checksumRange(fh: fsp.FileHandle, start: number, length: number, algorithm: ChunkChecksumAlgorithm): Promise<ChunkChecksum> {
  const digest = new ChunkDigest(algorithm);
  const read = await hashRange(fh, digest, start, length);
  return read === length ? digest.digest() : '';
}
