import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDependencyUnavailable } from '../shared/dependency-errors.js';
import { AppError, PROBLEMS, problemType, type ProblemSlug } from '../shared/errors.js';
import { isOutOfSpace } from '../storage/disk-space.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  request_id?: string;
  [ext: string]: unknown;
}

/** A problem's fields; `instance` only where the request named a path (an undecodable one is never echoed). */
function problemOf(slug: ProblemSlug, requestId: string, instance: string | undefined, detail?: string, extensions: Record<string, unknown> = {}): ProblemBody {
  const def = PROBLEMS[slug];
  return {
    ...extensions,
    type: problemType(slug),
    title: def.title,
    status: def.status,
    ...(detail ? { detail } : {}),
    ...(instance !== undefined ? { instance } : {}),
    request_id: requestId,
  };
}

export function problemBody(slug: ProblemSlug, req: FastifyRequest, detail?: string, extensions: Record<string, unknown> = {}): ProblemBody {
  return problemOf(slug, String(req.id), req.url.split('?')[0], detail, extensions);
}

/** Seconds a client should wait before retrying, for problems that say so. */
const RETRY_AFTER: Partial<Record<ProblemSlug, number>> = { unavailable: 5 };

export function sendProblem(reply: FastifyReply, body: ProblemBody): FastifyReply {
  // A body left unread (refused part-way: too large, too slow) is not read to its end: the
  // connection closes after the answer.
  if (!reply.request.raw.complete) reply.header('connection', 'close');
  const retryAfter = typeof body.retry_after === 'number' ? body.retry_after : RETRY_AFTER[body.type.slice('/problems/'.length) as ProblemSlug];
  if (retryAfter !== undefined && !reply.hasHeader('retry-after')) reply.header('retry-after', String(retryAfter));
  return reply.code(body.status).header('content-type', PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}

/**
 * Errors Fastify meets before a route runs (`frameworkErrors`): an undecodable URL, an over-long
 * path parameter. Answered as problems without the URL, which is the client's own input.
 */
export function answerFrameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  req.log.info({ code: err.code }, 'request refused before routing');
  const slug: ProblemSlug = err.code === 'FST_ERR_BAD_URL' ? 'malformed-url' : 'validation-failed';
  reply.header('x-request-id', String(req.id));
  sendProblem(reply, problemOf(slug, String(req.id), undefined, slug === 'malformed-url' ? 'the URL is not validly percent-encoded' : 'the URL is not valid'));
}

/**
 * Requests Node's HTTP parser refuses (`clientError`): headers over REQUEST_MAX_HEADER_SIZE,
 * malformed HTTP, headers sent too slowly. There is no request object, so the answer is written
 * to the socket, with a request id of its own that the log line carries too.
 */
export function answerClientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const requestId = randomUUID();
  const slug: ProblemSlug =
    err.code === 'HPE_HEADER_OVERFLOW' ? 'headers-too-large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request-timeout' : 'malformed-request';
  this.log.info({ reqId: requestId, code: err.code }, 'request refused by the HTTP parser');
  if (socket.writable && !(socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    const status = PROBLEMS[slug].status;
    const body = JSON.stringify(problemOf(slug, requestId, undefined));
    socket.write(
      `HTTP/1.1 ${status} ${PROBLEMS[slug].title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroySoon();
}

/** Maps Fastify's own errors (validation, parsing, limits) onto the problem catalogue. */
function fromFastifyError(err: FastifyError): { slug: ProblemSlug; detail: string; extensions?: Record<string, unknown> } | undefined {
  if (err.validation) {
    return {
      slug: 'validation-failed',
      detail: err.message,
      extensions: {
        errors: err.validation.map((v) => ({
          in: err.validationContext ?? 'request',
          path: v.instancePath || '/',
          message: v.message ?? 'is not valid',
          ...(v.params && 'missingProperty' in v.params ? { field: (v.params as { missingProperty: string }).missingProperty } : {}),
          ...(v.params && 'additionalProperty' in v.params ? { field: (v.params as { additionalProperty: string }).additionalProperty } : {}),
        })),
      },
    };
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { slug: 'unsupported-media-type', detail: err.message };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { slug: 'malformed-body', detail: err.message };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { slug: 'payload-too-large', detail: err.message };
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message))) return { slug: 'malformed-body', detail: err.message };
  if (err.statusCode === 429) return { slug: 'rate-limited', detail: err.message };
  if (err.statusCode === 404) return { slug: 'not-found', detail: err.message };
  if (err.statusCode === 405) return { slug: 'method-not-allowed', detail: err.message };
  if (err.statusCode === 413) return { slug: 'payload-too-large', detail: err.message };
  if (err.statusCode === 415) return { slug: 'unsupported-media-type', detail: err.message };
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return { slug: 'validation-failed', detail: err.message };
  return undefined;
}

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof AppError) {
      return sendProblem(reply, problemBody(err.slug, req, err.message, err.extensions));
    }
    if (isOutOfSpace(err)) {
      req.log.warn({ err }, 'out of storage space');
      return sendProblem(reply, problemBody('insufficient-storage', req));
    }
    const mapped = fromFastifyError(err);
    if (mapped) return sendProblem(reply, problemBody(mapped.slug, req, mapped.detail, mapped.extensions));
    if (isDependencyUnavailable(err)) {
      req.log.warn({ err }, 'a dependency is unavailable');
      return sendProblem(reply, problemBody('unavailable', req, 'a service the server depends on is not reachable; try again shortly'));
    }
    req.log.error({ err }, 'unhandled error');
    return sendProblem(reply, problemBody('internal-error', req));
  });
  app.setNotFoundHandler((req, reply) => {
    sendProblem(reply, problemBody('not-found', req, `no route for ${req.method} on this path`));
  });
}
