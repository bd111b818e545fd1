import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import { MemoryLocker, Server, type ServerOptions } from '@tus/server';
import { ERRORS, Metadata, Upload } from '@tus/utils';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { Db } from '../db/database.js';
import type { Selectable } from 'kysely';
import { fromJson, nowIso, toJson, type UploadSessionsTable } from '../db/schema.js';
import { isDependencyUnavailable } from '../shared/dependency-errors.js';
import { AppError } from '../shared/errors.js';
import { newId } from '../shared/ids.js';
import { normalizeLabelNames } from '../labels/label-names.js';
import { normalizeCaption, normalizeTags } from '../media/tags.js';
import { canonicalLanguage } from '../media/captions-service.js';
import { isOutOfSpace } from '../storage/disk-space.js';
import { removePath } from '../storage/files.js';
import type { StorageLayout } from '../storage/layout.js';
import type { Principal } from '../tenancy/principal.js';
import { ownerScope } from '../tenancy/principal.js';
import {
  claimCompletion,
  findStranded,
  holdsCompletion,
  keepCompletionAlive,
  NO_LEASE,
  releaseClaim,
  takenOver,
  takeUpStranded,
  type StrandedSession,
} from './completion-lease.js';
import { validateFilename } from './filename.js';
import type { IngestService } from './ingest.js';
import { ThreadHashSink, type HashThread } from './hash-thread.js';
import { writeHashed } from './hashing-writer.js';
import type { UploadLimits } from './upload-limits.js';
import { setBodyDeadline, type BodyDeadline } from './body-deadline.js';

/** Checksum algorithms accepted in Upload-Checksum (the tus checksum extension). */
export const TUS_CHECKSUM_ALGORITHMS = ['sha1', 'sha256', 'md5'] as const;
type ChecksumAlgorithm = (typeof TUS_CHECKSUM_ALGORITHMS)[number];

/** Upload ids are UUIDs chosen by the server (`newId`). */
const TUS_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface TusRequestContext {
  principal: Principal;
  checksum?: { algorithm: ChecksumAlgorithm; digest: Buffer };
  /**
   * Set by `onUploadFinish` once the bytes have moved into the media's folder: for the rest
   * of that request the store reports the upload as whole (@tus/server still looks it up
   * after the hook, e.g. a creation-with-upload POST computing Upload-Expires).
   */
  finished?: { id: string; size: number };
  /** When the HTTP layer gives up on the request's body (see BodyDeadline). */
  deadline?: BodyDeadline;
  /** The id of the session a POST created before tus saw it (see `TusService.reserve`). */
  reservedId?: string;
}

/** Per-request context, set by the HTTP route around the tus handler. */
export const tusContext = new AsyncLocalStorage<TusRequestContext>();

function tusError(status: number, body: string): { status_code: number; body: string } {
  return { status_code: status, body };
}

/** Parses `Upload-Checksum: <algorithm> <base64>`; throws a tus 400 when it is malformed or unsupported. */
export function parseUploadChecksum(header: string | undefined): TusRequestContext['checksum'] {
  if (!header) return undefined;
  const m = /^\s*([a-z0-9-]+)\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  const algorithm = m?.[1]?.toLowerCase() as ChecksumAlgorithm | undefined;
  if (!m || !algorithm || !TUS_CHECKSUM_ALGORITHMS.includes(algorithm)) {
    throw new AppError('validation-failed', `Upload-Checksum must be one of ${TUS_CHECKSUM_ALGORITHMS.join(', ')} followed by a base64 digest`);
  }
  return { algorithm, digest: Buffer.from(m[2]!, 'base64') };
}

/** tus uploads whose running sha256 is kept; beyond that the least recently written is dropped (and read again). */
const MAX_RUNNING_HASHES = 1024;

/**
 * The sha256 of each tus upload's bytes so far, kept in the hashing thread and fed as they are
 * written, so that finishing an upload does not read the file again and hashing never holds the
 * event loop. An upload's state is this process's memory: when it is missing (a restart) or at
 * another offset than a write starts at (a write failed part-way, or another process wrote), the
 * bytes already on disk are hashed first. A tus upload only grows at its end, so bytes once
 * hashed never change.
 */
