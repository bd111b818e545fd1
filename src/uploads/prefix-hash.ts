import { createHash, type Hash } from 'node:crypto';
import fsp from 'node:fs/promises';
import type { Logger } from 'pino';
import type { StorageLayout } from '../storage/layout.js';
import type { ChunkRecord } from './chunk-state.js';
import type { ChunkLocks } from './chunk-lock.js';
import { hashFileFrom, hashRange } from './file-hash.js';

/** What the hasher needs of a session. */
export interface HashedSession {
  id: string;
  tenant_id: string;
  chunk_count: number;
  chunk_size: number | string;
  total_size: number | string;
}

interface PrefixState {
  hash: Hash;
  /** Chunks [0, next) are in `hash`. */
  next: number;
  /** The receipt sha256 of each chunk in `hash`, as it was when the chunk was read. */
  receipts: string[];
  /** Serialises the passes over this session. */
  chain: Promise<void>;
  /** A pass is queued and has not started yet (it will see whatever arrived meanwhile). */
  queued: boolean;
  /** A pass failed part-way through a chunk: the state holds part of it and is of no use. */
  broken: boolean;
}

/** Sessions whose prefix state is kept; beyond that the least recently used is dropped (and hashed again at complete). */
const MAX_SESSIONS = 256;

/**
 * The whole-file sha256 of chunked sessions, computed while the chunks arrive: after each
 * chunk, a background pass hashes the contiguous prefix of verified chunks as far as it
 * reaches, reading their ranges back from the data file (the page cache, as a rule). At
 * complete only what the passes did not reach is left to hash.
 *
 * The state is this process's memory: after a restart, or on a process that did not see the
 * session's chunks, it starts from the beginning of the file again. A pass reads a chunk only
 * while holding that index's lock and only when its receipt exists, so the bytes it hashes are
 * exactly the verified ones the receipt describes; it records the receipt's sha256. A chunk sent
 * again later with other bytes gets another receipt, and complete, which compares every recorded
 * receipt with the final one, then starts the hash over instead of trusting it.
 */
export class PrefixHasher {
  private readonly sessions = new Map<string, PrefixState>();

  constructor(
    private readonly layout: StorageLayout,
    private readonly locks: ChunkLocks,
    private readonly readReceipt: (s: HashedSession, index: number) => Promise<ChunkRecord | undefined>,
    private readonly log: Logger,
  ) {}

  private state(id: string): PrefixState {
    let st = this.sessions.get(id);
    if (st) {
      // Most recently used last.
      this.sessions.delete(id);
    } else {
      st = { hash: createHash('sha256'), next: 0, receipts: [], chain: Promise.resolve(), queued: false, broken: false };
      if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    }
    this.sessions.set(id, st);
    return st;
  }

  /** Starts a background pass over the session (unless one is already waiting to start). */
  advance(s: HashedSession): void {
    const st = this.state(s.id);
    if (st.queued) return;
    st.queued = true;
    st.chain = st.chain
      .then(() => {
        st.queued = false;
        return this.pass(s, st);
      })
      .catch((err: unknown) => {
        // The session was closed meanwhile, or the disk failed: complete hashes from the start.
        st.broken = true;
        if (this.sessions.get(s.id) === st) this.sessions.delete(s.id);
        this.log.debug({ err, sessionId: s.id }, 'upload hashing pass stopped');
      });
  }

  /** Hashes the chunks from `st.next` on while their receipts are there and their locks free. */
  private async pass(s: HashedSession, st: PrefixState): Promise<void> {
    if (this.sessions.get(s.id) !== st || st.next >= s.chunk_count) return;
    const dataFile = this.layout.sessionDataFile(s.tenant_id, s.id);
    let fh: fsp.FileHandle | undefined;
    try {
      while (st.next < s.chunk_count) {
        const index = st.next;
        // Cheap look first: the chunk at the frontier has usually not arrived yet.
        if (!(await this.readReceipt(s, index))) return;
        const lock = await this.locks.forHashing(this.layout.chunkLockFile(s.tenant_id, s.id, index));
        if (!lock) return; // being sent (again): its send starts another pass when it is done
        try {
          const receipt = await this.readReceipt(s, index);
          if (!receipt) return;
          fh ??= await fsp.open(dataFile, 'r');
          const read = await hashRange(fh, st.hash, index * Number(s.chunk_size), receipt.size);
          if (read !== receipt.size) throw new Error(`chunk ${index} is short in the data file`);
          st.receipts[index] = receipt.sha256;
          st.next = index + 1;
        } finally {
          await lock.release();
        }
      }
    } finally {
      await fh?.close();
    }
  }

  /**
   * The whole file's sha256, once every chunk has been received and no send can run any more
   * (complete holds the session). Uses the prefix hashed so far when every chunk in it still has
   * the receipt it had when it was hashed, and hashes the rest of the file.
   */
  async digest(s: HashedSession, received: ChunkRecord[]): Promise<string> {
    const st = this.state(s.id);
    const result = st.chain.then(async () => {
      const final = new Map(received.map((c) => [c.index, c.sha256]));
      let valid = !st.broken;
      for (let i = 0; i < st.next && valid; i++) valid = st.receipts[i] === final.get(i);
      if (!valid) this.log.info({ sessionId: s.id }, 'the hashed prefix is of no use (a chunk in it was sent again with other bytes); hashing the upload from the start');
      const hash = valid ? st.hash : createHash('sha256');
      const from = valid ? Math.min(st.next * Number(s.chunk_size), Number(s.total_size)) : 0;
      await hashFileFrom(this.layout.sessionDataFile(s.tenant_id, s.id), hash, from);
      return hash.digest('hex');
    });
    st.chain = result.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await result;
    } finally {
      this.sessions.delete(s.id);
    }
  }

  /** How many chunks from the start of the session are in its hash (0 when this process has no state). */
  progress(sessionId: string): number {
    return this.sessions.get(sessionId)?.next ?? 0;
  }

  /** Drops a session's state, once its running pass (if any) has stopped touching its folder. */
  async forget(sessionId: string): Promise<void> {
    const st = this.sessions.get(sessionId);
    this.sessions.delete(sessionId);
    await st?.chain;
  }
}
