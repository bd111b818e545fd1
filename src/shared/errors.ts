/**
 * The catalogue of error kinds. Each becomes an RFC 9457 problem whose `type` is
 * `/problems/<slug>`: stable, documented at that URL, and safe for clients to switch on.
 */
export const PROBLEMS = {
  'validation-failed': {
    status: 400,
    title: 'The request is not valid',
    description: 'A parameter, header or body field failed validation; `errors` lists each one.',
  },
  'malformed-body': {
    status: 400,
    title: 'The request body could not be parsed',
    description: 'The body is not well-formed JSON (or not the declared content type).',
  },
  unauthenticated: { status: 401, title: 'Authentication required', description: 'Send `Authorization: Bearer <api key>` with a valid, unrevoked key.' },
  forbidden: {
    status: 403,
    title: 'Not allowed',
    description: 'The key is valid but may not do this (for example, acting for another user without an admin key).',
  },
  'not-found': { status: 404, title: 'Not found', description: 'No such resource exists for this tenant.' },
  'method-not-allowed': { status: 405, title: 'Method not allowed', description: 'The resource does not support this method.' },
  'upload-incomplete': { status: 409, title: 'The upload is missing chunks', description: '`missing_chunks` lists the chunk indexes still to send.' },
  'upload-not-open': { status: 409, title: 'The upload is not open', description: 'The session was already completed, aborted, failed or expired.' },
  'upload-busy': { status: 409, title: 'The upload is being completed', description: 'Another request is completing this session; poll its state.' },
  'payload-too-large': { status: 413, title: 'The upload is too large', description: 'The declared or sent size is over the configured limit.' },
  'unsupported-media-type': {
    status: 415,
    title: 'Unsupported content type',
    description: 'Send chunks as application/octet-stream and JSON as application/json.',
  },
  'chunk-index-out-of-range': { status: 422, title: 'Chunk index out of range', description: 'The index must be from 0 to chunk_count - 1.' },
  'chunk-size-mismatch': {
    status: 422,
    title: 'The chunk has the wrong size',
    description: 'Every chunk but the last must be exactly chunk_size bytes; the last is the remainder.',
  },
  'chunk-checksum-mismatch': {
    status: 422,
    title: 'The chunk checksum does not match',
    description: 'The bytes received do not hash to the checksum sent; the chunk was discarded, send it again.',
  },
  'upload-checksum-mismatch': {
    status: 422,
    title: 'The file checksum does not match',
    description: 'The assembled file does not hash to the declared sha256; the upload was discarded.',
  },
  'upload-size-mismatch': {
    status: 422,
    title: 'The file size does not match',
    description: 'The assembled file is not the declared total size; the upload was discarded.',
  },
  'empty-file': { status: 422, title: 'The file is empty', description: 'A zero-byte file cannot be uploaded.' },
  'invalid-filename': {
    status: 422,
    title: 'The file name is not acceptable',
    description: 'File names must be 1-255 characters with no path separators, `..`, or control characters.',
  },
  'moderation-hidden': {
    status: 403,
    title: 'The media is held by moderation',
    description: 'The media is held for moderation or was rejected; only its owner and admin keys may see or play it.',
  },
  'bank-too-large': {
    status: 422,
    title: 'The label bank is too large',
    description: 'A bank may hold at most LABEL_BANK_MAX_ENTRIES entries (and 100 phrases per entry).',
  },
  'bank-entry-cycle': {
    status: 422,
    title: 'The label hierarchy would have a cycle',
    description: 'An entry cannot be its own ancestor; choose a parent that is not one of its descendants.',
  },
  'invalid-captions': {
    status: 422,
    title: 'The caption file is not valid',
    description: 'The file must be UTF-8 WebVTT or SRT with well-formed cues; `errors` lists each malformed cue with its line number.',
  },
  'range-not-satisfiable': {
    status: 416,
    title: 'The range is not satisfiable',
    description: 'No part of the requested byte range lies within the file; `Content-Range: bytes */<size>` gives its size.',
  },
  'too-many-open-uploads': {
    status: 429,
    title: 'Too many open uploads',
    description: 'A user may have at most UPLOAD_MAX_OPEN_PER_USER uploads open at once; complete or abort one first.',
  },
  'quota-exceeded': {
    status: 413,
    title: 'The storage quota is used up',
    description:
      "The upload does not fit in the tenant's storage quota (its media plus the declared size of its open uploads); `quota_bytes` and `usage_bytes` say how much is used.",
  },
  'insufficient-storage': {
    status: 507,
    title: 'The server is out of storage space',
    description: 'The server has no room to store this now; deleting media still works. Try again later.',
  },
  'labeling-off': {
    status: 409,
    title: 'Labeling is off',
    description:
      'The local models do not label this media: labeling is off on this server (ENABLE_WORKER_LABELING), or they have nothing to look at in media of this kind.',
  },
  conflict: { status: 409, title: 'Conflict', description: 'The resource already exists or changed concurrently.' },
  'rate-limited': { status: 429, title: 'Too many requests', description: 'Slow down and retry after the indicated time.' },
  'request-timeout': {
    status: 408,
    title: 'The request body arrived too slowly',
    description:
      'The body stopped arriving for longer than REQUEST_IDLE_TIMEOUT, or arrived slower than REQUEST_MIN_RATE; nothing of it was kept, send the request again.',
  },
  'malformed-url': {
    status: 400,
    title: 'The request URL is not valid',
    description: 'The path or query could not be decoded (for example an invalid percent-encoding).',
  },
  'malformed-request': { status: 400, title: 'The request is not valid HTTP', description: 'The request line or headers could not be parsed.' },
  'headers-too-large': {
    status: 431,
    title: 'The request headers are too large',
    description: 'The request line and headers together are over REQUEST_MAX_HEADER_SIZE.',
  },
  'internal-error': { status: 500, title: 'Internal server error', description: 'Something failed on the server; the request id identifies it in the logs.' },
  unavailable: { status: 503, title: 'Service unavailable', description: 'A dependency (database, queue or storage) is not reachable.' },
} as const satisfies Record<string, { status: number; title: string; description: string }>;

export type ProblemSlug = keyof typeof PROBLEMS;

export function problemType(slug: ProblemSlug): string {
  return `/problems/${slug}`;
}

/** An error a client can act on. Services throw it; the HTTP layer renders it as problem+json. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly slug: ProblemSlug,
    detail?: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(detail ?? PROBLEMS[slug].title);
    this.name = 'AppError';
    this.status = PROBLEMS[slug].status;
  }
}

export function notFound(what: string): AppError {
  return new AppError('not-found', `${what} not found`);
}

/**
 * A job that must not be retried: the input is broken, so another attempt cannot succeed.
 */
export class PermanentJobError extends Error {
  constructor(
    message: string,
    readonly code = 'permanent',
  ) {
    super(message);
    this.name = 'PermanentJobError';
  }
}
