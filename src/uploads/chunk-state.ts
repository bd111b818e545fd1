import type { Redis } from 'ioredis';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/schema.js';

export interface ChunkRecord {
  index: number;
  size: number;
  /** `crc32:<hex>` or `sha256:<hex>` (see chunk-checksum.ts). */
  checksum: string;
}

export interface ChunkSummary {
  count: number;
  lastReceived: boolean;
}

/**
 * Which chunks of a session have arrived. Two backends: the database (embedded default) and
 * Redis (when REDIS_URL is set). `list` returns null when the store has no state for the
 * session at all, which the upload service takes as "lost" and rebuilds from the chunk files.
 */
export interface ChunkStateStore {
  init(sessionId: string, ttlMs: number): Promise<void>;
  put(sessionId: string, chunk: ChunkRecord, ttlMs: number): Promise<void>;
  /** Marks one chunk missing again (its range of the data file is about to be rewritten). */
  remove(sessionId: string, index: number): Promise<void>;
  list(sessionId: string): Promise<ChunkRecord[] | null>;
  /**
   * How many chunks have arrived and whether the last index is one of them, without listing
   * them (every chunk's size follows from its index); null when the store has no state.
   */
  summary(sessionId: string, lastIndex: number): Promise<ChunkSummary | null>;
  /** Replaces the state wholesale (after a rebuild from disk). */
  replace(sessionId: string, chunks: ChunkRecord[], ttlMs: number): Promise<void>;
  clear(sessionId: string): Promise<void>;
}

export class DbChunkStateStore implements ChunkStateStore {
  constructor(private readonly db: Db) {}

  async init(): Promise<void> {}

  async put(sessionId: string, chunk: ChunkRecord): Promise<void> {
    await this.db
      .insertInto('upload_chunks')
      .values({ session_id: sessionId, chunk_index: chunk.index, size: chunk.size, checksum: chunk.checksum, received_at: nowIso() })
      .onConflict((oc) => oc.columns(['session_id', 'chunk_index']).doUpdateSet({ size: chunk.size, checksum: chunk.checksum, received_at: nowIso() }))
      .execute();
  }

  async remove(sessionId: string, index: number): Promise<void> {
    await this.db.deleteFrom('upload_chunks').where('session_id', '=', sessionId).where('chunk_index', '=', index).execute();
  }

  async list(sessionId: string): Promise<ChunkRecord[]> {
    const rows = await this.db
      .selectFrom('upload_chunks')
      .select(['chunk_index', 'size', 'checksum'])
      .where('session_id', '=', sessionId)
      .orderBy('chunk_index')
      .execute();
    return rows.map((r) => ({ index: Number(r.chunk_index), size: Number(r.size), checksum: r.checksum }));
  }

  async summary(sessionId: string, lastIndex: number): Promise<ChunkSummary> {
    const row = await this.db
      .selectFrom('upload_chunks')
      .select((eb) => [eb.fn.countAll<number | string | bigint>().as('count'), eb.fn.max('chunk_index').as('last')])
      .where('session_id', '=', sessionId)
      .executeTakeFirst();
    return { count: Number(row?.count ?? 0), lastReceived: row?.last != null && Number(row.last) === lastIndex };
  }

  async replace(sessionId: string, chunks: ChunkRecord[]): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('upload_chunks').where('session_id', '=', sessionId).execute();
      if (chunks.length) {
        await tx
          .insertInto('upload_chunks')
          .values(chunks.map((c) => ({ session_id: sessionId, chunk_index: c.index, size: c.size, checksum: c.checksum, received_at: nowIso() })))
          .execute();
      }
    });
  }

  async clear(sessionId: string): Promise<void> {
    await this.db.deleteFrom('upload_chunks').where('session_id', '=', sessionId).execute();
  }
}

/** One hash per session: field "<index>" = "<size>:<checksum>", plus a marker that the state exists. */
export class RedisChunkStateStore implements ChunkStateStore {
  private static readonly MARKER = 'state';

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  key(sessionId: string): string {
    return `${this.prefix}:upload:${sessionId}:chunks`;
  }

  async init(sessionId: string, ttlMs: number): Promise<void> {
    await this.redis.multi().hset(this.key(sessionId), RedisChunkStateStore.MARKER, '1').pexpire(this.key(sessionId), ttlMs).exec();
  }

  async put(sessionId: string, chunk: ChunkRecord, ttlMs: number): Promise<void> {
    const key = this.key(sessionId);
    await this.redis.multi().hset(key, RedisChunkStateStore.MARKER, '1', String(chunk.index), `${chunk.size}:${chunk.checksum}`).pexpire(key, ttlMs).exec();
  }

  async remove(sessionId: string, index: number): Promise<void> {
    await this.redis.hdel(this.key(sessionId), String(index));
  }

  async list(sessionId: string): Promise<ChunkRecord[] | null> {
    const all = await this.redis.hgetall(this.key(sessionId));
    if (!all[RedisChunkStateStore.MARKER]) return null;
    const out: ChunkRecord[] = [];
    for (const [field, value] of Object.entries(all)) {
      if (field === RedisChunkStateStore.MARKER) continue;
      const colon = value.indexOf(':');
      const checksum = value.slice(colon + 1);
      // State written before receipts were tagged holds a bare sha256.
      out.push({ index: Number(field), size: Number(value.slice(0, colon)), checksum: checksum.includes(':') ? checksum : `sha256:${checksum}` });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  async summary(sessionId: string, lastIndex: number): Promise<ChunkSummary | null> {
    const key = this.key(sessionId);
    const res = await this.redis.multi().hlen(key).hexists(key, RedisChunkStateStore.MARKER).hexists(key, String(lastIndex)).exec();
    const [len, marker, last] = (res ?? []).map(([err, value]) => {
      if (err) throw err;
      return Number(value);
    });
    if (!marker) return null;
    return { count: len! - 1, lastReceived: last === 1 };
  }

  async replace(sessionId: string, chunks: ChunkRecord[], ttlMs: number): Promise<void> {
    const key = this.key(sessionId);
    const fields: string[] = [RedisChunkStateStore.MARKER, '1'];
    for (const c of chunks) fields.push(String(c.index), `${c.size}:${c.checksum}`);
    await this.redis
      .multi()
      .del(key)
      .hset(key, ...fields)
      .pexpire(key, ttlMs)
      .exec();
  }

  async clear(sessionId: string): Promise<void> {
    await this.redis.del(this.key(sessionId));
  }
}
