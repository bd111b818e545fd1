/**
 * The baseline of the upload benchmark: the least an HTTP server can do with an upload on this
 * machine. Plain node:http, no framework, no hashing, no database: the request body is streamed
 * to a file and the answer is 201.
 *
 *   node --import tsx bench/upload/baseline-server.ts <dir>
 *
 * Listens on 127.0.0.1 on a free port and prints `BASELINE_LISTENING <port>` once it does.
 *
 *   POST   /files/<name>?size=<n>  create (or truncate) the file: the start of a chunked upload
 *   PUT    /files/<name>?offset=<n> write the body at that offset of an existing file (a chunk);
 *                                   with &sha256, also hash the body as it passes (answers its digest)
 *   PUT    /files/<name>            write the body as the whole file (one streaming request)
 *   DELETE /files/<name>            remove it
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const dir = path.resolve(process.argv[2] ?? process.env.BASELINE_DIR ?? '');
if (!process.argv[2] && !process.env.BASELINE_DIR) {
  process.stderr.write('usage: baseline-server.ts <dir>\n');
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });

/** The same write buffer the Qasar chunk writer uses, so neither side wins on a stream setting. */
const WRITE_HWM = 1024 * 1024;

function reply(res: http.ServerResponse, status: number, body = ''): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://baseline');
  const m = /^\/files\/([A-Za-z0-9._-]{1,128})$/.exec(url.pathname);
  if (!m || m[1]!.startsWith('.')) return reply(res, 404, 'not found');
  const file = path.join(dir, m[1]!);
  if (req.method === 'POST') {
    const size = Number(url.searchParams.get('size') ?? '0');
    const fh = await fsp.open(file, 'w');
    await fh.truncate(0);
    await fh.close();
    req.resume();
    return reply(res, 201, String(size));
  }
  if (req.method === 'PUT') {
    const offset = url.searchParams.get('offset');
    const start = offset === null ? 0 : Number(offset);
    if (!Number.isSafeInteger(start) || start < 0) return reply(res, 400, 'bad offset');
    const out = fs.createWriteStream(file, { flags: offset === null ? 'w' : 'r+', start, highWaterMark: WRITE_HWM });
    if (!url.searchParams.has('sha256')) {
      await pipeline(req, out);
      return reply(res, 201, String(out.bytesWritten));
    }
    // The least a server must add to verify an upload against a declared sha256: every byte
    // hashed once, on the thread that receives it.
    const hash = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(req, hashing, out);
    return reply(res, 201, hash.digest('hex'));
  }
  if (req.method === 'DELETE') {
    await fsp.rm(file, { force: true });
    req.resume();
    return reply(res, 204);
  }
  req.resume();
  return reply(res, 405, 'method not allowed');
}

const server = http.createServer({ keepAlive: true, requestTimeout: 0 }, (req, res) => {
  handle(req, res).catch((err: unknown) => {
    if (!res.headersSent) reply(res, 500, err instanceof Error ? err.message : String(err));
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`BASELINE_LISTENING ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
