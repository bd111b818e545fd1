/**
 * Whether an error means a dependency (the database, Redis) could not be reached or dropped the
 * connection, rather than a fault of the request or of Qasar: such a request is worth retrying
 * and is answered 503 `unavailable`, not 500.
 */
export function isDependencyUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  if (NETWORK_CODES.has(code)) return true;
  // PostgreSQL: connection exceptions (class 08), shutdowns and restarts, no free connection slot.
  if (/^08/.test(code) || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
  // SQLite: another process held the write lock past busy_timeout.
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return true;
  // node-postgres and ioredis say it in words.
  if (e.name === 'MaxRetriesPerRequestError') return true;
  if (
    /^Connection terminated|^Connection is closed|timeout exceeded when trying to connect|Client has encountered a connection error|Stream isn't writeable|^Command timed out/.test(
      message,
    )
  ) {
    return true;
  }
  if (Array.isArray(e.errors) && e.errors.some((x) => isDependencyUnavailable(x, depth + 1))) return true;
  return isDependencyUnavailable(e.cause, depth + 1);
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED']);
