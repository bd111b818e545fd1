import { PermanentJobError } from '../../shared/errors.js';
import { ToolFailure } from '../../tools/tool-failure.js';

/** Messages and errno codes that say the machine, not the input, is at fault: worth a retry. */
const TRANSIENT_MESSAGE =
  /No space left on device|Cannot allocate memory|Out of memory|Resource temporarily unavailable|Too many open files|for writing|unable to write|Disk quota exceeded/i;
const TRANSIENT_CODES = new Set(['ENOSPC', 'EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EDQUOT', 'EIO']);

export function isMachineFault(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return (code !== undefined && TRANSIENT_CODES.has(code)) || TRANSIENT_MESSAGE.test(err.message);
}

/** A Node system error (fs, spawn): about our files, never about the image's bytes. */
function isSystemError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

export function timeoutError(timeoutMs: number): PermanentJobError {
  return new PermanentJobError(`the image took longer than ${Math.max(1, Math.round(timeoutMs / 1000))} s to process`, 'timeout');
}

/**
 * What a failure while decoding or encoding an image means for the job: a machine fault stays a
 * plain Error (retried); sharp's timeout (`timeout: N% complete`) is `timeout`; libvips' own
 * pixel limit is `too-large`; anything else is input no retry can fix (`unreadable-media`).
 */
export function classifyImageError(err: unknown, timeoutMs: number): Error {
  if (err instanceof PermanentJobError) return err;
  if (!(err instanceof Error)) return new Error(String(err));
  if (isMachineFault(err) || isSystemError(err)) return err;
  if (/^timeout: \d+% complete/m.test(err.message)) return timeoutError(timeoutMs);
  if (/exceeds pixel limit/i.test(err.message)) return new ToolFailure('the image is too large to decode', 'too-large', firstLine(err.message));
  return new ToolFailure('the image could not be decoded: it is damaged or not in a format that can be read', 'unreadable-media', firstLine(err.message));
}

function firstLine(message: string): string {
  return (message.split('\n').find((l) => l.trim()) ?? message).trim().slice(0, 300);
}
