import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { failReport, metrics, newTracker, okReport, OLD, T0, type PluginSeries } from '../../test/support/fleet.js';
import { decideReadiness, evaluate, type Latch, type ReadinessPolicy } from './policy.js';
import type { PodView } from '../fleet/types.js';

const POD = '10.0.0.1:5002';
const DEFAULT: ReadinessPolicy = { require: [], minRunning: undefined, failed: 'ignore', latch: true };

/** The pod view the gate's own tracker builds from one report (process started long ago unless told). */
function view(plugins: Record<string, PluginSeries>, start: number | undefined = OLD): PodView {
  const { tracker } = newTracker([POD]);
  tracker.ingest(okReport(POD, T0, metrics(plugins, start)));
  return tracker.snapshot().pods.get(POD)!;
}

const running = { g: 1 };
const launching = { g: 0.5 };
const gaveUp = { g: 0, f: 15 };
const retrying = { g: 0, f: 2 };

describe('probe readiness policy', () => {
  const table: Array<[string, Record<string, PluginSeries>, Partial<ReadinessPolicy>, boolean, string]> = [
    ['all running', { 'a/x': running, 'a/y': running }, {}, true, 'ready'],
    ['one launching', { 'a/x': running, 'a/y': launching }, {}, false, 'plugins_starting'],
    ['one retrying', { 'a/x': running, 'a/y': retrying }, {}, false, 'plugins_starting'],
    ['one gave up, failed ignore', { 'a/x': running, 'a/y': gaveUp }, {}, true, 'ready'],
    ['one gave up, failed block', { 'a/x': running, 'a/y': gaveUp }, { failed: 'block' }, false, 'plugins_failed'],
    ['no plugins, past start-up', {}, {}, true, 'ready'],
    ['required running, others launching', { 'a/x': running, 'a/y': launching }, { require: ['a/x'] }, true, 'ready'],
    ['required launching', { 'a/x': running, 'a/y': launching }, { require: ['a/y'] }, false, 'required_not_running'],
    ['required not reported', { 'a/x': running }, { require: ['a/z'] }, false, 'required_not_running'],
    ['required gave up', { 'a/x': running, 'a/y': gaveUp }, { require: ['a/y'] }, false, 'required_failed'],
    ['min-running met', { 'a/x': running, 'a/y': launching }, { minRunning: 0.5 }, true, 'ready'],
    ['min-running not met', { 'a/x': running, 'a/y': launching }, { minRunning: 0.6 }, false, 'too_few_running'],
    ['min-running: a given-up plugin leaves the count (ignore)', { 'a/x': running, 'a/y': gaveUp }, { minRunning: 1 }, true, 'ready'],
    ['min-running: a given-up plugin blocks (block)', { 'a/x': running, 'a/y': gaveUp }, { minRunning: 0.5, failed: 'block' }, false, 'plugins_failed'],
    ['require and min-running both must hold', { 'a/x': running, 'a/y': launching, 'a/z': launching }, { require: ['a/x'], minRunning: 0.5 }, false, 'too_few_running'],
  ];
  for (const [name, plugins, policy, ready, reason] of table) {
    it(name, () => {
      const v = evaluate(view(plugins), { ...DEFAULT, ...policy });
      assert.equal(v.reason, reason, v.message);
      assert.equal(v.ready, ready);
      if (!ready) assert.ok(v.missing.length > 0, 'an unready verdict names what is missing');
    });
  }

  it('a young daemon is in start-up even with every reported plugin running (queued plugins have no series)', () => {
    const v = evaluate(view({ 'a/x': running }, T0 - 10_000), DEFAULT);
    assert.equal(v.reason, 'daemon_in_startup');
    assert.equal(v.missing[0]?.state, 'daemon');
    // --require does not wait for start-up: that is its point.
    assert.equal(evaluate(view({ 'a/x': running }, T0 - 10_000), { ...DEFAULT, require: ['a/x'] }).ready, true);
    // min-running with nothing reported yet waits for start-up to end.
    assert.equal(evaluate(view({}, T0 - 10_000), { ...DEFAULT, minRunning: 0.5 }).reason, 'daemon_in_startup');
  });

  it('the latch is set for the daemon process and rides over plugin trouble of that process only', () => {
    const ok = decideReadiness(view({ 'a/x': running }), DEFAULT, undefined, T0);
    assert.deepEqual(ok.latch, { processStartMs: OLD, at: T0 });
    const trouble = decideReadiness(view({ 'a/x': launching }), DEFAULT, ok.latch, T0 + 1);
    assert.equal(trouble.verdict.ready, true);
    assert.equal(trouble.verdict.reason, 'latched');
    assert.equal(trouble.latch, ok.latch);
    const restarted = decideReadiness(view({ 'a/x': launching }, T0 - 1_000), DEFAULT, ok.latch, T0 + 2);
    assert.equal(restarted.verdict.ready, false);
    assert.equal(restarted.latch, undefined);
    const off = decideReadiness(view({ 'a/x': launching }), { ...DEFAULT, latch: false }, undefined, T0);
    assert.equal(off.latch, undefined);
  });

  it('an unreachable or stale daemon is unready even when latched; an outage resets a latch without a process start time', () => {
    const { tracker, clock } = newTracker([POD], { unreachableAfter: 1 });
    tracker.ingest(okReport(POD, T0, metrics({ 'a/x': running }, OLD)));
    const latch: Latch = { processStartMs: OLD, at: T0 };
    tracker.ingest(failReport(POD, T0 + 1));
    const down = decideReadiness(tracker.snapshot().pods.get(POD), DEFAULT, latch, T0 + 1);
    assert.equal(down.verdict.reason, 'daemon_unreachable');
    assert.match(down.verdict.message, /status_refused/);
    assert.equal(down.latch, latch, 'kept: the same process may answer again');
    const noStart: Latch = { processStartMs: undefined, at: T0 };
    assert.equal(decideReadiness(tracker.snapshot().pods.get(POD), DEFAULT, noStart, T0 + 1).latch, undefined);

    const fresh = newTracker([POD]);
    fresh.tracker.ingest(okReport(POD, T0, metrics({ 'a/x': running }, OLD)));
    fresh.clock.advance(11_000); // past stale-after, no new report
    const stale = decideReadiness(fresh.tracker.snapshot().pods.get(POD), DEFAULT, latch, fresh.clock.now());
    assert.equal(stale.verdict.reason, 'daemon_stale');
    assert.equal(stale.verdict.ready, false);
    void clock;
  });

  it('a daemon never polled is unready', () => {
    const { tracker } = newTracker([POD]);
    assert.equal(decideReadiness(tracker.snapshot().pods.get(POD), DEFAULT, undefined, T0).verdict.reason, 'daemon_not_read_yet');
    assert.equal(decideReadiness(undefined, DEFAULT, undefined, T0).verdict.ready, false);
  });

  it('the one-line message lists at most five plugins and points to /status for the rest', () => {
    const many: Record<string, PluginSeries> = {};
    for (let i = 0; i < 8; i++) many[`a/p${i}`] = launching;
    const v = evaluate(view(many), DEFAULT);
    assert.equal(v.missing.length, 8);
    assert.match(v.message, /and 3 more \(see \/status\)$/);
  });
});
