/**
 * Where TTLs and expiries read the time, so tests move it by hand instead of sleeping.
 * Milliseconds; only differences between two readings mean anything.
 */
export interface Clock {
  now(): number;
}

/** Monotonic: a wall-clock step (NTP, a changed time zone) never expires or revives an entry. */
export const monotonicClock: Clock = { now: () => performance.now() };

/** A clock that moves only when told: for TTL and expiry tests. */
export class ManualClock implements Clock {
  constructor(private at = 0) {}

  now(): number {
    return this.at;
  }

  advance(ms: number): void {
    this.at += ms;
  }
}