class RunningHashes {
  private readonly states = new Map<string, { offset: number; state: string }>();
  private generation = 0;

  constructor(private readonly thread: HashThread) {}

  private newState(id: string): string {
    return `tus:${id}:${++this.generation}`;
  }

  /** A sink for the state of `id` positioned at `offset`, taken out of the map until the write succeeds. */
  async take(id: string, file: string, offset: number): Promise<ThreadHashSink> {
    const st = this.states.get(id);
    this.states.delete(id);
    if (st && st.offset === offset) return new ThreadHashSink(this.thread, st.state);
    if (st) await this.thread.drop(st.state);
    const state = this.newState(id);
    const read = await this.thread.feed(state, file, 0, offset);
    if (read !== offset) {
      await this.thread.drop(state);
      throw ERRORS.FILE_WRITE_ERROR;
    }
    return new ThreadHashSink(this.thread, state);
  }

  put(id: string, offset: number, sink: ThreadHashSink): void {
    if (this.states.size >= MAX_RUNNING_HASHES) {
      const oldest = this.states.keys().next().value!;
      void this.thread.drop(this.states.get(oldest)!.state).catch(() => undefined);
      this.states.delete(oldest);
    }
    this.states.set(id, { offset, state: sink.state });
  }

  /** The sha256 of the whole upload of `size` bytes, from the state when it covers them all. */
  async digest(id: string, file: string, size: number): Promise<string> {
    const st = this.states.get(id);
    this.states.delete(id);
    if (st && st.offset === size) return this.thread.digest(st.state);
    if (st) await this.thread.drop(st.state);
    const state = this.newState(id);
    await this.thread.feed(state, file, 0, -1);
    return this.thread.digest(state);
  }

  /** Drops the state a failed write may have fed part of. */
  async discard(sink: ThreadHashSink): Promise<void> {
    await sink.flush().catch(() => undefined);
    await this.thread.drop(sink.state).catch(() => undefined);
  }

  forget(id: string): void {
    const st = this.states.get(id);
    this.states.delete(id);
    if (st) void this.thread.drop(st.state).catch(() => undefined);
  }
}

/**
 * FileStore, writing through one hashing stream stage: every PATCH body feeds the upload's
 * running sha256 (see RunningHashes) and, when the request carries Upload-Checksum (the
 * checksum extension), the checksum's hash; on a checksum mismatch the file is cut back to
 * where this request started, as if it had never arrived (status 460, as the extension says).
 */
class ChecksumFileStore extends FileStore {
  readonly running: RunningHashes;

  constructor(opts: ConstructorParameters<typeof FileStore>[0], thread: HashThread) {
    super(opts);
    this.running = new RunningHashes(thread);
    this.extensions = ['creation', 'creation-with-upload', 'termination', 'expiration', 'checksum'];
  }

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const checksum = tusContext.getStore()?.checksum;
    const deadline = tusContext.getStore()?.deadline;
    if (deadline) setBodyDeadline(readable, deadline);
    const file = path.join(this.directory, id);
    const running = await this.running.take(id, file, offset);
    const check = checksum ? createHash(checksum.algorithm) : undefined;
    let written: number;
    try {
      // The running hash must not see bytes of a write that does not count: on any failure it is
      // dropped, and the next write hashes what is on disk.
      written = await writeHashed(readable, file, { flags: 'r+', start: offset, hashes: check ? [running, check] : [running] });
      await running.flush();
    } catch (err) {
      await this.running.discard(running);
      if (check) await this.truncate(id, offset);
      // tus's own errors (a body over the size limit) keep their status; anything else is a failed write, as in FileStore.
      if (isOutOfSpace(err)) throw tusError(507, 'insufficient-storage: the server is out of storage space');
      if (err instanceof AppError) throw asTusError(err);
      throw err && typeof err === 'object' && 'status_code' in err ? err : ERRORS.FILE_WRITE_ERROR;
    }
    if (check && !check.digest().equals(checksum!.digest)) {
      await this.running.discard(running);
      await this.truncate(id, offset);
      throw tusError(460, 'Checksum Mismatch');
    }
    this.running.put(id, offset + written, running);
    return offset + written;
  }

  private async truncate(id: string, offset: number): Promise<void> {
    await fsp.truncate(path.join(this.directory, id), offset).catch(() => undefined);
  }

  /**
   * Expiry measures idleness, not age (as the upload_sessions sweep does): the upload's
   * "creation date", which @tus/server adds the expiry to in HEAD/PATCH and Upload-Expires,
   * is its last write. A long upload that keeps sending is never refused with 410.
   */
  override async getUpload(id: string): Promise<Upload> {
    const finished = tusContext.getStore()?.finished;
    if (finished?.id === id) return new Upload({ id, size: finished.size, offset: finished.size });
    const upload = await super.getUpload(id);
    const stat = await fsp.stat(path.join(this.directory, id)).catch(() => undefined);
    const created = upload.creation_date ? Date.parse(upload.creation_date) : 0;
    if (stat && stat.mtimeMs > created) upload.creation_date = new Date(stat.mtimeMs).toISOString();
    return upload;
  }

  /** Removes the bytes and the info file, whichever of them is still there. */
  override async remove(id: string): Promise<void> {
    if (!TUS_ID.test(id)) throw ERRORS.FILE_NOT_FOUND;
    this.running.forget(id);
    await removePath(path.join(this.directory, id));
    await removePath(path.join(this.directory, `${id}.json`));
  }
}

