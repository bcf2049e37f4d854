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

/** The timer functions background loops use; tests inject their own to drive time by hand. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node timers, `unref()`'d: a pending poll or lookup never keeps the process alive. */
export const nodeTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

/**
 * The wait between two rounds of a background loop: it ends after `ms`, or at
 * once when `wake()` is called (a stop, a poll asked for now). `cancel()`
 * clears a timer left behind when the loop ends.
 */
export class Sleeper {
  private timer: unknown;
  private done: (() => void) | undefined;

  constructor(private readonly timers: Timers) {}

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.done = (): void => {
        this.cancel();
        resolve();
      };
      this.timer = this.timers.setTimeout(this.done, ms);
    });
  }

  wake(): void {
    this.done?.();
  }

  cancel(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.done = undefined;
  }
}
