import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, PROBLEMS, problemType, type ProblemSlug } from '../errors.js';
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

export function problemBody(slug: ProblemSlug, req: FastifyRequest, detail?: string, extensions: Record<string, unknown> = {}): ProblemBody {
  const def = PROBLEMS[slug];
  return {
    ...extensions,
    type: problemType(slug),
    title: def.title,
    status: def.status,
    ...(detail ? { detail } : {}),
    instance: req.url.split('?')[0],
    request_id: String(req.id),
  };
}

export function sendProblem(reply: FastifyReply, body: ProblemBody): FastifyReply {
  return reply.code(body.status).header('content-type', PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
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
    req.log.error({ err }, 'unhandled error');
    return sendProblem(reply, problemBody('internal-error', req));
  });
  app.setNotFoundHandler((req, reply) => {
    sendProblem(reply, problemBody('not-found', req, `no route for ${req.method} ${req.url.split('?')[0]}`));
  });
}