export interface TusDeps {
  db: Db;
  layout: StorageLayout;
  ingest: IngestService;
  /** Where the running sha256 of each upload is kept and fed. */
  hashThread: HashThread;
  /** The open-upload cap and the tenant quota. */
  limits: UploadLimits;
  settings: Pick<Settings, 'apiPrefix' | 'uploadMaxSize' | 'uploadSessionExpiry' | 'corsOrigins' | 'publicBaseUrl' | 'trustProxy'>;
  log: Logger;
}

/** Metadata keys a tus client may send (besides filename/filetype aliases used by common clients). */
function metadataOf(md: Record<string, string | null>): {
  filename: string;
  contentType: string | null;
  caption: string | null;
  language: string | null;
  tags: string[];
  labels: string[];
  sha256?: string;
} {
  const list = (v: string | null | undefined) =>
    v
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [];
  const sha = md.sha256?.toLowerCase();
  if (sha && !/^[0-9a-f]{64}$/.test(sha)) throw new AppError('validation-failed', 'metadata sha256 must be 64 hex digits');
  return {
    filename: validateFilename(md.filename ?? md.name ?? null),
    contentType: md.filetype ?? md.type ?? null,
    caption: normalizeCaption(md.caption ?? null),
    language: md.language ? canonicalLanguage(md.language) : null,
    tags: normalizeTags(list(md.tags ?? md.user_tags)),
    labels: normalizeLabelNames(list(md.labels)),
    ...(sha ? { sha256: sha } : {}),
  };
}

function asTusError(err: unknown): { status_code: number; body: string } {
  if (err instanceof AppError) return tusError(err.status, `${err.slug}: ${err.message}`);
  if (err && typeof err === 'object' && 'status_code' in err) return err as { status_code: number; body: string };
  if (isDependencyUnavailable(err)) return tusError(503, 'unavailable: a service the server depends on is not reachable; try again shortly');
  return tusError(500, 'internal-error');
}

/**
 * The tus 1.0 endpoint (creation, creation-with-upload, termination, expiration, checksum).
 * Each tus upload is also an `upload_sessions` row (protocol `tus`), which is what ties it to
 * a tenant and user: every request on an upload id is checked against it.
 */
export class TusService {
  readonly server: Server;
  private readonly store: ChecksumFileStore;

