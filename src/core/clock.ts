/**
 * The one time source. Every reading of the time and every timer of the gate
 * and of the simulated daemon go through a Scheduler handed in from the top
 * (the app, the sim, a test), so a test moves time by hand instead of waiting
 * for it. `now()` is wall-clock milliseconds: it is compared with the daemon's
 * `process_start_time_seconds`.
 *
 * What stays on real time on purpose: the deadline of one socket read or write
 * (status reads, a face's linger and force-close), because the socket it bounds
 * lives on real time too.
 */

/** The reading half of a Scheduler, for code that only asks what time it is. */
export interface Clock {
  now(): number;
}

declare const timerBrand: unique symbol;
/** Opaque: only the scheduler that issued it can clear it. */
export type TimerHandle = { readonly [timerBrand]: true };

export interface Scheduler extends Clock {
  /** Runs `fn` once after `ms` (a negative or non-finite delay is 0). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Node timers, `unref()`'d: a pending poll, lookup or reload never keeps the process alive. */
export const systemScheduler: Scheduler = {
  now: () => Date.now(),
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = globalThis.setTimeout(fn, Number.isFinite(ms) ? Math.max(0, ms) : 0);
    t.unref();
    return t as unknown as TimerHandle;
  },
  clearTimeout(handle: TimerHandle): void {
    globalThis.clearTimeout(handle as unknown as NodeJS.Timeout);
  },
};

/** Resolves after `ms` of the scheduler's time. */
export function delay(scheduler: Scheduler, ms: number): Promise<void> {
  return new Promise((resolve) => scheduler.setTimeout(resolve, ms));
}

/**
 * Calls `fn` every `ms` until the returned function is called: a chain of
 * timeouts, so a manual scheduler moved far ahead runs it once per period.
 */
export function every(scheduler: Scheduler, ms: number, fn: () => void): () => void {
  let handle: TimerHandle | undefined;
  let stopped = false;
  const arm = (): void => {
    handle = scheduler.setTimeout(() => {
      if (stopped) return;
      arm();
      fn();
    }, ms);
  };
  arm();
  return () => {
    stopped = true;
    if (handle !== undefined) scheduler.clearTimeout(handle);
    handle = undefined;
  };
}

/**
 * The wait between two rounds of a background loop: it ends after `ms`, or at
 * once when `wake()` is called (a stop, a poll asked for now). `cancel()`
 * clears a timer left behind when the loop ends.
 */
export class Sleeper {
  private timer: TimerHandle | undefined;
  private done: (() => void) | undefined;

  constructor(private readonly scheduler: Scheduler) {}

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.done = (): void => {
        this.cancel();
        resolve();
      };
      this.timer = this.scheduler.setTimeout(this.done, ms);
    });
  }

  wake(): void {
    this.done?.();
  }

  cancel(): void {
    if (this.timer !== undefined) this.scheduler.clearTimeout(this.timer);
    this.timer = undefined;
    this.done = undefined;
  }
}
