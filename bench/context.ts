import type { Report } from './lib/report.js';

/** What every benchmark gets from the runner. */
export interface BenchContext {
  readonly report: Report;
  /** Short durations and few rounds: proves the benchmark runs, the figures are rough. */
  readonly quick: boolean;
  /** A private scratch directory, removed at exit. */
  readonly tmp: string;
}
