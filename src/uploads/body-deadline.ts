import type { Readable } from 'node:stream';

/**
 * Lets the HTTP layer tell whoever reads a request body to stop, without destroying the body:
 * a destroyed request body takes its socket with it, and then no answer (408) can be sent.
 * The reader gives up what it holds and rejects with the reason; the HTTP layer answers and
 * closes the connection.
 */
export class BodyDeadline {
  private readonly readers = new Set<(reason: Error) => void>();
  private reason: Error | undefined;

  /** Calls `stop` when the deadline passes (at once if it has). Returns the unsubscribe. */
  onExpire(stop: (reason: Error) => void): () => void {
    if (this.reason) {
      stop(this.reason);
      return () => undefined;
    }
    this.readers.add(stop);
    return () => this.readers.delete(stop);
  }

  get expired(): boolean {
    return this.reason !== undefined;
  }

  /** Tells every reader to stop; whether one was listening. */
  expire(reason: Error): boolean {
    if (this.reason) return false;
    this.reason = reason;
    const told = this.readers.size > 0;
    for (const stop of [...this.readers]) stop(reason);
    this.readers.clear();
    return told;
  }
}

const deadlines = new WeakMap<Readable, BodyDeadline>();

export function setBodyDeadline(body: Readable, deadline: BodyDeadline): void {
  deadlines.set(body, deadline);
}

export function bodyDeadlineOf(body: Readable): BodyDeadline | undefined {
  return deadlines.get(body);
}
