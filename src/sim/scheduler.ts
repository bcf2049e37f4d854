/**
 * Every piece of simulated daemon timing (launch durations, retry waits, the
 * 30 s scan, restart downtime) goes through a Scheduler, so a test can play a
 * ten-minute cold start in microseconds with `ManualScheduler.advance`.
 *
 * Network-level delays (`setMode({ slowMs })`) deliberately do not: they exist
 * to trip the gate's I/O timeouts, which run on wall-clock time.
 */
import type { Clock } from '../core/clock.js';

declare const timerBrand: unique symbol;
/** Opaque: only the scheduler that issued it can clear it. */
export type TimerHandle = { readonly [timerBrand]: true };

export interface Scheduler extends Clock {
  /** Milliseconds; wall-clock for `realScheduler`, so it compares with `process_start_time_seconds`. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Real timers, `unref()`'d: the sim's listening sockets keep a process alive, its timers never do. */
export const realScheduler: Scheduler = {
  now: () => Date.now(),
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = globalThis.setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t as unknown as TimerHandle;
  },
  clearTimeout(handle: TimerHandle): void {
    globalThis.clearTimeout(handle as unknown as NodeJS.Timeout);
  },
};

interface ManualTimer {
  readonly id: number;
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A scheduler tests move by hand. It is also a `Clock`, so the gate under test
 * and the simulated fleet can share one fake time.
 */
export class ManualScheduler implements Scheduler, Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, ManualTimer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.timers.set(id, { id, due: this.t + delay, seq: id, fn });
    return id as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as unknown as number);
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way in
   * due-time order (ties in scheduling order), each with `now()` set to its due
   * time. Timers scheduled by fired timers fire too if they fall inside the window.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance(${ms}): time only moves forward`);
    const target = this.t + ms;
    for (;;) {
      const next = this.earliest(target);
      if (next === undefined) break;
      this.timers.delete(next.id);
      if (next.due > this.t) this.t = next.due;
      next.fn();
    }
    this.t = target;
  }

  /** Advances to an absolute time (no-op when it lies in the past). */
  advanceTo(time: number): void {
    if (time > this.t) this.advance(time - this.t);
  }

  /** Timers waiting to fire. */
  pending(): number {
    return this.timers.size;
  }

  /** Due time of the next timer, if any. */
  nextDue(): number | undefined {
    return this.earliest(Infinity)?.due;
  }

  private earliest(limit: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const timer of this.timers.values()) {
      if (timer.due > limit) continue;
      if (best === undefined || timer.due < best.due || (timer.due === best.due && timer.seq < best.seq)) best = timer;
    }
    return best;
  }
}
