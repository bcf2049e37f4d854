/**
 * Polls every pod in its own loop: read → onReport → wait interval ± jitter →
 * read again. The wait starts only after a read finishes, so a slow pod never
 * has two reads in flight, and since loops are independent a hanging pod never
 * delays the others. Background work never throws: failures go to `onError`.
 */
import { systemScheduler, Sleeper, type Scheduler } from '../core/clock.js';
import { GateError } from '../core/errors.js';
import type { PodReport } from './types.js';
import type { PodReader } from './reader.js';


export interface PollerOptions {
  /** Reads one pod; should not reject (readPod never does), but a rejection is reported and survived. */
  readonly read: PodReader;
  /** Gets every report of a current target; a throw is caught and sent to onError. */
  readonly onReport: (report: PodReport) => void;
  /** Background failures: a read that rejected, an onReport that threw. */
  readonly onError?: (error: GateError, pod: string) => void;
  /** `poll-interval`. */
  readonly intervalMs: number;
  /** `poll-jitter`: the wait is intervalMs × (1 ± jitterPercent/100), uniformly. */
  readonly jitterPercent: number;
  /** [0, 1) source for jitter. */
  readonly random?: () => number;
  readonly scheduler?: Scheduler;
}

interface Waiter {
  readonly n: number;
  readonly resolve: () => void;
}

interface PodLoop {
  readonly address: string;
  readonly abort: AbortController;
  stopped: boolean;
  /** Reads finished (report delivered, or the read failed). */
  completed: number;
  /** A pollNow came during a read: skip the wait after it. */
  skipWait: boolean;
  reading: boolean;
  readonly sleeper: Sleeper;
  waiters: Waiter[];
}

export class Poller {
  private readonly opts: PollerOptions;
  private readonly scheduler: Scheduler;
  private readonly random: () => number;
  private readonly loops = new Map<string, PodLoop>();
  /** Every loop still running, including removed ones finishing an aborted read. */
  private readonly running = new Set<Promise<void>>();
  /** Current targets that have not completed a read yet. */
  private unsettled = 0;
  private settleWaiters: (() => void)[] = [];
  private stopped = false;

  constructor(opts: PollerOptions) {
    this.opts = opts;
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.random = opts.random ?? Math.random;
  }

  /**
   * Makes `addresses` the polled set: new pods start polling at once, pods no
   * longer listed stop (their in-flight read is aborted and its report
   * dropped, so a gone pod is never reported again). Ignored after stop().
   */
  setTargets(addresses: readonly string[]): void {
    if (this.stopped) return;
    const wanted = new Set(addresses);
    for (const [address, loop] of this.loops) {
      if (!wanted.has(address)) this.removeLoop(loop);
    }
    for (const address of wanted) {
      if (!this.loops.has(address)) this.startLoop(address);
    }
    this.checkSettled();
  }

  /** Current targets, sorted. */
  targets(): readonly string[] {
    return [...this.loops.keys()].sort();
  }

  /** True when every current target has completed at least one read (or the poller is stopped). */
  isSettled(): boolean {
    return this.stopped || this.unsettled === 0;
  }

  /** Resolves once every current target (re-evaluated as targets change) has completed a read, or on stop(). */
  settled(): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  /**
   * Polls every current target now instead of waiting for its timer. Resolves
   * when each has completed a read that started after this call (or was
   * removed, or the poller stopped). A pod mid-read finishes that read first.
   */
  pollNow(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const loop of this.loops.values()) {
      if (loop.stopped) continue;
      const n = loop.completed + (loop.reading ? 2 : 1);
      pending.push(new Promise((resolve) => loop.waiters.push({ n, resolve })));
      if (loop.reading) loop.skipWait = true;
      else loop.sleeper.wake();
    }
    return Promise.all(pending).then(() => undefined);
  }

  /** Stops every loop: timers cleared, in-flight reads aborted and awaited. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const loop of this.loops.values()) this.removeLoop(loop);
    this.checkSettled();
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private startLoop(address: string): void {
    const loop: PodLoop = {
      address,
      abort: new AbortController(),
      stopped: false,
      completed: 0,
      skipWait: false,
      reading: false,
      sleeper: new Sleeper(this.scheduler),
      waiters: [],
    };
    this.loops.set(address, loop);
    this.unsettled++;
    const done = this.run(loop);
    this.running.add(done);
    void done.finally(() => this.running.delete(done));
  }

  private removeLoop(loop: PodLoop): void {
    if (loop.stopped) return;
    loop.stopped = true;
    if (this.loops.get(loop.address) === loop) this.loops.delete(loop.address);
    if (loop.completed === 0) this.unsettled--;
    loop.abort.abort();
    loop.sleeper.wake();
  }

  private async run(loop: PodLoop): Promise<void> {
    try {
      while (!loop.stopped) {
        loop.reading = true;
        loop.skipWait = false;
        let report: PodReport | undefined;
        try {
          report = await this.opts.read(loop.address, loop.abort.signal);
        } catch (err) {
          this.fail(err, loop.address, 'status_unreachable');
        }
        loop.reading = false;
        if (loop.stopped) break;
        if (report !== undefined) {
          try {
            this.opts.onReport(report);
          } catch (err) {
            this.fail(err, loop.address, 'internal');
          }
        }
        this.completeRead(loop);
        if (loop.stopped) break; // onReport may have removed this pod or stopped the poller
        if (loop.skipWait) continue;
        await loop.sleeper.sleep(this.nextDelay());
      }
    } catch (err) {
      // Unreachable by construction; kept so a bug cannot become an unhandled rejection.
      this.fail(err, loop.address, 'internal');
    } finally {
      loop.sleeper.cancel();
      const waiters = loop.waiters;
      loop.waiters = [];
      for (const w of waiters) w.resolve();
    }
  }

  private completeRead(loop: PodLoop): void {
    loop.completed++;
    if (loop.completed === 1 && !loop.stopped) {
      this.unsettled--;
      this.checkSettled();
    }
    if (loop.waiters.length > 0) {
      const still: Waiter[] = [];
      for (const w of loop.waiters) {
        if (loop.completed >= w.n) w.resolve();
        else still.push(w);
      }
      loop.waiters = still;
    }
  }

  private nextDelay(): number {
    const { intervalMs, jitterPercent } = this.opts;
    const spread = (jitterPercent / 100) * (2 * this.random() - 1);
    return Math.max(0, Math.round(intervalMs * (1 + spread)));
  }

  private checkSettled(): void {
    if (this.settleWaiters.length === 0 || !this.isSettled()) return;
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
  }

  private fail(err: unknown, pod: string, fallback: 'status_unreachable' | 'internal'): void {
    const error = err instanceof GateError ? err : new GateError(fallback, err instanceof Error ? err.message : String(err), { cause: err });
    try {
      this.opts.onError?.(error, pod);
    } catch {
      // An error handler that throws has nowhere left to report to.
    }
  }
}
