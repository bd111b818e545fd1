import type { Logger } from 'pino';
import type { StorageLayout } from '../storage/layout.js';
import type { ChunkRecord } from './chunk-state.js';
import type { HashThread } from './hash-thread.js';

/** What the hasher needs of a session. */
export interface HashedSession {
  id: string;
  tenant_id: string;
  chunk_count: number;
  chunk_size: number | string;
  total_size: number | string;
}

interface PrefixState {
  /** The name of the running sha256 in the hashing thread. */
  hash: string;
  /** Chunks [0, next) are in `hash`. */
  next: number;
  /** The receipt checksum of each chunk in `hash`, as it was when the chunk was read. */
  receipts: string[];
  /** Serialises the passes over this session. */
  chain: Promise<void>;
  /** A pass is queued and has not started yet (it will see whatever arrived meanwhile). */
  queued: boolean;
  /** A pass failed: the state may hold part of a chunk and is of no use. */
  broken: boolean;
}

/** Sessions whose prefix state is kept; beyond that the least recently used is dropped (and hashed again at complete). */
const MAX_SESSIONS = 256;

/**
 * The whole-file sha256 of chunked sessions, computed while the chunks arrive: after each
 * chunk, a background pass hashes the contiguous prefix of received chunks as far as it
 * reaches, reading their ranges back from the data file (the page cache, as a rule). The pass
 * runs whole in the hashing thread — receipts, reads and hashing — so neither the event loop nor
 * the I/O threads that receive the chunks do any of it. At complete only what the passes did not
 * reach is left to hash.
 *
 * A chunk is hashed only when its receipt exists, and kept only when its range has the receipt's
 * checksum (computed in the same read) and the receipt is the same file after the range was read
 * as before; a send of the same index meanwhile (which removes the receipt before it writes), or a
 * range damaged since it was received, undoes that chunk. Each hashed chunk's receipt checksum is recorded:
 * complete compares them with the final receipts and hashes the file from the start when one was
 * sent again with other bytes since.
 *
 * The state is this process's memory: after a restart, or on a process that did not see the
 * session's chunks, complete hashes the file from the start.
 */
export class PrefixHasher {
  private readonly sessions = new Map<string, PrefixState>();
  private generation = 0;

  constructor(
    private readonly thread: HashThread,
    private readonly layout: StorageLayout,
    private readonly log: Logger,
  ) {}

  private newHashName(id: string): string {
    return `${id}:${++this.generation}`;
  }

  private state(id: string): PrefixState {
    let st = this.sessions.get(id);
    if (st) {
      // Most recently used last.
      this.sessions.delete(id);
    } else {
      st = { hash: this.newHashName(id), next: 0, receipts: [], chain: Promise.resolve(), queued: false, broken: false };
      if (this.sessions.size >= MAX_SESSIONS) this.drop(this.sessions.keys().next().value!);
    }
    this.sessions.set(id, st);
    return st;
  }

  /** Starts a background pass over the session (unless one is already waiting to start). */
  advance(s: HashedSession): void {
    const st = this.state(s.id);
    if (st.queued || st.broken) return;
    st.queued = true;
    st.chain = st.chain
      .then(() => {
        st.queued = false;
        return this.pass(s, st);
      })
      .catch((err: unknown) => {
        // The session was closed meanwhile, or the disk failed: complete hashes from the start.
        st.broken = true;
        this.log.debug({ err, sessionId: s.id }, 'upload hashing pass stopped');
      });
  }

  private async pass(s: HashedSession, st: PrefixState): Promise<void> {
    if (this.sessions.get(s.id) !== st || st.next >= s.chunk_count) return;
    const from = st.next;
    const { next, checksums } = await this.thread.prefix(st.hash, {
      dir: this.layout.sessionChunkDir(s.tenant_id, s.id),
      dataFile: this.layout.sessionDataFile(s.tenant_id, s.id),
      next: from,
      chunkCount: s.chunk_count,
      chunkSize: Number(s.chunk_size),
      totalSize: Number(s.total_size),
    });
    checksums.forEach((c, i) => {
      st.receipts[from + i] = c;
    });
    st.next = next;
  }

  /**
   * The whole file's sha256, once every chunk has been received and no send can run any more
   * (complete holds the session). Uses the prefix hashed so far when every chunk in it still has
   * the receipt it had when it was hashed, and hashes the rest of the file.
   */
  async digest(s: HashedSession, received: ChunkRecord[]): Promise<string> {
    const st = this.state(s.id);
    const result = st.chain.then(async () => {
      const final = new Map(received.map((c) => [c.index, c.checksum]));
      let valid = !st.broken;
      for (let i = 0; i < st.next && valid; i++) valid = st.receipts[i] === final.get(i);
      let hash = st.hash;
      if (!valid) {
        if (!st.broken)
          this.log.info(
            { sessionId: s.id },
            'the hashed prefix is of no use (a chunk in it was sent again with other bytes); hashing the upload from the start',
          );
        await this.thread.drop(hash);
        hash = this.newHashName(s.id);
      }
      const from = valid ? Math.min(st.next * Number(s.chunk_size), Number(s.total_size)) : 0;
      await this.thread.feed(hash, this.layout.sessionDataFile(s.tenant_id, s.id), from, -1);
      return this.thread.digest(hash);
    });
    st.chain = result.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await result;
    } finally {
      this.drop(s.id);
    }
  }

  /** How many chunks from the start of the session are in its hash (0 when this process has no state). */
  progress(sessionId: string): number {
    return this.sessions.get(sessionId)?.next ?? 0;
  }

  /** Drops a session's state, once its running pass (if any) has stopped touching its folder. */
  async forget(sessionId: string): Promise<void> {
    const st = this.sessions.get(sessionId);
    this.drop(sessionId);
    await st?.chain;
  }

  /** Forgets a session's state here and in the hashing thread. */
  private drop(sessionId: string): void {
    const st = this.sessions.get(sessionId);
    if (!st) return;
    this.sessions.delete(sessionId);
    // After whatever is still running on it; a digest already taken leaves nothing to drop.
    void st.chain.then(() => this.thread.drop(st.hash)).catch(() => undefined);
  }
}
