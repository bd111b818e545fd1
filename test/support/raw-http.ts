import fs from 'node:fs';
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Whether the server closed the connection after answering. */
  closed: boolean;
  /** A socket error instead of (or after) an answer, e.g. ECONNRESET. */
  error?: string;
}

/**
 * One HTTP/1.1 request over a plain socket, so a test controls exactly how the body goes out
 * (byte by byte, chunked, never). `send` writes the body and may wait between writes; the answer
 * is whatever the server sent by the time it closed the connection or answered in full.
 */
export function rawRequest(port: number, head: string, send: (socket: net.Socket) => Promise<void> | void): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    let error: string | undefined;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      const text = Buffer.concat(parts).toString('utf8');
      const [rawHead = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = rawHead.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1] ?? 0), headers, body: rest.join('\r\n\r\n'), closed, ...(error ? { error } : {}) });
      socket.destroy();
    };
    socket.on('data', (d) => {
      parts.push(d);
      // A complete answer with a length: no need to wait for the close.
      const text = Buffer.concat(parts).toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
      if (end >= 0 && m && Buffer.byteLength(text.slice(end + 4)) >= Number(m[1]) && !/\r\nconnection:\s*close/i.test(text.slice(0, end))) finish(false);
    });
    socket.on('error', (err) => {
      error = (err as NodeJS.ErrnoException).code ?? err.message;
    });
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      socket.write(head);
      Promise.resolve(send(socket)).catch(() => undefined);
    });
  });
}

/** A request line and headers, ready to write. */
export function httpHead(method: string, path: string, headers: Record<string, string | number>): string {
  return `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

/** Writes `count` single bytes, `everyMs` apart, while the socket stays open. */
export async function trickle(socket: net.Socket, count: number, everyMs: number): Promise<void> {
  for (let i = 0; i < count && !socket.destroyed; i++) {
    socket.write(Buffer.from([0x61]));
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Open descriptors of this process (the server runs in it). */
export function openDescriptors(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
