import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import type { Logger } from 'pino';
import { AppError } from '../shared/errors.js';
import { removePath } from '../storage/files.js';
import { formatIdentity, isCertainlyGone, parseIdentity } from '../shared/process-identity.js';

/** A chunk lock not touched for this long belongs to a request that died; another send may take it over. */
export const LOCK_STALE_MS = 3 * 60_000;
/** How often a live chunk write touches its lock, so a slow but alive send is never taken for stale. */
const LOCK_REFRESH_MS = 30_000;

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

/**
 * The per-index lock files of a chunked session (`<index>.lock` beside the data file), which
 * serialise the sends of one index across processes sharing the storage: a send takes it for
 * the whole write ('wx'); a second send of the same index gets 409 upload-busy. A live send
 * touches it every 30 s; one untouched for 3 minutes is stale and may be taken over.
 *
 * The lock file names the process holding it (see process-identity.ts): a lock whose holder
 * ran on this machine and is certainly dead (killed mid-chunk) is taken over at once, so the
 * resend of a chunk that was in flight at a crash is not refused for the stale age. Holders on
 * other machines still age out.
 */
export class ChunkLocks {
  constructor(private readonly log: Logger) {}

  async forSend(file: string, index: number): Promise<ChunkLock> {
    const busy = () => new AppError('upload-busy', `chunk ${index} is being sent by another request`, { index });
    let fh: fsp.FileHandle | undefined;
    for (let attempt = 0; !fh; attempt++) {
      try {
        fh = await fsp.open(file, 'wx');
        // Written after the create: a reader that finds it still empty takes the lock for live.
        await fh.writeFile(formatIdentity()).catch(() => undefined);
        break;
      } catch (err) {
        if (isErrno(err, 'ENOENT')) throw closedMeanwhile();
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      const seen = await fsp.stat(file).catch(() => undefined);
      if (!seen) {
        if (attempt > 0) throw busy();
        continue; // released meanwhile: try once more
      }
      const holderDead = await holderIsGone(file);
      if (!holderDead && Date.now() - seen.mtimeMs < LOCK_STALE_MS) throw busy();
      await this.takeOverStale(file, seen, busy);
      this.log.warn({ file, holderDead }, 'took over a stale chunk lock');
    }
    const held = fh;
    const refresh = setInterval(() => {
      const now = new Date();
      held.utimes(now, now).catch(() => undefined);
    }, LOCK_REFRESH_MS);
    refresh.unref();
    return {
      release: async () => {
        clearInterval(refresh);
        // Always by inode: a lock can be taken over before the stale age (its holder judged dead).
        const ino = (await held.stat().catch(() => undefined))?.ino;
        await held.close().catch(() => undefined);
        if (ino !== undefined) await removeIfOurs(file, ino);
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

/** Whether the process named in a lock file is certainly no longer running. */
export async function holderIsGone(file: string): Promise<boolean> {
  const holder = parseIdentity(await fsp.readFile(file, 'utf8').catch(() => ''));
  return holder !== undefined && isCertainlyGone(holder);
}

/** Only our own lock is removed (a stale takeover may have replaced it). */
async function removeIfOurs(file: string, ino: number): Promise<void> {
  const now = await fsp.stat(file).catch(() => undefined);
  if (now && now.ino === ino) await fsp.unlink(file).catch(() => undefined);
}
