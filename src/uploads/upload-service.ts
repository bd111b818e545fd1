import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Selectable } from 'kysely';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { Db } from '../db/database.js';
import { fromJson, nowIso, toJson, type UploadSessionsTable } from '../db/schema.js';
import { AppError, notFound } from '../shared/errors.js';
import { newId } from '../shared/ids.js';
import { normalizeLabelNames } from '../labels/label-names.js';
import type { MediaView } from '../media/media-service.js';
import { normalizeCaption, normalizeTags } from '../media/tags.js';
import { canonicalLanguage } from '../media/captions-service.js';
import { removePath } from '../storage/files.js';
import type { StorageLayout } from '../storage/layout.js';
import type { Principal } from '../tenancy/principal.js';
import { ownerScope } from '../tenancy/principal.js';
import {
  claimCompletion,
  findStranded,
  holdsCompletion,
  isStranded,
  keepCompletionAlive,
  NO_LEASE,
  recoveryFailed,
  releaseClaim,
  strandedSession,
  takenOver,
  takeUpStranded,
  type StrandedSession,
} from './completion-lease.js';
import { ChunkLocks, closedMeanwhile, holderIsGone, isErrno, LOCK_STALE_MS } from './chunk-lock.js';
import type { ChunkRecord, ChunkStateStore } from './chunk-state.js';
import { algorithmOf, checksumRange, ChunkDigest, sha256Of } from './chunk-checksum.js';
import { writeHashed } from './hashing-writer.js';
import { validateFilename } from './filename.js';
import type { IngestService } from './ingest.js';
import type { HashThread } from './hash-thread.js';
import { PrefixHasher } from './prefix-hash.js';
import { parseReceipt } from './chunk-receipt.js';
import type { UploadLimits } from './upload-limits.js';

export type SessionRow = Selectable<UploadSessionsTable>;

export interface CreateSessionInput {
  filename: string;
  total_size: number;
  content_type?: string;
  chunk_size?: number;
  sha256?: string;
  caption?: string | null;
  /** The spoken language (BCP 47), for the transcript. */
  language?: string | null;
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
  /** What the receipt records of the chunk's bytes: `crc32:<hex>`, or `sha256:<hex>` when a checksum was sent. */
  checksum: string;
  /** The chunk's verified sha256, when the client sent one to check against. */
  sha256?: string;
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

/** A session is touched (its idle expiry pushed back) at most this often while chunks arrive. */
const TOUCH_INTERVAL_MS = 5_000;

/** Receipts are read this many at a time (bounded open files). */
const RECEIPT_BATCH = 64;

/**
 * The chunked-session upload API: create a session, send chunks in any order (and in
 * parallel), ask what is missing, complete.
 *
 * Each session has ONE data file (`<chunks>/<tenant>/<session>/upload.data`, created at its
 * full size — sparse — when the session is created). A chunk body is streamed straight into it
 * at index × chunk_size, counted and checksummed on the way; nothing is copied at complete, which
 * hands that very file (a hard link to it) to ingest, which renames it into the media folder.
 * The whole file's sha256 is computed while the chunks arrive (PrefixHasher: the contiguous
 * prefix of verified chunks, read back from the data file), so complete only hashes what that
 * did not reach.
 *
 * Per index, next to the data file:
 *  - `<index>.lock`  — see ChunkLocks: one send at a time per index (the loser gets 409
 *    upload-busy).
 *  - `<index>.chunk` — the receipt, `{"index","size","checksum"}` (CRC-32, or sha256 when the
 *    client sent one to check), written only after the chunk's size and checksum were verified
 *    and read strictly (a torn one reads as absent). A receipt that exists always describes a
 *    verified range, which is what lets the state be rebuilt from disk (each receipt's range of
 *    the data file is checksummed again and compared).
 *
 * A send of an index that was already received first deletes its receipt and marks the index
 * missing in the state store, then rewrites the range. So a refused re-send (oversized, short,
 * bad checksum, connection lost) leaves that index MISSING even though an earlier send of it
 * had been good: its range was (partly) overwritten, and the client must send it again.
 */
export class UploadService {
  constructor(
    private readonly db: Db,
    private readonly layout: StorageLayout,
    private readonly chunks: ChunkStateStore,
    private readonly ingestService: IngestService,
    private readonly settings: Pick<Settings, 'uploadMaxSize' | 'uploadDefaultChunkSize' | 'uploadMinChunkSize' | 'uploadMaxChunkSize' | 'uploadSessionExpiry'>,
    private readonly log: Logger,
    hashThread: HashThread,
    private readonly limits: UploadLimits,
  ) {
    this.locks = new ChunkLocks(log);
    this.hasher = new PrefixHasher(hashThread, layout, log);
  }

