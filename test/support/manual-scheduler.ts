/**
 * The one scheduler tests move by hand: the gate, the simulated fleet and the
 * unit under test share it, so "ten minutes later" is a call, not a wait.
 * Nothing fires until the test moves time.
 */
import type { Scheduler, TimerHandle } from '../../src/core/clock.js';

interface ManualTimer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

export class ManualScheduler implements Scheduler {
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
    this.timers.set(id, { id, due: this.t + delay, fn });
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

  /** Moves time to the due time of the latest timer pending now, firing every one on the way. */
  runPending(): void {
    const last = Math.max(this.t, ...[...this.timers.values()].map((t) => t.due));
    this.advance(last - this.t);
  }

  /** Sets the time, either way, firing nothing: for code that only reads the time. */
  set(time: number): void {
    this.t = time;
  }

  /** Timers waiting to fire. */
  pending(): number {
    return this.timers.size;
  }

  /** Time left until each pending timer, soonest first. */
  delays(): number[] {
    return this.ordered().map((t) => t.due - this.t);
  }

  /** Due time of the next timer, if any. */
  nextDue(): number | undefined {
    return this.earliest(Infinity)?.due;
  }

  private ordered(): ManualTimer[] {
    return [...this.timers.values()].sort((a, b) => a.due - b.due || a.id - b.id);
  }

  private earliest(limit: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const timer of this.timers.values()) {
      if (timer.due > limit) continue;
      if (best === undefined || timer.due < best.due || (timer.due === best.due && timer.id < best.id)) best = timer;
    }
    return best;
  }
}

/** Lets every already-resolved promise chain run. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * For tests with real I/O on manual time: moves `sched` forward `stepMs` at a
 * time, pausing briefly in real time between steps so sockets and child
 * processes can answer, until `check` holds. Fails after `ms` of real time, so
 * a test cannot hang; the bound is generous because it is not what is tested.
 */
export async function advanceUntil(sched: ManualScheduler, what: string, check: () => boolean, stepMs: number, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${ms} ms of real time (manual time now ${sched.now()})`);
    sched.advance(stepMs);
    await new Promise((r) => setTimeout(r, 10));
  }
}
