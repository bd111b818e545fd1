import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Selectable } from 'kysely';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { Db } from '../db/database.js';
import { fromJson, nowIso, toJson, type UploadSessionsTable } from '../db/schema.js';
import { AppError, notFound } from '../errors.js';
import { newId } from '../ids.js';
import { normalizeLabelNames } from '../labels/label-service.js';
import type { MediaView } from '../media/media-service.js';
import { normalizeCaption, normalizeTags } from '../media/tags.js';
import { removePath } from '../storage/files.js';
import type { StorageLayout } from '../storage/layout.js';
import type { Principal } from '../tenancy/principal.js';
import { ownerScope } from '../tenancy/principal.js';
import type { ChunkRecord, ChunkStateStore } from './chunk-state.js';
import { validateFilename } from './filename.js';
import type { IngestService } from './ingest.js';

export type SessionRow = Selectable<UploadSessionsTable>;

export interface CreateSessionInput {
  filename: string;
  total_size: number;
  content_type?: string;
  chunk_size?: number;
  sha256?: string;
  caption?: string | null;
  user_tags?: string[];
  labels?: string[];
}

export interface SessionStatus {
  session_id: string;
  state: SessionRow['state'];
  filename: string;
  content_type: string | null;
  total_size: number;
  chunk_size: number;
  chunk_count: number;
  received_chunks: number;
  received_bytes: number;
  missing_chunks: number[];
  media_id: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  expires_at: string;
}

export interface ChunkReceipt {
  index: number;
  size: number;
  sha256: string;
  received_chunks: number;
  received_bytes: number;
  chunk_count: number;
}

