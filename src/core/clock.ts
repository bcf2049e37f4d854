/**
 * Time is injected everywhere a decision or a state rule depends on it, so tests
 * move a fake clock instead of sleeping. `now()` is wall-clock milliseconds (it is
 * compared with the daemon's `process_start_time_seconds`).
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock tests move by hand. */
export class FakeClock implements Clock {
  private t: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}