  constructor(private readonly deps: TusDeps) {
    const { settings, layout } = deps;
    this.store = new ChecksumFileStore(
      {
        directory: layout.tusDir(),
        expirationPeriodInMilliseconds: settings.uploadSessionExpiry,
      },
      deps.hashThread,
    );
    const options: ServerOptions = {
      path: `${settings.apiPrefix}/tus`,
      maxSize: settings.uploadMaxSize,
      respectForwardedHeaders: settings.trustProxy !== false,
      locker: new MemoryLocker(),
      // A list would make tus answer an unknown origin with the first allowed one; the
      // function form answers it with no Access-Control-Allow-Origin, as the rest of the API.
      allowedOrigins: settings.corsOrigins.includes('*') ? undefined : (origin) => settings.corsOrigins.includes(origin),
      // tus's own lists lack the checksum and expiration headers and ours.
      exposedHeaders: ['Qasar-Media-Id', 'Upload-Expires', 'Tus-Checksum-Algorithm', 'X-Request-Id'],
      allowedHeaders: ['Authorization', 'X-Qasar-User', 'Upload-Checksum', 'X-Request-Id'],
      namingFunction: () => tusContext.getStore()?.reservedId ?? newId(),
      ...(settings.publicBaseUrl ? { generateUrl: (_req, o) => `${settings.publicBaseUrl}${o.path}/${o.id}` } : {}),
      onUploadCreate: async (_req, upload) => {
        // The session was created by `reserve`; a POST tus lets through without one has no length.
        if (upload.id !== tusContext.getStore()?.reservedId) {
          throw asTusError(new AppError('validation-failed', 'Upload-Length is required (deferred length is not supported)'));
        }
        return {};
      },
      onIncomingRequest: async (req, uploadId) => {
        if (req.method === 'POST' || req.method === 'OPTIONS') return;
        const ctx = tusContext.getStore();
        const session = ctx && uploadId ? await this.findOwned(ctx.principal, uploadId) : undefined;
        if (!session) throw tusError(404, 'not-found: upload not found');
        // Termination closes the session first, so that no PATCH (nor a finish already under
        // way) can take it further while the bytes are being removed.
        if (req.method === 'DELETE' && !(await this.claim(session.id, 'aborted'))) {
          throw tusError(404, `not-found: upload is ${session.state}`);
        }
      },
      onUploadFinish: async (_req, upload) => {
        try {
          const mediaId = await this.finish(upload);
          const ctx = tusContext.getStore();
          if (ctx) ctx.finished = { id: upload.id, size: upload.size ?? upload.offset };
          return { headers: { 'Qasar-Media-Id': mediaId } };
        } catch (err) {
          throw asTusError(err);
        }
      },
    };
    this.server = new Server({ ...options, datastore: this.store });
  }

  /**
   * Creates the session of a tus POST before the request is handed to tus, so that a refusal
   * (validation, quota, the open-upload cap) is answered as a problem: the cap's count and the
   * insert are one transaction. Returns the id tus is to give the upload, or undefined when the
   * request is one tus refuses itself (no or a deferred length, over the size limit, malformed
   * metadata). The HTTP layer calls `dropUnused` once tus has answered.
   */
  async reserve(p: Principal, headers: { length?: string; deferLength?: string; metadata?: string }): Promise<string | undefined> {
    if (headers.deferLength !== undefined || headers.length === undefined || !/^\d{1,16}$/.test(headers.length)) return undefined;
    const size = Number(headers.length);
    if (size > this.deps.settings.uploadMaxSize) return undefined;
    let raw: Record<string, string | null>;
    try {
      raw = headers.metadata ? Metadata.parse(headers.metadata) : {};
    } catch {
      return undefined;
    }
    if (size === 0) throw new AppError('empty-file');
    const md = metadataOf(raw);
    await this.deps.limits.assertRoomFor(p, size);
    const id = newId();
    const now = Date.now();
    await this.deps.limits.insertWithinCap(p, (trx) =>
      trx
        .insertInto('upload_sessions')
        .values({
          id,
          tenant_id: p.tenantId,
          user_id: p.userId,
          protocol: 'tus',
          filename: md.filename,
          content_type: md.contentType,
          total_size: size,
          chunk_size: size,
          chunk_count: 1,
          sha256: md.sha256 ?? null,
          caption: md.caption,
          language: md.language,
          user_tags: toJson(md.tags),
          labels: toJson(md.labels),
          state: 'open',
          error: null,
          media_id: null,
          created_at: new Date(now).toISOString(),
          updated_at: new Date(now).toISOString(),
          expires_at: new Date(now + this.deps.settings.uploadSessionExpiry).toISOString(),
          ...NO_LEASE,
        })
        .execute(),
    );
    return id;
  }

