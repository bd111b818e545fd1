import type { FastifyReply } from 'fastify';
import type { ByteRange, ServeStrategy, StoredObject } from '../storage/store.js';

/**
 * The byte range a Range header asks of an object of `size` bytes, as @fastify/send (which sends
 * local files) reads it: one range, or overlapping ones that merge into one, is served as 206;
 * none satisfiable is 416; several disjoint ranges, or a header that is no `bytes=` range, get the
 * whole object (undefined).
 */
export function rangeOf(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined || !/^ *bytes=/.test(header)) return undefined;
  const ranges: ByteRange[] = [];
  for (const spec of header.slice(header.indexOf('=') + 1).split(',')) {
    const dash = spec.indexOf('-');
    let start = parseInt(spec.slice(0, dash), 10);
    let end = parseInt(spec.slice(dash + 1), 10);
    if (Number.isNaN(start)) {
      start = size - end;
      end = size - 1;
    } else if (Number.isNaN(end) || end > size - 1) {
      end = size - 1;
    }
    if (!Number.isNaN(start) && !Number.isNaN(end) && start > -1 && start <= end) ranges.push({ start, end });
  }
  if (!ranges.length) return 'unsatisfiable';
  ranges.sort((a, b) => a.start - b.start);
  const merged: ByteRange[] = [{ ...ranges[0]! }];
  for (const r of ranges.slice(1)) {
    const last = merged[merged.length - 1]!;
    if (r.start > last.end + 1) merged.push({ ...r });
    else last.end = Math.max(last.end, r.end);
  }
  return merged.length === 1 ? merged[0] : undefined;
}

function etagOf(o: StoredObject): string {
  if (o.etag) return o.etag.startsWith('"') || o.etag.startsWith('W/') ? o.etag : `"${o.etag}"`;
  return `W/"${o.size.toString(16)}-${o.modified.getTime().toString(16)}"`;
}

/** Whether a conditional GET's validators say the client's copy is current (If-None-Match, else If-Modified-Since). */
function notModified(headers: Record<string, string | string[] | undefined>, etag: string, modified: Date): boolean {
  const noneMatch = headers['if-none-match'];
  if (typeof noneMatch === 'string') {
    const weak = (t: string) => t.trim().replace(/^W\//, '');
    return noneMatch.trim() === '*' || noneMatch.split(',').some((t) => weak(t) === weak(etag));
  }
  const since = typeof headers['if-modified-since'] === 'string' ? Date.parse(headers['if-modified-since']) : NaN;
  return !Number.isNaN(since) && Math.floor(modified.getTime() / 1000) * 1000 <= since;
}

/** Whether an If-Range still names this version of the object (else the whole object is sent). */
function rangeStillFresh(ifRange: string | string[] | undefined, etag: string, modified: Date): boolean {
  if (typeof ifRange !== 'string') return true;
  if (ifRange.includes('"')) return ifRange.includes(etag);
  const at = Date.parse(ifRange);
  return !Number.isNaN(at) && Math.floor(modified.getTime() / 1000) * 1000 <= at;
}

/**
 * Streams a stored object that is no local file (the store's `stream` strategy) with what the
 * static plugin gives local files: Accept-Ranges, one byte range (206, or 416 with the size in
 * Content-Range, raised as the static plugin raises it), ETag, Last-Modified and conditional GET.
 */
export async function sendStream(
  reply: FastifyReply,
  s: Extract<ServeStrategy, { kind: 'stream' }>,
  headers: { contentType: string; cacheControl: string },
): Promise<FastifyReply> {
  const { object } = s;
  const req = reply.request;
  const etag = etagOf(object);
  reply.header('accept-ranges', 'bytes');
  reply.header('etag', etag);
  reply.header('last-modified', object.modified.toUTCString());
  reply.header('cache-control', headers.cacheControl);
  if ((req.method === 'GET' || req.method === 'HEAD') && notModified(req.headers, etag, object.modified)) return reply.code(304).send();
  reply.header('content-type', headers.contentType);
  const range = rangeStillFresh(req.headers['if-range'], etag, object.modified) ? rangeOf(req.headers.range, object.size) : undefined;
  if (range === 'unsatisfiable') {
    throw Object.assign(new Error('Range Not Satisfiable'), { statusCode: 416, headers: { 'Content-Range': `bytes */${object.size}` } });
  }
  if (range) {
    reply.code(206);
    reply.header('content-range', `bytes ${range.start}-${range.end}/${object.size}`);
    reply.header('content-length', range.end - range.start + 1);
  } else {
    reply.header('content-length', object.size);
  }
  if (req.method === 'HEAD') return reply.send();
  return reply.send(await s.open(range));
}