  private readonly locks: ChunkLocks;
  private readonly hasher: PrefixHasher;

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
      throw new AppError('validation-failed', `chunk_size must be from ${this.settings.uploadMinChunkSize} to ${this.settings.uploadMaxChunkSize} bytes`, {
        min_chunk_size: this.settings.uploadMinChunkSize,
        max_chunk_size: this.settings.uploadMaxChunkSize,
      });
    }
    const sha256 = input.sha256?.toLowerCase();
    if (sha256 !== undefined && !SHA256_HEX.test(sha256)) throw new AppError('validation-failed', 'sha256 must be 64 hex digits');
    const contentType = input.content_type?.trim() || null;
    if (contentType && (contentType.length > 255 || /[\u0000-\u001f\u007f]/.test(contentType))) {
      throw new AppError('validation-failed', 'content_type is not valid');
    }
    await this.limits.assertRoomFor(p, total);
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
      language: input.language ? canonicalLanguage(input.language) : null,
      user_tags: normalizeTags(input.user_tags),
      labels: normalizeLabelNames(input.labels),
      state: 'open',
      error: null,
      media_id: null,
      created_at: nowIso(),
      updated_at: nowIso(),
      expires_at: this.expiresAt(),
      ...NO_LEASE,
    };
    const dir = this.layout.sessionChunkDir(p.tenantId, row.id);
    await fsp.mkdir(dir, { recursive: true });
    try {
      // The data file at its full size: sparse, so it takes no disk space until chunks arrive.
      const data = await fsp.open(this.layout.sessionDataFile(p.tenantId, row.id), 'wx');
      try {
        await data.truncate(total);
      } finally {
        await data.close();
      }
      await this.limits.insertWithinCap(p, (trx) =>
        trx
          .insertInto('upload_sessions')
          .values({ ...row, user_tags: toJson(row.user_tags), labels: toJson(row.labels) })
          .execute(),
      );
    } catch (err) {
      await removePath(dir);
      throw err;
    }
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
   * The chunks on record. When the store has no state (Redis lost it), the receipts are the
   * truth: each one that exists was written after its chunk was verified; its range of the data
   * file is hashed again and compared, and the store is rewritten from the ones that match.
   */
  private async received(s: SessionRow): Promise<ChunkRecord[]> {
    const known = await this.chunks.list(s.id);
    if (known) return known;
    const rebuilt = await this.rebuildFromDisk(s);
    await this.chunks.replace(s.id, rebuilt, this.ttlMs);
    this.log.warn({ sessionId: s.id, chunks: rebuilt.length }, 'upload chunk state was missing; rebuilt from chunk receipts');
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
    const data = await fsp.open(this.layout.sessionDataFile(s.tenant_id, s.id), 'r').catch(() => undefined);
    const chunkSize = Number(s.chunk_size);
    const out: ChunkRecord[] = [];
    try {
      for (const name of names) {
        const m = /^(\d+)\.chunk$/.exec(name);
        const file = path.join(dir, name);
        if (!m) {
          // Leftover temporary files of interrupted receipt writes.
          if (name.endsWith('.tmp')) await removePath(file);
          continue;
        }
        const index = Number(m[1]);
        const receipt = index < s.chunk_count ? parseReceipt(await fsp.readFile(file, 'utf8').catch(() => ''), index) : undefined;
        const ok =
          data !== undefined &&
          receipt !== undefined &&
          receipt.size === this.expectedChunkSize(s, index) &&
          (await checksumRange(data, index * chunkSize, receipt.size, algorithmOf(receipt.checksum))) === receipt.checksum;
        if (!ok) {
          await removePath(file);
          continue;
        }
        out.push(receipt);
      }
    } finally {
      await data?.close();
    }
    return out.sort((a, b) => a.index - b.index);
  }

  async status(p: Principal, sessionId: string): Promise<SessionStatus> {
    const s = await this.load(p, sessionId);
    const received = s.state === 'open' || s.state === 'completing' ? await this.received(s) : [];
    return this.statusOf(s, received);
  }

  /** How many chunks from the start of an open session this process has already hashed into its whole-file sha256. */
  hashedChunks(sessionId: string): number {
    return this.hasher.progress(sessionId);
  }

  async putChunk(p: Principal, sessionId: string, index: number, body: Readable, opts: { contentLength?: number; checksum?: string }): Promise<ChunkReceipt> {
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
    await this.limits.assertStillFits(s);
    const lock = await this.locks.forSend(this.layout.chunkLockFile(s.tenant_id, s.id, index), index);
    let checksum = '';
    try {
      // Checked again under the lock: complete claims the session before it looks for chunk
      // locks, so a chunk write and a completion never overlap on the data file.
      await this.assertStillOpen(s.id);
      await this.invalidate(s, index);
      checksum = await this.writeChunk(s, index, expected, body, opts.checksum);
      const record = { index, size: expected, checksum };
      // Either may land first: an index counts as received only when both say so (see verifiedOnDisk).
      await Promise.all([this.writeReceipt(s, record), this.chunks.put(s.id, record, this.ttlMs)]);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw closedMeanwhile();
      throw err;
    } finally {
      await lock.release();
    }
    const now = Date.now();
    // Expiry measures idleness: the session is touched, but not for every chunk of a fast upload.
    if (now - Date.parse(String(s.updated_at)) >= TOUCH_INTERVAL_MS) {
      await this.db
        .updateTable('upload_sessions')
        .set({ updated_at: new Date(now).toISOString(), expires_at: this.expiresAt(now) })
        .where('id', '=', s.id)
        .execute();
    }
    this.hasher.advance(s);
    const { count, bytes } = await this.receivedSummary(s);
    const sha256 = sha256Of(checksum);
    return { index, size: expected, checksum, ...(sha256 ? { sha256 } : {}), received_chunks: count, received_bytes: bytes, chunk_count: s.chunk_count };
  }

  /** How many chunks (and bytes) have arrived, without listing them when the store can tell. */
  private async receivedSummary(s: SessionRow): Promise<{ count: number; bytes: number }> {
    const last = s.chunk_count - 1;
    const summary = await this.chunks.summary(s.id, last);
    if (!summary) {
      const received = await this.received(s);
      return { count: received.length, bytes: received.reduce((n, c) => n + c.size, 0) };
    }
    const full = summary.count - (summary.lastReceived ? 1 : 0);
    return { count: summary.count, bytes: full * Number(s.chunk_size) + (summary.lastReceived ? this.expectedChunkSize(s, last) : 0) };
  }

  private async assertStillOpen(sessionId: string): Promise<void> {
    const row = await this.db.selectFrom('upload_sessions').select('state').where('id', '=', sessionId).executeTakeFirst();
    if (!row) throw closedMeanwhile();
    if (row.state !== 'open') throw new AppError('upload-not-open', `the upload is ${row.state}`, { state: row.state });
  }

  /** Before an index's range is rewritten, it stops counting as received (receipt first, then the store). */
  private async invalidate(s: SessionRow, index: number): Promise<void> {
    try {
      await fsp.unlink(this.layout.chunkFile(s.tenant_id, s.id, index));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return; // never received (or the session is gone, which the write notices)
      throw err;
    }
    await this.chunks.remove(s.id, index);
  }

  /**
   * Streams the body into the data file at its offset, counting and checksumming on the way
   * (sha256 when the client sent one to check, else CRC-32); an oversized body fails the stream
   * at the first byte too many (nothing is written past the chunk's range). Returns the checksum.
   */
  private async writeChunk(s: SessionRow, index: number, expected: number, body: Readable, sent: string | undefined): Promise<string> {
    const file = this.layout.sessionDataFile(s.tenant_id, s.id);
    // O_CREAT without O_TRUNC: normally the file exists (made at create); this also serves a
    // session created before data files existed. A vanished folder still fails with ENOENT.
    const fh = await fsp.open(file, fs.constants.O_RDWR | fs.constants.O_CREAT);
    const digest = new ChunkDigest(sent ? 'sha256' : 'crc32');
    const tooLarge = () => new AppError('payload-too-large', `chunk is larger than its expected ${expected} bytes`);
    const bytes = await writeHashed(body, file, { fd: fh, start: index * Number(s.chunk_size), hashes: [digest], limit: expected, tooLarge });
    if (bytes !== expected) {
      throw new AppError('chunk-size-mismatch', `chunk ${index} must be ${expected} bytes, got ${bytes}`, { expected_size: expected });
    }
    const checksum = digest.digest();
    if (sent && `sha256:${sent}` !== checksum) {
      throw new AppError('chunk-checksum-mismatch', `chunk ${index} hashes to ${sha256Of(checksum)}, not ${sent}`);
    }
    return checksum;
  }

  /**
   * `<index>.chunk`, written in place: it is read strictly (parseReceipt), so one caught half
   * written — or torn by a crash — reads as no receipt, and the chunk as not received.
   */
  private async writeReceipt(s: SessionRow, receipt: ChunkRecord): Promise<void> {
    const file = this.layout.chunkFile(s.tenant_id, s.id, receipt.index);
    await fsp.writeFile(file, JSON.stringify({ index: receipt.index, size: receipt.size, checksum: receipt.checksum }));
  }

  /** Whether a chunk send holds a (fresh) lock on this session, in a process that still runs. */
  private async hasLiveLocks(s: SessionRow): Promise<boolean> {
    const dir = this.layout.sessionChunkDir(s.tenant_id, s.id);
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!/^\d+\.lock$/.test(name)) continue;
      const file = path.join(dir, name);
      const st = await fsp.stat(file).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs < LOCK_STALE_MS && !(await holderIsGone(file))) return true;
    }
    return false;
  }

  async complete(p: Principal, sessionId: string): Promise<MediaView> {
    let s = await this.load(p, sessionId);
    if (s.state === 'completing' && (await this.recoverIfStranded(s))) s = await this.load(p, sessionId);
    if (s.state === 'completing') throw new AppError('upload-busy');
    if (s.state !== 'open') {
      throw new AppError('upload-not-open', `the upload is ${s.state}`, { state: s.state, media_id: s.media_id });
    }
    this.assertAllReceived(s, await this.verifiedOnDisk(s, await this.received(s)));
    const mediaId = await claimCompletion(this.db, s.id);
    if (!mediaId) throw new AppError('upload-busy');
    const stopRenewing = keepCompletionAlive(this.db, s.id);

    const chunkDir = this.layout.sessionChunkDir(s.tenant_id, s.id);
    const dataFile = this.layout.sessionDataFile(s.tenant_id, s.id);
    const handoff = path.join(this.layout.tmpDir(), `${s.id}.upload`);
    let handedOff: 'linked' | 'moved' | undefined;
    let reopen = true;
    try {
      // Sends that started before the claim finish first (they see the claim once they hold
      // their lock); checked again under the claim, since a re-send may have dropped a receipt.
      if (await this.hasLiveLocks(s)) throw new AppError('upload-busy', 'chunks of this upload are still being sent; complete again');
      const received = await this.verifiedOnDisk(s, await this.received(s));
      this.assertAllReceived(s, received);
      const size = (await fsp.stat(dataFile).catch(() => undefined))?.size ?? 0;
      if (size !== Number(s.total_size)) {
        reopen = false;
        throw new AppError('upload-size-mismatch', `the data file holds ${size} bytes, expected ${s.total_size}`);
      }
      // Mostly hashed already, while the chunks arrived; what the file is is found meanwhile.
      const [sha256, detected] = await Promise.all([this.hasher.digest(s, received), this.ingestService.detect(dataFile)]);
      if (s.sha256 && s.sha256 !== sha256) {
        reopen = false;
        throw new AppError('upload-checksum-mismatch', `the file hashes to ${sha256}, not the declared ${s.sha256}`);
      }
      await fsp.mkdir(this.layout.tmpDir(), { recursive: true });
      await removePath(handoff);
      // The data file itself goes to ingest, which renames it into the media folder. It is handed
      // over as a hard link (no copy), so if ingest fails the session still has its bytes and
      // complete may be retried; a file system without hard links gets the file moved instead.
      try {
        await fsp.link(dataFile, handoff);
        handedOff = 'linked';
      } catch {
        await fsp.rename(dataFile, handoff);
        handedOff = 'moved';
      }
      const media = await this.ingestService.ingest({
        tenantId: s.tenant_id,
        userId: s.user_id,
        sessionId: s.id,
        file: handoff,
        filename: s.filename,
        contentType: s.content_type,
        size,
        sha256,
        caption: s.caption,
        language: s.language,
        tags: fromJson<string[]>(s.user_tags, []),
        labels: fromJson<string[]>(s.labels, []),
        detected,
        mediaId,
      });
      reopen = false;
      // The media exists and the session is completed: what is left to tidy cannot fail the request.
      try {
        await this.hasher.forget(s.id);
        await removeSessionDir(chunkDir);
        await this.chunks.clear(s.id).catch(() => undefined);
      } catch (cleanupErr) {
        this.log.warn({ err: cleanupErr, sessionId: s.id }, 'the chunks of a completed upload could not be removed');
      }
      return media;
    } catch (err) {
      // Taken up by another process meanwhile (this one's lease lapsed): the session is its now.
      if (!(await holdsCompletion(this.db, s.id).catch(() => true))) {
        this.log.warn({ err, sessionId: s.id }, 'another process took over this completion');
        throw takenOver();
      }
      try {
        if (!reopen) await this.hasher.forget(s.id);
        // A failed move back must not go on to remove the hand-off: it may be the only copy of the
        // bytes, which the recovery of stranded sessions puts back.
        if (handedOff === 'moved' && reopen) await fsp.rename(handoff, dataFile);
        await removePath(handoff);
        if (reopen) {
          // Not the client's fault (a disk or database error, or a send still running): the chunks stay, complete may be retried.
          await this.db
            .updateTable('upload_sessions')
            .set({ state: 'open', updated_at: nowIso(), ...NO_LEASE })
            .where('id', '=', s.id)
            .execute();
        } else if (err instanceof AppError) {
          await this.db
            .updateTable('upload_sessions')
            .set({ state: 'failed', error: err.message, updated_at: nowIso(), ...NO_LEASE })
            .where('id', '=', s.id)
            .execute();
          await removeSessionDir(chunkDir);
          await this.chunks.clear(s.id).catch(() => undefined);
        }
      } catch (cleanupErr) {
        // Left `completing` (or `failed` with files behind): the client is told what failed first,
        // and the recovery of stranded sessions takes the session up at once.
        this.log.warn({ err: cleanupErr, sessionId: s.id }, 'a failed completion could not be tidied up');
        await releaseClaim(this.db, s.id);
      }
      throw err;
    } finally {
      stopRenewing();
    }
  }

  private assertAllReceived(s: SessionRow, received: ChunkRecord[]): void {
    const have = new Set(received.map((c) => c.index));
    const missing: number[] = [];
    for (let i = 0; i < s.chunk_count; i++) if (!have.has(i)) missing.push(i);
    if (missing.length) {
      throw new AppError('upload-incomplete', `${missing.length} of ${s.chunk_count} chunks are missing`, { missing_chunks: missing });
    }
  }

  /**
   * Keeps only chunks whose receipt is on disk and agrees with the store (size and checksum); the
   * others are dropped (the state and the disk disagree, e.g. after a disk was restored or a
   * re-send was refused), so they are reported missing instead of assembled.
   */
  private async verifiedOnDisk(s: SessionRow, received: ChunkRecord[]): Promise<ChunkRecord[]> {
    const ok: ChunkRecord[] = [];
    for (let i = 0; i < received.length; i += RECEIPT_BATCH) {
      const batch = received.slice(i, i + RECEIPT_BATCH);
      const receipts = await Promise.all(
        batch.map(async (c) => parseReceipt(await fsp.readFile(this.layout.chunkFile(s.tenant_id, s.id, c.index), 'utf8').catch(() => ''), c.index)),
      );
      batch.forEach((c, j) => {
        const r = receipts[j];
        if (r && r.size === c.size && r.checksum === c.checksum && c.size === this.expectedChunkSize(s, c.index)) ok.push(c);
      });
    }
    if (ok.length !== received.length) {
      await this.chunks.replace(s.id, ok, this.ttlMs);
      this.log.warn({ sessionId: s.id, dropped: received.length - ok.length }, 'chunk receipts missing or damaged; asking for them again');
    }
    return ok;
  }

  async abort(p: Principal, sessionId: string): Promise<void> {
    let s = await this.load(p, sessionId);
    if (s.state === 'completing' && (await this.recoverIfStranded(s))) s = await this.load(p, sessionId);
    if (s.state === 'completed' || s.state === 'completing') {
      throw new AppError('upload-not-open', `the upload is ${s.state}`, { state: s.state, media_id: s.media_id });
    }
    // The bytes go first: on a full disk, removing them is what makes room for the database's write.
    await this.hasher.forget(s.id);
    await removeSessionDir(this.layout.sessionChunkDir(s.tenant_id, s.id));
    await this.db
      .updateTable('upload_sessions')
      .set({ state: 'aborted', updated_at: nowIso() })
      .where('id', '=', s.id)
      .where('state', 'in', ['open', 'failed', 'expired'])
      .execute();
    await this.chunks.clear(s.id);
  }

  /**
   * Takes up sessions left `completing` by a process that died (see completion-lease.ts): each
   * goes back to `open` with its chunks, so the client's next complete finishes it. Run at
   * start-up and by the sweep. Returns how many were recovered.
   */
  async recoverStranded(now = Date.now()): Promise<number> {
    let recovered = 0;
    for (const s of await findStranded(this.db, 'chunked', now)) {
      try {
        if (await this.reopenStranded(s)) recovered++;
      } catch (err) {
        this.log.warn({ err, sessionId: s.id }, 'a stranded upload could not be reopened; the next sweep tries again');
      }
    }
    return recovered;
  }

  /** Before a complete or abort of a `completing` session: reopens it if its completion died. */
  private async recoverIfStranded(s: SessionRow): Promise<boolean> {
    if (!isStranded(s)) return false;
    try {
      return await this.reopenStranded(strandedSession(s));
    } catch (err) {
      this.log.warn({ err, sessionId: s.id }, 'a stranded upload could not be reopened');
      throw recoveryFailed(err);
    }
  }

  private async reopenStranded(s: StrandedSession): Promise<boolean> {
    // The data file is still in place (handed over as a hard link), or was moved to the
    // hand-off, or on into the media's folder: it goes back, and every other name of it goes.
    const files = { home: this.layout.sessionDataFile(s.tenant_id, s.id), staged: path.join(this.layout.tmpDir(), `${s.id}.upload`) };
    return takeUpStranded(this.db, this.ingestService, s, files, async () => {
      await this.hasher.forget(s.id);
      await this.db
        .updateTable('upload_sessions')
        .set({ state: 'open', updated_at: nowIso(), expires_at: this.expiresAt(), ...NO_LEASE })
        .where('id', '=', s.id)
        .where('state', '=', 'completing')
        .execute();
      this.log.warn({ sessionId: s.id }, 'an upload left completing by a process that died is open again');
    });
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
      await this.hasher.forget(s.id);
      await removeSessionDir(this.layout.sessionChunkDir(s.tenant_id, s.id));
      await this.chunks.clear(s.id).catch(() => undefined);
      swept++;
    }
    if (swept) this.log.info({ swept }, 'expired upload sessions swept');
    return swept;
  }
}

/**
 * Removes a session's folder. A late send of another process may create its lock in it while
 * it is being removed (ENOTEMPTY); it cannot once the folder is gone, so trying again settles it.
 */
async function removeSessionDir(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await removePath(dir);
      return;
    } catch (err) {
      if (!isErrno(err, 'ENOTEMPTY') || attempt >= 5) throw err;
    }
  }
}
