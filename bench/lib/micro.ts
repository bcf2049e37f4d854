/**
 * In-process timing of a synchronous operation: warm up (so the JIT has
 * optimised it), size a round to about `roundMs`, then time several rounds and
 * keep the per-op time of each. The body returns a number that is folded into
 * a sink, so the work cannot be optimised away.
 */
import { median } from './report.js';

export interface MicroOptions {
  readonly warmupMs: number;
  readonly roundMs: number;
  readonly rounds: number;
}

export interface MicroResult {
  /** ns per op of each round, in round order. */
  readonly nsPerOp: readonly number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Ops per round. */
  readonly opsPerRound: number;
}

let sink = 0;
/** Read once at the end so the sink stays observable. */
export function sinkValue(): number {
  return sink;
}

/** `body(n)` performs n operations and returns any number derived from them. */
export function micro(body: (n: number) => number, opts: MicroOptions): MicroResult {
  // Warm-up: grow n until one call lasts a few ms, keep calling until warmupMs is spent.
  let n = 64;
  const warmEnd = performance.now() + opts.warmupMs;
  let perOpMs = 0;
  while (performance.now() < warmEnd || perOpMs === 0) {
    const t0 = performance.now();
    sink ^= body(n) | 0;
    const dt = performance.now() - t0;
    perOpMs = dt / n;
    if (dt < 5 && n < 1 << 24) n *= 2;
  }
  const opsPerRound = Math.max(1, Math.round(opts.roundMs / Math.max(perOpMs, 1e-7)));
  const ns: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const t0 = process.hrtime.bigint();
    sink ^= body(opsPerRound) | 0;
    const dt = Number(process.hrtime.bigint() - t0);
    ns.push(dt / opsPerRound);
  }
  return { nsPerOp: ns, median: median(ns), min: Math.min(...ns), max: Math.max(...ns), opsPerRound };
}
