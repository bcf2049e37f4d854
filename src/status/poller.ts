/**
 * Polls every pod in its own loop: read → onReport → wait interval ± jitter →
 * read again. The wait starts only after a read finishes, so a slow pod never
 * has two reads in flight, and since loops are independent a hanging pod never
 * delays the others. Background work never throws: failures go to `onError`.
 *
 * Besides the interval, a pod is polled at once when it closes one of the
 * status client's keep-alive connections (`connectionLost`): a daemon that
 * exits closes them all, and the poll that follows is refused, which takes the
 * pod out of routing within milliseconds instead of seconds.
 */
import { systemScheduler, Sleeper, type Scheduler, type TimerHandle } from '../core/clock.js';
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
  /** Per pod, the interval to use instead of intervalMs for its next wait (settled pods are polled less often). */
  readonly intervalOf?: (address: string) => number;
  /** `poll-jitter`: the wait is intervalMs × (1 ± jitterPercent/100), uniformly. */
  readonly jitterPercent: number;
  /** [0, 1) source for jitter. */
  readonly random?: () => number;
  readonly scheduler?: Scheduler;
  /**
   * Least time between two polls triggered by `connectionLost` for one pod
   * (default: half the interval). A loss within it is not dropped: it is polled
   * when the gap ends. This bounds the cost of a daemon (or a proxy in front of
   * it) that closes idle keep-alives, or every connection, on its own.
   */
  readonly lossPollGapMs?: number;
  /**
   * At most `max` young reads in flight: started less than `youngMs` ago and not
   * finished. A read past youngMs no longer counts, so a hanging pod holds
   * nothing that others wait for, and waiting delays a read's start, never its
   * timeout. Without it every read starts at once. A fleet discovered all at
   * once (the gate's start, a scale-up) would otherwise be asked all at once,
   * and its answers (a first read costs ~1 ms: connect, health, parse, a new
   * pod in the view) come back together and are handled in one event-loop
   * iteration of half a second while Checks wait. Bounded, an iteration holds
   * at most about `max` answers.
   */
  readonly youngReads?: { readonly max: number; readonly youngMs: number };
}

/** The gate's bound on young reads: 32 answers ≈ 30 ms of work at most per iteration, and 1 600 starts a second even if every pod answers slowly. */
export const YOUNG_READS = { max: 32, youngMs: 100 } as const;

const NO_SLOT = (): void => undefined;

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
  /** Scheduler time of the last poll triggered by connectionLost. */
  lastLossPollAt: number | undefined;
  /** Polls a loss that came inside the gap, when the gap ends. */
  lossGapTimer: TimerHandle | undefined;
  /** A connection loss came during the gap and no read has started since. */
  lossPending: boolean;
  /** Set while the loop waits for a young-read slot (youngReads). */
  slotWaiter: ((release: () => void) => void) | undefined;
}

export class Poller {
  private readonly opts: PollerOptions;
  private readonly scheduler: Scheduler;
  private readonly random: () => number;
  private readonly lossPollGapMs: number;
  private readonly loops = new Map<string, PodLoop>();
  /** Every loop still running, including removed ones finishing an aborted read. */
  private readonly running = new Set<Promise<void>>();
  /** Current targets that have not completed a read yet. */
  private unsettled = 0;
  private settleWaiters: (() => void)[] = [];
  private stopped = false;
  /** Young reads in flight (youngReads), and the loops waiting for one to end, oldest first. */
  private young = 0;
  private readonly slotQueue: PodLoop[] = [];