/** A per-chunk checksum as sent by a client: `Content-Digest: sha-256=:<base64>:` or `X-Chunk-Checksum: sha256=<hex>`. */
export function parseChunkChecksum(headers: { contentDigest?: string; chunkChecksum?: string }): string | undefined {
  if (headers.chunkChecksum) {
    const m = /^(?:sha-?256[=:])?\s*([0-9a-fA-F]{64})$/i.exec(headers.chunkChecksum.trim());
    if (!m) throw new AppError('validation-failed', 'X-Chunk-Checksum must be sha256=<64 hex digits>');
    return m[1]!.toLowerCase();
  }
  if (headers.contentDigest) {
    const m = /(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):/i.exec(headers.contentDigest);
    if (!m) throw new AppError('validation-failed', 'Content-Digest must carry sha-256=:<base64>:');
    const hex = Buffer.from(m[1]!, 'base64').toString('hex');
    if (hex.length !== 64) throw new AppError('validation-failed', 'Content-Digest sha-256 value has the wrong length');
    return hex;
  }
  return undefined;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Counts and hashes bytes as they pass, and fails the stream as soon as more arrive than
 * `limit`, so an oversized chunk never reaches the disk in full.
 */
class MeteredHash extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      cb(new AppError('payload-too-large', `chunk is larger than its expected ${this.limit} bytes`));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

/**
 * The chunked-session upload API: create a session, send chunks in any order (and in
 * parallel), ask what is missing, complete. Chunk files are written to a temporary name and
 * renamed into place once their size and checksum are verified, so a chunk file that exists
 * is always whole — which is what lets the state be rebuilt from disk if the store loses it.
 */
export class UploadService {
  constructor(
    private readonly db: Db,
    private readonly layout: StorageLayout,
    private readonly chunks: ChunkStateStore,
    private readonly ingestService: IngestService,
    private readonly settings: Pick<
      Settings,
      'uploadMaxSize' | 'uploadDefaultChunkSize' | 'uploadMinChunkSize' | 'uploadMaxChunkSize' | 'uploadSessionExpiry'
    >,
    private readonly log: Logger,
  ) {}

  private get ttlMs(): number {
    // Chunk state outlives the session's expiry a little, so the sweep always finds it.
    return this.settings.uploadSessionExpiry + 3_600_000;
  }

  private expiresAt(from = Date.now()): string {
    return new Date(from + this.settings.uploadSessionExpiry).toISOString();
  }

  async create(p: Principal, input: CreateSessionInput): Promise<SessionStatus> {
    const filename = validateFilename(input.filename);
    const total = input.total_size;
    if (!Number.isSafeInteger(total) || total < 0) throw new AppError('validation-failed', 'total_size must be a whole number of bytes');
    if (total === 0) throw new AppError('empty-file');
    if (total > this.settings.uploadMaxSize) {
      throw new AppError('payload-too-large', `total_size ${total} is over the limit of ${this.settings.uploadMaxSize} bytes`, {
        max_size: this.settings.uploadMaxSize,
      });
    }
    const chunkSize = input.chunk_size ?? this.settings.uploadDefaultChunkSize;
    if (!Number.isSafeInteger(chunkSize) || chunkSize < this.settings.uploadMinChunkSize || chunkSize > this.settings.uploadMaxChunkSize) {
      throw new AppError(
        'validation-failed',
        `chunk_size must be from ${this.settings.uploadMinChunkSize} to ${this.settings.uploadMaxChunkSize} bytes`,
        { min_chunk_size: this.settings.uploadMinChunkSize, max_chunk_size: this.settings.uploadMaxChunkSize },
      );
    }
    const sha256 = input.sha256?.toLowerCase();
    if (sha256 !== undefined && !SHA256_HEX.test(sha256)) throw new AppError('validation-failed', 'sha256 must be 64 hex digits');
    const contentType = input.content_type?.trim() || null;
    if (contentType && (contentType.length > 255 || /[\u0000-\u001f\u007f]/.test(contentType))) {
      throw new AppError('validation-failed', 'content_type is not valid');
    }
    const row: SessionRow = {
      id: newId(),
      tenant_id: p.tenantId,
      user_id: p.userId,
      protocol: 'chunked',
      filename,
      content_type: contentType,
      total_size: total,
      chunk_size: Math.min(chunkSize, total),
      chunk_count: Math.ceil(total / Math.min(chunkSize, total)),
      sha256: sha256 ?? null,
      caption: normalizeCaption(input.caption),
      user_tags: normalizeTags(input.user_tags),
      labels: normalizeLabelNames(input.labels),
      state: 'open',
      error: null,
      media_id: null,
      created_at: nowIso(),
      updated_at: nowIso(),
      expires_at: this.expiresAt(),
    };
    await fsp.mkdir(this.layout.sessionChunkDir(p.tenantId, row.id), { recursive: true });
    await this.db
      .insertInto('upload_sessions')
      .values({ ...row, user_tags: toJson(row.user_tags), labels: toJson(row.labels) })
      .execute();
    await this.chunks.init(row.id, this.ttlMs);
    return this.statusOf(row, []);
  }

  /** A session the caller may see: its own, or any in the tenant for an admin key. */
  private async load(p: Principal, sessionId: string): Promise<SessionRow> {
    const scope = ownerScope(p);
    let q = this.db
      .selectFrom('upload_sessions')
      .selectAll()
      .where('id', '=', sessionId)
      .where('tenant_id', '=', scope.tenantId)
      .where('protocol', '=', 'chunked');
    if (scope.userId) q = q.where('user_id', '=', scope.userId);
    const row = await q.executeTakeFirst();
    if (!row) throw notFound('upload session');
    return row;
  }

  private expectedChunkSize(s: SessionRow, index: number): number {
    const chunkSize = Number(s.chunk_size);
    return index === s.chunk_count - 1 ? Number(s.total_size) - chunkSize * (s.chunk_count - 1) : chunkSize;
  }

  private statusOf(s: SessionRow, received: ChunkRecord[]): SessionStatus {
    const have = new Set(received.map((c) => c.index));
    const missing: number[] = [];
    if (s.state === 'open' || s.state === 'completing') {
      for (let i = 0; i < s.chunk_count; i++) if (!have.has(i)) missing.push(i);
    }
    return {
      session_id: s.id,
      state: s.state,
      filename: s.filename,
      content_type: s.content_type,
      total_size: Number(s.total_size),
      chunk_size: Number(s.chunk_size),
      chunk_count: s.chunk_count,
      received_chunks: s.state === 'completed' ? s.chunk_count : received.length,
      received_bytes: s.state === 'completed' ? Number(s.total_size) : received.reduce((n, c) => n + c.size, 0),
      missing_chunks: missing,
      media_id: s.media_id,
      error: s.error,
      created_at: s.created_at,
      updated_at: s.updated_at,
      expires_at: s.expires_at,
    };
  }

  /**
   * The chunks on record. When the store has no state (Redis lost it), the chunk files are
   * the truth: each one that exists was verified before it was renamed into place; its size
   * is checked again and its hash recomputed, and the store is rewritten from them.
   */
  private async received(s: SessionRow): Promise<ChunkRecord[]> {
    const known = await this.chunks.list(s.id);
    if (known) return known;
    const rebuilt = await this.rebuildFromDisk(s);
    await this.chunks.replace(s.id, rebuilt, this.ttlMs);
    this.log.warn({ sessionId: s.id, chunks: rebuilt.length }, 'upload chunk state was missing; rebuilt from chunk files');
    return rebuilt;
  }

  private async rebuildFromDisk(s: SessionRow): Promise<ChunkRecord[]> {
    const dir = this.layout.sessionChunkDir(s.tenant_id, s.id);
    let names: string[] = [];
    try {
      names = await fsp.readdir(dir);
    } catch {
      return [];
    }
    const out: ChunkRecord[] = [];
    for (const name of names) {
      const m = /^(\d+)\.chunk$/.exec(name);
      const file = path.join(dir, name);
      if (!m) {
        // Leftover temporary files of interrupted chunk writes.
        if (name.endsWith('.tmp')) await removePath(file);
        continue;
      }
      const index = Number(m[1]);
      const stat = await fsp.stat(file).catch(() => undefined);
      if (!stat || index >= s.chunk_count || stat.size !== this.expectedChunkSize(s, index)) {
        await removePath(file);
        continue;
      }
      out.push({ index, size: stat.size, sha256: await sha256File(file) });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  async status(p: Principal, sessionId: string): Promise<SessionStatus> {
    const s = await this.load(p, sessionId);
    const received = s.state === 'open' || s.state === 'completing' ? await this.received(s) : [];
    return this.statusOf(s, received);
  }

  async putChunk(
    p: Principal,
    sessionId: string,
    index: number,
    body: Readable,
    opts: { contentLength?: number; checksum?: string },
  ): Promise<ChunkReceipt> {
    const s = await this.load(p, sessionId);
    if (s.state !== 'open') throw new AppError('upload-not-open', `the upload is ${s.state}`, { state: s.state });
    if (!Number.isSafeInteger(index) || index < 0 || index >= s.chunk_count) {
      throw new AppError('chunk-index-out-of-range', `index must be from 0 to ${s.chunk_count - 1}`, { chunk_count: s.chunk_count });
    }
    const expected = this.expectedChunkSize(s, index);
    if (opts.contentLength !== undefined && opts.contentLength > expected) {
      throw new AppError('payload-too-large', `chunk ${index} must be ${expected} bytes, Content-Length says ${opts.contentLength}`, {
        expected_size: expected,
      });
    }
    if (opts.contentLength !== undefined && opts.contentLength < expected) {
      throw new AppError('chunk-size-mismatch', `chunk ${index} must be ${expected} bytes, Content-Length says ${opts.contentLength}`, {
        expected_size: expected,
      });
    }
    const final = this.layout.chunkFile(s.tenant_id, s.id, index);
    const tmp = `${final}.${randomBytes(6).toString('hex')}.tmp`;
    const meter = new MeteredHash(expected);
    let digest = '';
    try {
      await pipeline(body, meter, fs.createWriteStream(tmp, { flags: 'wx', highWaterMark: 1024 * 1024 }));
      if (meter.bytes !== expected) {
        throw new AppError('chunk-size-mismatch', `chunk ${index} must be ${expected} bytes, got ${meter.bytes}`, { expected_size: expected });
      }
      digest = meter.hash.digest('hex');
      if (opts.checksum && opts.checksum !== digest) {
        throw new AppError('chunk-checksum-mismatch', `chunk ${index} hashes to ${digest}, not ${opts.checksum}`);
      }
      await fsp.rename(tmp, final);
      await this.chunks.put(s.id, { index, size: expected, sha256: digest }, this.ttlMs);
    } catch (err) {
      await removePath(tmp);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // The session's folder vanished under us: it was aborted or completed meanwhile.
        throw new AppError('upload-not-open', 'the upload was closed while this chunk was sent');
      }
      throw err;
    }
    const now = Date.now();
    await this.db
      .updateTable('upload_sessions')
      .set({ updated_at: new Date(now).toISOString(), expires_at: this.expiresAt(now) })
      .where('id', '=', s.id)
      .execute();
    const received = await this.received(s);
    return {
      index,
      size: expected,
      sha256: digest,
      received_chunks: received.length,
      received_bytes: received.reduce((n, c) => n + c.size, 0),
      chunk_count: s.chunk_count,
    };
  }

  async complete(p: Principal, sessionId: string): Promise<MediaView> {
    const s = await this.load(p, sessionId);
    if (s.state === 'completing') throw new AppError('upload-busy');
    if (s.state !== 'open') {
      throw new AppError('upload-not-open', `the upload is ${s.state}`, { state: s.state, media_id: s.media_id });
    }
    const received = await this.verifiedOnDisk(s, await this.received(s));
    const have = new Set(received.map((c) => c.index));
    const missing: number[] = [];
    for (let i = 0; i < s.chunk_count; i++) if (!have.has(i)) missing.push(i);
    if (missing.length) {
      throw new AppError('upload-incomplete', `${missing.length} of ${s.chunk_count} chunks are missing`, { missing_chunks: missing });
    }
    const claimed = await this.db
      .updateTable('upload_sessions')
      .set({ state: 'completing', updated_at: nowIso() })
      .where('id', '=', s.id)
      .where('state', '=', 'open')
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) === 0) throw new AppError('upload-busy');

    const chunkDir = this.layout.sessionChunkDir(s.tenant_id, s.id);
    const merged = path.join(this.layout.tmpDir(), `${s.id}.merge`);
    let reopen = true;
    try {
      await fsp.mkdir(this.layout.tmpDir(), { recursive: true });
      const { size, sha256 } = await this.merge(s, merged);
      if (size !== Number(s.total_size)) {
        reopen = false;
        throw new AppError('upload-size-mismatch', `assembled ${size} bytes, expected ${s.total_size}`);
      }
      if (s.sha256 && s.sha256 !== sha256) {
        reopen = false;
        throw new AppError('upload-checksum-mismatch', `the file hashes to ${sha256}, not the declared ${s.sha256}`);
      }
      const media = await this.ingestService.ingest({
        tenantId: s.tenant_id,
        userId: s.user_id,
        sessionId: s.id,
        file: merged,
        filename: s.filename,
        contentType: s.content_type,
        size,
        sha256,
        caption: s.caption,
        tags: fromJson<string[]>(s.user_tags, []),
        labels: fromJson<string[]>(s.labels, []),
      });
      reopen = false;
      await removePath(chunkDir);
      await this.chunks.clear(s.id).catch(() => undefined);
      return media;
    } catch (err) {
      await removePath(merged);
      if (reopen) {
        // Not the client's fault (a disk or database error): the chunks stay, complete may be retried.
        await this.db.updateTable('upload_sessions').set({ state: 'open', updated_at: nowIso() }).where('id', '=', s.id).execute();
      } else if (err instanceof AppError) {
        await this.db
          .updateTable('upload_sessions')
          .set({ state: 'failed', error: err.message, updated_at: nowIso() })
          .where('id', '=', s.id)
          .execute();
        await removePath(chunkDir);
        await this.chunks.clear(s.id).catch(() => undefined);
      }
      throw err;
    }
  }

  /**
   * Drops chunks whose file is gone or has the wrong size (the state and the disk disagree,
   * e.g. after a disk was restored), so they are reported missing instead of assembled.
   */
  private async verifiedOnDisk(s: SessionRow, received: ChunkRecord[]): Promise<ChunkRecord[]> {
    const ok: ChunkRecord[] = [];
    for (const c of received) {
      const stat = await fsp.stat(this.layout.chunkFile(s.tenant_id, s.id, c.index)).catch(() => undefined);
      if (stat && stat.size === this.expectedChunkSize(s, c.index)) ok.push(c);
    }
    if (ok.length !== received.length) {
      await this.chunks.replace(s.id, ok, this.ttlMs);
      this.log.warn({ sessionId: s.id, dropped: received.length - ok.length }, 'chunk files missing or damaged; asking for them again');
    }
    return ok;
  }

  /**
   * Copies the chunks, in order, into one file while hashing it: never the whole file in memory.
   * Two buffers are reused for the whole pass (no allocation per read), and the write of one
   * block runs while the next block is read and hashed.
   */
  private async merge(s: SessionRow, target: string): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    const buffers = [Buffer.allocUnsafeSlow(IO_BLOCK), Buffer.allocUnsafeSlow(IO_BLOCK)];
    let turn = 0;
    let size = 0;
    let writing: Promise<void> = Promise.resolve();
    const out = await fsp.open(target, 'w');
    try {
      for (let i = 0; i < s.chunk_count; i++) {
        const input = await fsp.open(this.layout.chunkFile(s.tenant_id, s.id, i), 'r');
        try {
          for (;;) {
            // The other buffer may still be being written; this one's last write has been awaited.
            const buf = buffers[turn]!;
            const { bytesRead } = await input.read(buf, 0, buf.length, null);
            if (bytesRead === 0) break;
            turn ^= 1;
            const block = buf.subarray(0, bytesRead);
            hash.update(block);
            await writing;
            writing = writeFully(out, block, size);
            writing.catch(() => undefined); // awaited later; never an unhandled rejection meanwhile
            size += bytesRead;
          }
        } finally {
          await input.close();
        }
      }
      await writing;
    } finally {
      await writing.catch(() => undefined);
      await out.close();
    }
    return { size, sha256: hash.digest('hex') };
  }

  async abort(p: Principal, sessionId: string): Promise<void> {
    const s = await this.load(p, sessionId);
    if (s.state === 'completed' || s.state === 'completing') {
      throw new AppError('upload-not-open', `the upload is ${s.state}`, { state: s.state, media_id: s.media_id });
    }
    await this.db
      .updateTable('upload_sessions')
      .set({ state: 'aborted', updated_at: nowIso() })
      .where('id', '=', s.id)
      .where('state', 'in', ['open', 'failed', 'expired'])
      .execute();
    await removePath(this.layout.sessionChunkDir(s.tenant_id, s.id));
    await this.chunks.clear(s.id);
  }

  /** Expires idle sessions and removes their chunks. Returns how many were swept. */
  async sweepExpired(now = Date.now()): Promise<number> {
    const stale = await this.db
      .selectFrom('upload_sessions')
      .select(['id', 'tenant_id'])
      .where('protocol', '=', 'chunked')
      .where('state', '=', 'open')
      .where('expires_at', '<', new Date(now).toISOString())
      .limit(1000)
      .execute();
    let swept = 0;
    for (const s of stale) {
      const res = await this.db
        .updateTable('upload_sessions')
        .set({ state: 'expired', updated_at: nowIso() })
        .where('id', '=', s.id)
        .where('state', '=', 'open')
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) continue;
      await removePath(this.layout.sessionChunkDir(s.tenant_id, s.id));
      await this.chunks.clear(s.id).catch(() => undefined);
      swept++;
    }
    if (swept) this.log.info({ swept }, 'expired upload sessions swept');
    return swept;
  }
}

/** Size of the blocks of the merge and hashing passes over whole files. */
const IO_BLOCK = 4 * 1024 * 1024;

async function writeFully(fh: fsp.FileHandle, block: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < block.length) {
    written += (await fh.write(block, written, block.length - written, position + written)).bytesWritten;
  }
}

/** sha256 of a file, read in reused blocks, the next block read while the current one is hashed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await fsp.open(file, 'r');
  try {
    let [current, next] = [Buffer.allocUnsafeSlow(IO_BLOCK), Buffer.allocUnsafeSlow(IO_BLOCK)];
    let position = 0;
    let reading = fh.read(current, 0, IO_BLOCK, position);
    for (;;) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      position += bytesRead;
      reading = fh.read(next, 0, IO_BLOCK, position);
      hash.update(current.subarray(0, bytesRead));
      [current, next] = [next, current];
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
