/**
 * The tracker builds each snapshot from caches warmed by earlier builds; the
 * decision must not be able to tell. A tracker that saw every report as it came
 * (and ticked in between) decides exactly like one that saw the same reports
 * and built its first snapshot at the moment of asking.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, type DecideConfig } from '../decide/decide.js';
import type { GateRequest } from '../decide/types.js';
import type { PodReport, ReadyData } from '../status/types.js';
import { failReport, metrics, okReport, type PluginSeries } from '../../test/support/fleet.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { FleetTracker, type TrackerConfig } from './tracker.js';
import type { FleetSnapshot } from './types.js';
import { DEFAULTS } from '../config/config.js';

const T0 = Date.UTC(2026, 0, 1, 12);
const PODS = ['10.0.0.1:5002', '10.0.0.2:5002'];
const PLUGINS = ['a/one', 'a/two', 'a/three'];
/** Shorter bounds than the defaults, so a few random steps cross every one of them. */
const CFG: TrackerConfig = {
  ...DEFAULTS,
  startupGraceMs: 20_000,
  startupMaxMs: 600_000,
  retryStallMs: 60_000,
  staleAfterMs: 30_000,
  unreachableAfter: 2,
};
const DECIDE: DecideConfig = { unknownPlugin: 'deny', retryAfterMs: 5_000, failedRetryAfterMs: 60_000, dryRun: false };

interface Step {
  /** Time from the previous step. */
  readonly waitMs: number;
  readonly pod: number;
  /** A good report, a failed poll, or only a tick of the ticker. */
  readonly kind: 'ok' | 'fail' | 'tick';
  readonly plugins: Record<string, PluginSeries>;
  /** Process start, as an offset before the report (a new value is a restart). */
  readonly startedBeforeMs: number;
  readonly ready: ReadyData | undefined;
}

const series = fc.record(
  {
    g: fc.constantFrom(0, 0.5, 1),
    f: fc.constantFrom(0, 1, 3, 8, 15),
  },
  { requiredKeys: [] },
);
const step: fc.Arbitrary<Step> = fc.record({
  waitMs: fc.constantFrom(0, 1_000, 15_000, 25_000, 45_000, 70_000, 300_000),
  pod: fc.integer({ min: 0, max: PODS.length - 1 }),
  kind: fc.constantFrom('ok', 'ok', 'ok', 'fail', 'tick'),
  // A few fixed profiles repeat often, as a settled daemon's reports do (a series then keeps its
  // last-change time across reports); random ones cover the rest.
  plugins: fc.oneof(
    fc.constantFrom<Record<string, PluginSeries>>({ 'a/one': { g: 0, f: 3 } }, { 'a/one': { g: 0, f: 3 }, 'a/two': { g: 1 } }, { 'a/two': { g: 1 } }, { 'a/one': { g: 0.5, f: 1 } }),
    fc.dictionary(fc.constantFrom(...PLUGINS), series, { maxKeys: PLUGINS.length }),
  ),
  startedBeforeMs: fc.constantFrom(5_000, 100_000, 3_600_000),
  ready: fc.option(
    fc.record({
      ready: fc.boolean(),
      reason: fc.constantFrom('plugins_ready', 'plugins_starting', 'plugins_failed'),
      detail: fc.option(
        fc.record({
          missing: fc.subarray(PLUGINS),
          failed: fc.subarray(PLUGINS),
          expected: fc.constant(undefined),
          running: fc.constant(undefined),
          maxRetries: fc.option(fc.constantFrom(3, 15), { nil: undefined }),
        }),
        { nil: undefined },
      ),
    }),
    // Most daemons have no /ready/check: most reports come without it.
    { nil: undefined, freq: 2 },
  ) as fc.Arbitrary<ReadyData | undefined>,
});

function okStep(waitMs: number, plugins: Record<string, PluginSeries>): Step {
  return { waitMs, pod: 0, kind: 'ok', plugins, startedBeforeMs: 100_000, ready: undefined };
}

