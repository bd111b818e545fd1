import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.js';
import { BodyDeadline, setBodyDeadline } from '../uploads/body-deadline.js';
import { PROBLEM_CONTENT_TYPE, problemBody } from './problem-details.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on requests with a body while REQUEST_IDLE_TIMEOUT or REQUEST_MIN_RATE is on. */
    bodyDeadline?: BodyDeadline;
  }
}

export interface BodyPace {
  /** Longest a flowing body may send nothing (0: never cut). */
  idleMs: number;
  /** Slowest average rate over `windowMs`, in bytes per second (0: any). */
  minRate: number;
  windowMs: number;
}

/** How long the reader of a cut body has to answer before the connection is closed regardless. */
const ANSWER_GRACE_MS = 5_000;

function hasBody(req: FastifyRequest): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) > 0);
}

/**
 * Cuts request bodies that stall or trickle. Only time the server spends waiting for the client
 * counts: while the body is flowing. A body the server has paused (its disk write is behind, a
 * hash is catching up) or not started reading yet (authentication, looking up the session) is
 * not the client's doing. Progress is measured on the socket, so the watch never switches a body
 * into flowing mode itself.
 *
 * A cut body's reader is told through its BodyDeadline: it lets go of its file, chunk lock or tus
 * lock and fails with 408, which the request answers with `Connection: close`. A body nobody
 * reads that way (a parser, the rest of a body after an answer) is answered here, or its
 * connection closed when an answer was already sent.
 */
export function watchBodies(app: FastifyInstance, pace: BodyPace): void {
  if (pace.idleMs <= 0 && pace.minRate <= 0) return;
  const tickMs = Math.max(20, Math.min(1000, pace.idleMs > 0 ? pace.idleMs / 5 : 1000, pace.minRate > 0 ? pace.windowMs / 10 : 1000));
  app.addHook('onRequest', (req, reply, done) => {
    // Only bodies that come over a socket (not app.inject's) can stall.
    if (hasBody(req) && typeof req.raw.socket?.bytesRead === 'number') watch(req, reply, pace, tickMs);
    done();
  });
}

function watch(req: FastifyRequest, reply: FastifyReply, pace: BodyPace, tickMs: number): void {
  const raw = req.raw;
  const socket = raw.socket;
  const deadline = new BodyDeadline();
  setBodyDeadline(raw, deadline);
  req.bodyDeadline = deadline;
  let seen = socket.bytesRead;
  let at = performance.now();
  let idleMs = 0;
  let windowMs = 0;
  let windowBytes = 0;

  const stop = () => {
    clearInterval(timer);
    raw.off('close', stop);
  };
  const cut = (detail: string) => {
    stop();
    const res = reply.raw;
    if (!res.headersSent) res.setHeader('connection', 'close');
    req.log.info({ idleMs: Math.round(idleMs), windowBytes, windowMs: Math.round(windowMs) }, 'request body too slow: cut');
    const err = new AppError('request-timeout', detail);
    const closeAnyway = setTimeout(() => socket.destroy(), ANSWER_GRACE_MS);
    closeAnyway.unref();
    socket.once('close', () => clearTimeout(closeAnyway));
    if (deadline.expire(err)) return;
    if (res.headersSent) {
      socket.destroy();
      return;
    }
    const body = problemBody('request-timeout', req, detail);
    res.writeHead(408, { 'content-type': PROBLEM_CONTENT_TYPE, 'x-request-id': String(req.id), connection: 'close' });
    res.end(JSON.stringify(body));
  };
  const timer = setInterval(() => {
    const now = performance.now();
    const elapsed = now - at;
    at = now;
    const bytes = socket.bytesRead;
    const got = bytes - seen;
    seen = bytes;
    if (raw.complete || socket.destroyed) return stop();
    if (raw.readableFlowing !== true) {
      idleMs = 0;
      windowMs = 0;
      windowBytes = 0;
      return;
    }
    idleMs = got > 0 ? 0 : idleMs + elapsed;
    windowMs += elapsed;
    windowBytes += got;
    if (pace.idleMs > 0 && idleMs >= pace.idleMs) {
      return cut(`the request body sent nothing for ${Math.round(idleMs / 1000)} s`);
    }
    if (pace.minRate > 0 && windowMs >= pace.windowMs) {
      const rate = windowBytes / (windowMs / 1000);
      if (rate < pace.minRate) return cut(`the request body arrived at ${Math.floor(rate)} bytes/s, slower than ${pace.minRate}`);
      windowMs = 0;
      windowBytes = 0;
    }
  }, tickMs);
  timer.unref();
  raw.once('close', stop);
}
