/**
 * The probe's one piece of memory: the latch. Each evaluation runs the pure
 * policy over the tracker's current view of the daemon and keeps the latch it
 * returns; readiness changes are reported once, as they happen.
 */
import type { Clock } from '../core/clock.js';
import type { FleetSnapshot, PodView } from '../fleet/types.js';
import { decideReadiness, type Latch, type ReadinessPolicy, type Verdict } from './policy.js';

export interface Transition {
  readonly from: Verdict | undefined;
  readonly to: Verdict;
  /** The latch was dropped because the daemon process changed (or vanished without a start time). */
  readonly latchReset: boolean;
}

export class ProbeState {
  private latch: Latch | undefined;
  private last: Verdict | undefined;
  /** How many times readiness flipped, by direction. */
  readonly flips = { ready: 0, unready: 0 };

  constructor(
    private readonly target: string,
    private readonly policy: ReadinessPolicy,
    private readonly snapshot: () => FleetSnapshot,
    private readonly clock: Clock,
    private readonly onTransition: (t: Transition) => void = () => undefined,
  ) {}

  /** Evaluates now: called after every report, on every tick and on every /readyz. */
  evaluate(): Verdict {
    const view = this.view();
    const before = this.latch;
    const d = decideReadiness(view, this.policy, before, this.clock.now());
    this.latch = d.latch;
    const prev = this.last;
    this.last = d.verdict;
    const latchReset = before !== undefined && d.latch === undefined;
    if (prev === undefined || prev.ready !== d.verdict.ready || prev.reason !== d.verdict.reason || latchReset) {
      if (prev !== undefined && prev.ready !== d.verdict.ready) this.flips[d.verdict.ready ? 'ready' : 'unready']++;
      try {
        this.onTransition({ from: prev, to: d.verdict, latchReset });
      } catch {
        // A log line must never break readiness.
      }
    }
    return d.verdict;
  }

  view(): PodView | undefined {
    return this.snapshot().pods.get(this.target);
  }

  latched(): Latch | undefined {
    return this.latch;
  }
}