function dispatch(plugin: string): GateRequest {
  const h = new Map([['x-plugin-id', plugin]]);
  return { method: 'POST', path: '/plugin/t1/dispatch/llm/invoke', header: (n) => h.get(n), contextExtensions: new Map(), requestId: undefined };
}

/** The reports of a run, with their times, and the time of asking. */
function play(steps: readonly Step[], askAfterMs: number): { reports: { at: number; report: PodReport | undefined }[]; now: number } {
  let t = T0;
  // The process start of each pod stays put until a step restarts it.
  const started = new Map<number, number>();
  const reports: { at: number; report: PodReport | undefined }[] = [];
  for (const s of steps) {
    t += s.waitMs;
    if (s.kind === 'tick') {
      reports.push({ at: t, report: undefined });
      continue;
    }
    const pod = PODS[s.pod]!;
    if (s.kind === 'fail') {
      reports.push({ at: t, report: failReport(pod, t) });
      continue;
    }
    const startedAt = s.startedBeforeMs === 3_600_000 ? T0 - 3_600_000 : (started.get(s.pod) ?? t - s.startedBeforeMs);
    started.set(s.pod, startedAt);
    reports.push({ at: t, report: okReport(pod, t, metrics(s.plugins, startedAt), s.ready) });
  }
  return { reports, now: t + askAfterMs };
}

function decisions(snap: FleetSnapshot, now: number): unknown[] {
  return [...PLUGINS, 'a/unknown'].map((p) => {
    const d = decide(dispatch(p), snap, DECIDE, now, 0);
    return d.allow ? { p, reason: d.reason, upstream: d.upstream } : { p, reason: d.reason, retryAfterS: d.retryAfterS, message: d.message };
  });
}

function podStates(snap: FleetSnapshot): unknown {
  return [...snap.pods.values()].map((p) => ({
    pod: p.address,
    state: p.state,
    inStartup: p.inStartup,
    // By id: a kept map may list its plugins in an earlier report's order, which means nothing.
    plugins: [...p.plugins].map(([id, v]) => [id, v.state, v.why]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  }));
}

describe('incremental snapshot = snapshot rebuilt from scratch', () => {
  it('decides alike at an arbitrary now after any sequence of reports', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 25 }), fc.constantFrom(0, 500, 20_000, 61_000, 400_000), (steps, askAfterMs) => {
        const { reports, now } = play(steps, askAfterMs);

        // Incremental: every report at its time, ticks in between, then a tick at `now`.
        const clock = new ManualScheduler(T0);
        const incremental = new FleetTracker(CFG, clock);
        incremental.setPods(PODS);
        for (const r of reports) {
          clock.set(r.at);
          if (r.report === undefined) incremental.tick();
          else incremental.ingest(r.report);
        }
        clock.set(now);
        incremental.tick();

        // From scratch: the same discovery, the same reports, every snapshot built at `now`.
        const clock2 = new ManualScheduler(T0);
        const scratch = new FleetTracker(CFG, clock2);
        scratch.setPods(PODS);
        clock2.set(now);
        for (const r of reports) if (r.report !== undefined) scratch.ingest(r.report);
        scratch.tick();

        assert.deepEqual(podStates(incremental.snapshot()), podStates(scratch.snapshot()));
        assert.deepEqual(decisions(incremental.snapshot(), now), decisions(scratch.snapshot(), now));
      }),
      {
        numRuns: 1000,
        examples: [
          // A pod between two polls of a plugin waiting for a retry: the retry stalls after the
          // second poll, before the asking; the pod must leave start-up then, not at its next poll.
          [[okStep(0, { 'a/one': { g: 0, f: 3 } }), okStep(45_000, { 'a/one': { g: 0, f: 3 } })], 20_000],
        ],
      },
    );
  });
});