  /** Removes a reserved session whose upload tus did not create (it refused the POST). */
  async dropUnused(id: string): Promise<void> {
    if (await fsp.stat(path.join(this.deps.layout.tusDir(), `${id}.json`)).catch(() => undefined)) return;
    await this.deps.db.deleteFrom('upload_sessions').where('id', '=', id).where('protocol', '=', 'tus').where('state', '=', 'open').execute();
  }

  /** Refuses bytes of an upload that no longer fits the tenant's quota. */
  async assertMayWrite(uploadId: string): Promise<void> {
    const s = await this.deps.db.selectFrom('upload_sessions').select(['id', 'tenant_id', 'created_at']).where('id', '=', uploadId).executeTakeFirst();
    if (s) await this.deps.limits.assertStillFits(s);
  }

  /** The tus session with this id if the principal may touch it. */
  async findOwned(p: Principal, uploadId: string) {
    if (!TUS_ID.test(uploadId)) return undefined;
    const scope = ownerScope(p);
    let q = this.deps.db
      .selectFrom('upload_sessions')
      .select(['id', 'state', 'media_id', 'total_size', 'user_id'])
      .where('id', '=', uploadId)
      .where('tenant_id', '=', scope.tenantId)
      .where('protocol', '=', 'tus');
    if (scope.userId) q = q.where('user_id', '=', scope.userId);
    return q.executeTakeFirst();
  }

  private async finish(upload: Upload): Promise<string> {
    const session = await this.deps.db.selectFrom('upload_sessions').selectAll().where('id', '=', upload.id).executeTakeFirst();
    if (!session) throw new AppError('not-found', 'upload not found');
    const mediaId = await claimCompletion(this.deps.db, session.id);
    if (!mediaId) throw new AppError('upload-not-open', `the upload is ${session.state}`);
    return this.finishClaimed(session, mediaId);
  }

  /** Ingests a whole upload whose session this process holds `completing`. */
  private async finishClaimed(session: Selectable<UploadSessionsTable>, mediaId: string): Promise<string> {
    const file = path.join(this.deps.layout.tusDir(), session.id);
    const staged = path.join(this.deps.layout.tmpDir(), `${session.id}.tus`);
    const stopRenewing = keepCompletionAlive(this.deps.db, session.id);
    try {
      // Hashed while the PATCHes were written.
      const sha256 = await this.store.running.digest(session.id, file, Number(session.total_size));
      if (session.sha256 && session.sha256 !== sha256) {
        throw new AppError('upload-checksum-mismatch', `the file hashes to ${sha256}, not the declared ${session.sha256}`);
      }
      await fsp.mkdir(this.deps.layout.tmpDir(), { recursive: true });
      await fsp.rename(file, staged);
      const media = await this.deps.ingest.ingest({
        tenantId: session.tenant_id,
        userId: session.user_id,
        sessionId: session.id,
        file: staged,
        filename: session.filename,
        contentType: session.content_type,
        size: Number(session.total_size),
        sha256,
        caption: session.caption,
        language: session.language,
        tags: fromJson<string[]>(session.user_tags, []),
        labels: fromJson<string[]>(session.labels, []),
        mediaId,
      });
      // The media exists and the session is completed: a stray info file cannot fail the request.
      await this.store.configstore
        .delete(session.id)
        .catch((err) => this.deps.log.warn({ err, uploadId: session.id }, 'the info file of a finished tus upload could not be removed'));
      return media.id;
    } catch (err) {
      this.store.running.forget(session.id);
      // Taken up by another process meanwhile (this one's lease lapsed): the upload is its now.
      if (!(await holdsCompletion(this.deps.db, session.id).catch(() => true))) {
        this.deps.log.warn({ err, uploadId: session.id }, 'another process took over this completion');
        throw takenOver();
      }
      try {
        await removePath(staged);
        await removePath(file);
        await this.store.configstore.delete(session.id).catch(() => undefined);
        await this.deps.db
          .updateTable('upload_sessions')
          .set({ state: 'failed', error: err instanceof Error ? err.message : String(err), updated_at: nowIso(), ...NO_LEASE })
          .where('id', '=', session.id)
          .execute();
      } catch (cleanupErr) {
        // Left `completing`: the recovery of stranded sessions takes it up.
        this.deps.log.warn({ err: cleanupErr, uploadId: session.id }, 'a failed tus completion could not be cleaned up');
        await releaseClaim(this.deps.db, session.id);
      }
      throw err;
    } finally {
      stopRenewing();
    }
  }

