import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Drives the chunked-session API through app.inject, the way a client would. */
export class SessionClient {
  constructor(
    private readonly app: FastifyInstance,
    private readonly key: string,
    private readonly prefix = '/api/v1',
  ) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.key}`, ...extra };
  }

  create(body: Record<string, unknown>) {
    return this.app.inject({ method: 'POST', url: `${this.prefix}/upload`, headers: this.headers(), payload: body });
  }

  putChunk(sessionId: string, index: number, data: Buffer, extra: Record<string, string> = {}) {
    return this.app.inject({
      method: 'PUT',
      url: `${this.prefix}/upload/${sessionId}/chunk?index=${index}`,
      headers: this.headers({ 'content-type': 'application/octet-stream', ...extra }),
      payload: data,
    });
  }

  status(sessionId: string) {
    return this.app.inject({ method: 'GET', url: `${this.prefix}/upload/${sessionId}`, headers: this.headers() });
  }

  complete(sessionId: string) {
    return this.app.inject({ method: 'POST', url: `${this.prefix}/upload/${sessionId}/complete`, headers: this.headers() });
  }

  abort(sessionId: string) {
    return this.app.inject({ method: 'DELETE', url: `${this.prefix}/upload/${sessionId}`, headers: this.headers() });
  }

  /** Creates a session, sends every chunk and completes; returns the complete response. */
  async uploadWhole(data: Buffer, opts: { filename?: string; chunkSize?: number; extra?: Record<string, unknown> } = {}) {
    const chunkSize = opts.chunkSize ?? 64 * 1024;
    const created = await this.create({ filename: opts.filename ?? 'file.bin', total_size: data.length, chunk_size: chunkSize, ...opts.extra });
    if (created.statusCode !== 201) throw new Error(`create failed: ${created.statusCode} ${created.body}`);
    const session = created.json() as { session_id: string; chunk_count: number; chunk_size: number };
    for (let i = 0; i < session.chunk_count; i++) {
      const res = await this.putChunk(session.session_id, i, data.subarray(i * session.chunk_size, (i + 1) * session.chunk_size));
      if (res.statusCode !== 200) throw new Error(`chunk ${i} failed: ${res.statusCode} ${res.body}`);
    }
    return { session, completed: await this.complete(session.session_id) };
  }
}
