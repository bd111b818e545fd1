import fs from 'node:fs/promises';
import { AppError } from '../shared/errors.js';

/**
 * Free space on the storage file system. Writes (new uploads and their bytes) are refused while
 * less than `minFree` bytes are free, so the last of the disk stays for what frees space —
 * deletes, and the database's journal when it shares the file system (SQLite needs room in its
 * WAL even to delete a row).
 */
export class DiskSpace {
  constructor(
    private readonly root: string,
    private readonly minFree: number,
  ) {}

  /** Bytes an unprivileged process may still write on the storage file system. */
  async free(): Promise<number> {
    await fs.mkdir(this.root, { recursive: true });
    const st = await fs.statfs(this.root);
    return Number(st.bavail) * Number(st.bsize);
  }

  async isFull(): Promise<boolean> {
    return (await this.free()) < this.minFree;
  }

  /** Throws 507 insufficient-storage when the storage file system is (nearly) full. */
  async assertRoom(): Promise<void> {
    if (await this.isFull()) throw insufficientStorage();
  }
}

export function insufficientStorage(): AppError {
  return new AppError('insufficient-storage', 'the server is out of storage space; try again later');
}

/** A failure that means the disk (or the database's) is full: ENOSPC/EDQUOT, SQLite's SQLITE_FULL, PostgreSQL's class 53 disk_full. */
export function isOutOfSpace(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL' || code === '53100';
}
