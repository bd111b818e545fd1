import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { AppError } from '../errors.js';
import { removePath } from '../storage/files.js';

/** A chunk lock not touched for this long belongs to a request that died; another send may take it over. */
export const LOCK_STALE_MS = 3 * 60_000;
/** How often a live chunk write touches its lock, so a slow but alive send is never taken for stale. */
const LOCK_REFRESH_MS = 30_000;
/** The content of a lock taken by a hashing pass (a send's lock is empty). */
const HASHING = 'hashing';
/** How long a send waits for a hashing pass of another process to let go of its index. */
const HASH_WAIT_MS = 10_000;

export interface ChunkLock {
  release(): Promise<void>;
}

export function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

export function closedMeanwhile(): AppError {
  // The session's folder or data file vanished under us: it was aborted, expired or completed meanwhile.
  return new AppError('upload-not-open', 'the upload was closed while this chunk was sent');
}

/** Who holds a lock file: a send, a hashing pass (which only reads its range), or nobody any more. */
export async function lockHolder(file: string): Promise<'send' | 'hashing' | undefined> {
  try {
    return (await fsp.readFile(file, 'utf8')) === HASHING ? 'hashing' : 'send';
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/**
 * The per-index lock files of a chunked session (`<index>.lock` beside the data file), which
 * serialise everything that touches one index's range across processes sharing the storage:
 *
 *  - a send takes it for the whole write ('wx', empty); a second send of the same index gets
 *    409 upload-busy. A live send touches it every 30 s; one untouched for 3 minutes is stale and
 *    may be taken over.
 *  - a hashing pass takes it only while it reads the range (created with its content in one
 *    step, by a hard link, so it is never seen empty), and never waits for it. A send that finds
 *    an index held by a hashing pass waits for the pass instead of refusing.
 */
export class ChunkLocks {
  /** Hashing locks held by this process, by lock file, with what resolves when each is let go. */
  private readonly hashing = new Map<string, Promise<void>>();

  constructor(private readonly log: Logger) {}

  async forSend(file: string, index: number): Promise<ChunkLock> {
    const busy = () => new AppError('upload-busy', `chunk ${index} is being sent by another request`, { index });
    const deadline = Date.now() + HASH_WAIT_MS;
    let fh: fsp.FileHandle | undefined;
    for (let attempt = 0; !fh; attempt++) {
      try {
        fh = await fsp.open(file, 'wx');
        break;
      } catch (err) {
        if (isErrno(err, 'ENOENT')) throw closedMeanwhile();
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      const local = this.hashing.get(file);
      if (local) {
        await local;
        continue;
      }
      const seen = await fsp.stat(file).catch(() => undefined);
      if (!seen) {
        if (attempt > 0 && Date.now() > deadline) throw busy();
        continue; // released meanwhile: try again
      }
      if (Date.now() - seen.mtimeMs < LOCK_STALE_MS) {
        if ((await lockHolder(file)) !== 'send' && Date.now() < deadline) {
          await sleep(10);
          continue;
        }
        throw busy();
      }
      await this.takeOverStale(file, seen, busy);
      this.log.warn({ file }, 'took over a stale chunk lock');
    }
    const held = fh;
    const ino = (await held.stat()).ino;
    const refresh = setInterval(() => {
      const now = new Date();
      held.utimes(now, now).catch(() => undefined);
    }, LOCK_REFRESH_MS);
    refresh.unref();
    return {
      release: async () => {
        clearInterval(refresh);
        await held.close().catch(() => undefined);
        await removeIfOurs(file, ino);
      },
    };
  }

  /** A hashing pass's lock on one index, or undefined when anything holds it (the pass stops there). */
  async forHashing(file: string): Promise<ChunkLock | undefined> {
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await fsp.writeFile(tmp, HASHING, { flag: 'wx' });
      await fsp.link(tmp, file);
    } catch {
      return undefined; // held (EEXIST), or the session is gone
    } finally {
      await fsp.unlink(tmp).catch(() => undefined);
    }
    const ino = (await fsp.stat(file).catch(() => undefined))?.ino;
    let let_go!: () => void;
    this.hashing.set(file, new Promise<void>((resolve) => (let_go = resolve)));
    return {
      release: async () => {
        if (ino !== undefined) await removeIfOurs(file, ino);
        this.hashing.delete(file);
        let_go();
      },
    };
  }

  /**
   * Moves a stale lock aside (rename is atomic, so of two requests only one takes it over). When
   * what was moved is not the stale lock looked at but a fresh one taken meanwhile, it is put
   * back and the index is busy.
   */
  private async takeOverStale(file: string, seen: { ino: number; mtimeMs: number }, busy: () => AppError): Promise<void> {
    const aside = `${file}.${randomBytes(6).toString('hex')}.stale`;
    try {
      await fsp.rename(file, aside);
    } catch {
      throw busy(); // someone else took it over first
    }
    const moved = await fsp.stat(aside).catch(() => undefined);
    if (moved && (moved.ino !== seen.ino || moved.mtimeMs !== seen.mtimeMs)) {
      await fsp.link(aside, file).catch(() => undefined);
      await removePath(aside);
      throw busy();
    }
    await removePath(aside);
  }
}

/** Only our own lock is removed (a stale takeover may have replaced it). */
async function removeIfOurs(file: string, ino: number): Promise<void> {
  const now = await fsp.stat(file).catch(() => undefined);
  if (now && now.ino === ino) await fsp.unlink(file).catch(() => undefined);
}