  /**
   * Takes up tus uploads left `completing` by a process that died (see completion-lease.ts):
   * the bytes go back where they were; a whole upload is then finished (a tus client that sent
   * every byte sends nothing more), a partial one is open again. Run at start-up and by the sweep.
   */
  async recoverStranded(now = Date.now()): Promise<number> {
    let recovered = 0;
    for (const s of await findStranded(this.deps.db, 'tus', now)) {
      try {
        if (await this.takeUp(s)) recovered++;
      } catch (err) {
        this.deps.log.warn({ err, uploadId: s.id }, 'a stranded tus upload could not be taken up; the next sweep tries again');
      }
    }
    return recovered;
  }

  private async takeUp(s: StrandedSession): Promise<boolean> {
    const file = path.join(this.deps.layout.tusDir(), s.id);
    const files = { home: file, staged: path.join(this.deps.layout.tmpDir(), `${s.id}.tus`) };
    return takeUpStranded(this.deps.db, this.deps.ingest, s, files, async () => {
      this.store.running.forget(s.id);
      const size = (await fsp.stat(file).catch(() => undefined))?.size;
      const session = await this.deps.db.selectFrom('upload_sessions').selectAll().where('id', '=', s.id).executeTakeFirst();
      if (session && size === s.total_size) {
        this.deps.log.warn({ uploadId: s.id }, 'finishing a tus upload left completing by a process that died');
        await this.finishClaimed(session, s.pending_media_id ?? newId()).catch((err) =>
          this.deps.log.warn({ err, uploadId: s.id }, 'a recovered tus upload could not be finished'),
        );
        return;
      }
      await this.deps.db
        .updateTable('upload_sessions')
        .set({ state: 'open', updated_at: nowIso(), ...NO_LEASE })
        .where('id', '=', s.id)
        .where('state', '=', 'completing')
        .execute();
      this.deps.log.warn({ uploadId: s.id }, 'a tus upload left completing by a process that died is open again');
    });
  }

  /**
   * Moves an open session to a closed state (for `expired`, only if it is still idle past
   * `expiredBefore`); false when it was no longer open, or was touched meanwhile.
   */
  private async claim(id: string, state: 'aborted' | 'expired', expiredBefore?: string): Promise<boolean> {
    let q = this.deps.db
      .updateTable('upload_sessions')
      .set({ state, updated_at: nowIso() })
      .where('id', '=', id)
      .where('protocol', '=', 'tus')
      .where('state', '=', 'open');
    if (expiredBefore) q = q.where('expires_at', '<', expiredBefore);
    const res = await q.executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Touches a session on each PATCH so that the sweep measures idleness, not age. */
  async touch(id: string): Promise<void> {
    const now = Date.now();
    await this.deps.db
      .updateTable('upload_sessions')
      .set({ updated_at: new Date(now).toISOString(), expires_at: new Date(now + this.deps.settings.uploadSessionExpiry).toISOString() })
      .where('id', '=', id)
      .where('protocol', '=', 'tus')
      .execute();
  }

  /** Removes idle tus uploads and their bytes. */
  async sweepExpired(now = Date.now()): Promise<number> {
    const cutoff = new Date(now).toISOString();
    const stale = await this.deps.db
      .selectFrom('upload_sessions')
      .select(['id'])
      .where('protocol', '=', 'tus')
      .where('state', '=', 'open')
      .where('expires_at', '<', cutoff)
      .limit(1000)
      .execute();
    let swept = 0;
    for (const s of stale) {
      // Claim first: a session that was touched, finished or aborted meanwhile keeps its bytes.
      if (!(await this.claim(s.id, 'expired', cutoff))) continue;
      await this.store.remove(s.id);
      swept++;
    }
    if (swept) this.deps.log.info({ swept }, 'expired tus uploads swept');
    return swept;
  }
}