  constructor(opts: PollerOptions) {
    this.opts = opts;
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.random = opts.random ?? Math.random;
    this.lossPollGapMs = Math.max(0, opts.lossPollGapMs ?? opts.intervalMs / 2);
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

  /**
   * The pod at `address` closed a pooled status connection (FIN or RST, not a
   * close of the gate's own making). Polls it now instead of at the next
   * interval: if the daemon exited, that poll is refused and the pod leaves
   * routing at once; if it only closed an idle connection, the poll finds it
   * answering and nothing changes. At most one such poll per pod per
   * `lossPollGapMs`; a loss inside the gap is polled when the gap ends, unless
   * a read has started meanwhile (that read already saw the pod after the loss).
   * Unknown addresses are ignored.
   */
  connectionLost(address: string): void {
    const loop = this.loops.get(address);
    if (loop === undefined || loop.stopped) return;
    const now = this.scheduler.now();
    const last = loop.lastLossPollAt;
    if (last === undefined || now - last >= this.lossPollGapMs) {
      this.lossPoll(loop, now);
      return;
    }
    loop.lossPending = true;
    loop.lossGapTimer ??= this.scheduler.setTimeout(() => {
      loop.lossGapTimer = undefined;
      if (loop.lossPending && !loop.stopped) this.lossPoll(loop, this.scheduler.now());
    }, last + this.lossPollGapMs - now);
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
      lastLossPollAt: undefined,
      lossGapTimer: undefined,
      lossPending: false,
      slotWaiter: undefined,
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
    this.clearLossGap(loop);
    loop.abort.abort();
    loop.sleeper.wake();
    if (loop.slotWaiter !== undefined) {
      // Waiting for a slot: it leaves the queue holding none.
      const i = this.slotQueue.indexOf(loop);
      if (i >= 0) this.slotQueue.splice(i, 1);
      const wake = loop.slotWaiter;
      loop.slotWaiter = undefined;
      wake(NO_SLOT);
    }
  }

  /** Polls now (or right after the read in flight); the gap starts now. */
  private lossPoll(loop: PodLoop, now: number): void {
    this.clearLossGap(loop);
    loop.lastLossPollAt = now;
    if (loop.reading) loop.skipWait = true;
    else loop.sleeper.wake();
  }

  private clearLossGap(loop: PodLoop): void {
    if (loop.lossGapTimer !== undefined) this.scheduler.clearTimeout(loop.lossGapTimer);
    loop.lossGapTimer = undefined;
    loop.lossPending = false;
  }

  private async run(loop: PodLoop): Promise<void> {
    try {
      while (!loop.stopped) {
        loop.reading = true;
        loop.skipWait = false;
        const slot = this.takeSlot(loop);
        const release = typeof slot === 'function' ? slot : await slot;
        if (loop.stopped) {
          release();
          break;
        }
        // This read sees the pod after any loss reported so far: nothing left to poll for.
        loop.lossPending = false;
        let report: PodReport | undefined;
        try {
          report = await this.opts.read(loop.address, loop.abort.signal);
        } catch (err) {
          this.fail(err, loop.address, 'status_unreachable');
        }
        release();
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
        await loop.sleeper.sleep(this.nextDelay(loop.address));
      }
    } catch (err) {
      // Unreachable by construction; kept so a bug cannot become an unhandled rejection.
      this.fail(err, loop.address, 'internal');
    } finally {
      loop.sleeper.cancel();
      this.clearLossGap(loop);
      const waiters = loop.waiters;
      loop.waiters = [];
      for (const w of waiters) w.resolve();
    }
  }

  /**
   * A young-read slot (youngReads): its release function at once when one is
   * free, else a promise of it. The slot is released by the read's end or by
   * youngMs passing, whichever comes first; a waiting loop that is removed
   * leaves the queue with a no-op release.
   */
  private takeSlot(loop: PodLoop): (() => void) | Promise<() => void> {
    const yr = this.opts.youngReads;
    if (yr === undefined) return NO_SLOT;
    if (this.young < yr.max) {
      this.young++;
      return this.slotFor();
    }
    return new Promise((resolve) => {
      loop.slotWaiter = resolve;
      this.slotQueue.push(loop);
    });
  }

  /** A held slot's release: idempotent; hands the slot to the oldest waiting loop, if any. */
  private slotFor(): () => void {
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      this.scheduler.clearTimeout(timer);
      const next = this.slotQueue.shift();
      if (next === undefined) {
        this.young--;
        return;
      }
      const wake = next.slotWaiter!;
      next.slotWaiter = undefined;
      wake(this.slotFor());
    };
    const timer = this.scheduler.setTimeout(release, this.opts.youngReads!.youngMs);
    return release;
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

  private nextDelay(address: string): number {
    const { jitterPercent } = this.opts;
    const intervalMs = this.opts.intervalOf?.(address) ?? this.opts.intervalMs;
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
    const error = GateError.from(err, fallback);
    try {
      this.opts.onError?.(error, pod);
    } catch {
      // An error handler that throws has nowhere left to report to.
    }
  }
}
