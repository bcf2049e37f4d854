import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { failReport, metrics, newTracker, okReport, OLD, T0, trackerDefaults } from '../../test/support/fleet.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { GateError } from '../core/errors.js';
import { FleetTracker } from './tracker.js';
import type { FleetChange } from './tracker.js';

const A = '10.0.0.1:5002';
const B = '10.0.0.2:5002';

describe('FleetTracker', () => {
  it('P1 is incomplete until every discovered pod has been polled once, pass or fail', () => {
    const { tracker } = newTracker([A, B]);
    assert.equal(tracker.snapshot().complete, false);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().complete, false);
    assert.equal(tracker.snapshot().pods.get(B)?.state, 'stale'); // never read: no data, never live
    tracker.ingest(failReport(B, T0));
    assert.equal(tracker.snapshot().complete, true);
  });

  it('is not complete before discovery has answered at all; an answered empty discovery is', () => {
    const tracker = new FleetTracker(trackerDefaults, new ManualScheduler(T0));
    assert.equal(tracker.snapshot().complete, false);
    tracker.setPods([]);
    assert.equal(tracker.snapshot().complete, true);
  });

  it('is not complete while discovery has only failed; an empty answer or a good one completes it', () => {
    const tracker = new FleetTracker(trackerDefaults, new ManualScheduler(T0));
    tracker.setPods([], new GateError('discovery_failed', 'SERVFAIL'));
    assert.equal(tracker.snapshot().complete, false);
    assert.equal(tracker.snapshot().discoveryError?.code, 'discovery_failed');
    tracker.setPods([], new GateError('discovery_empty', 'no records'));
    assert.equal(tracker.snapshot().complete, true);
  });

  it('P2 a pod is unreachable after N consecutive failed polls and drops out of every ready set', () => {
    const { tracker, clock } = newTracker([A, B]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [A, B]);
    for (let i = 1; i <= 2; i++) {
      clock.advance(1_000);
      tracker.ingest(failReport(B, clock.now()));
      assert.equal(tracker.snapshot().pods.get(B)?.state, 'live', `after ${i} failures`);
    }
    clock.advance(1_000);
    tracker.ingest(failReport(B, clock.now(), 'status_timeout'));
    const snap = tracker.snapshot();
    assert.equal(snap.pods.get(B)?.state, 'unreachable');
    assert.equal(snap.pods.get(B)?.lastError?.code, 'status_timeout');
    assert.deepEqual(snap.plugins.get('a/x')?.readyPods, [A]);
    assert.deepEqual(snap.livePods.map((p) => p.address), [A]);
  });

  it('P3 a pod with no good metrics within stale-after is stale; decisions also see freshUntil', () => {
    const { tracker, clock } = newTracker([A]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.freshUntil, T0 + 10_000);
    clock.advance(10_001);
    tracker.tick();
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'stale');
    assert.equal(tracker.snapshot().plugins.get('a/x')?.readyPods.length, 0);
  });

  it('P4 a pod gone from discovery is removed, then forgotten after the retention', () => {
    const { tracker, clock } = newTracker([A, B]);
    tracker.ingest(okReport(A, T0, metrics({}, OLD)));
    tracker.ingest(okReport(B, T0, metrics({}, OLD)));
    tracker.setPods([A]);
    assert.equal(tracker.snapshot().pods.get(B)?.state, 'removed');
    assert.deepEqual(tracker.snapshot().livePods.map((p) => p.address), [A]);
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD))); // late answer ignored
    assert.equal(tracker.snapshot().plugins.get('a/x'), undefined);
    clock.advance(300_001);
    tracker.tick();
    assert.equal(tracker.snapshot().pods.has(B), false);
  });

  it('a pod that comes back after removal starts from nothing', () => {
    const { tracker } = newTracker([A]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    tracker.setPods([]);
    tracker.setPods([A]);
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'stale');
    assert.equal(tracker.snapshot().complete, false);
  });

  it('a partial answer (health ok, metrics failing) keeps the pod reachable but lets its plugin data go stale', () => {
    const { tracker, clock } = newTracker([A]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    for (let i = 0; i < 6; i++) {
      clock.advance(2_000);
      const r = okReport(A, clock.now(), metrics({}, OLD));
      tracker.ingest({ ...r, metrics: failReport(A, clock.now(), 'status_timeout').metrics! });
    }
    const pod = tracker.snapshot().pods.get(A)!;
    assert.equal(pod.consecutiveFailures, 0);
    assert.equal(pod.state, 'stale');
    assert.equal(pod.lastError?.code, 'status_timeout');
  });

  it('reports pod and plugin transitions to listeners, and a throwing listener changes nothing', () => {
    const { tracker, clock } = newTracker([A]);
    const seen: FleetChange[] = [];
    tracker.onSnapshot(() => {
      throw new Error('listener bug');
    });
    tracker.onSnapshot((_s, c) => seen.push(...c));
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 0.5 } }, OLD)));
    clock.advance(2_000);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.deepEqual(
      seen.map((c) => (c.kind === 'pod' ? `pod ${c.from}->${c.to}` : `${c.plugin} ${c.from}->${c.to}`)),
      ['pod stale->live', 'a/x absent->starting', 'a/x starting->ready'],
    );
    assert.equal(tracker.snapshot().plugins.get('a/x')?.readyPods.length, 1);
  });

  it('caps the number of plugins it tracks and counts the rest', () => {
    const { tracker } = newTracker([A], { maxPlugins: 2 });
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 }, 'a/y': { g: 1 }, 'a/z': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().plugins.size, 2);
    assert.ok(tracker.droppedPlugins > 0);
  });

  it('S2 a process start time in the future (daemon clock ahead) is unknown: the pod counts from first seen, so startup-max applies', () => {
    const { tracker, clock } = newTracker([A, B]);
    const ahead = T0 + 3_600_000; // the daemon's clock is an hour ahead of the gate's
    // B runs a/y and is past start-up; A reports its start an hour from now, runs a/x and keeps launching a/z.
    const report = (): void => {
      tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 }, 'a/z': { g: 0.5 } }, ahead)));
      tracker.ingest(okReport(B, clock.now(), metrics({ 'a/y': { g: 1 } }, OLD)));
    };
    report();
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, true, 'within startup-grace of first sight');
    for (let t = 0; t < 16; t++) {
      clock.advance(60_000);
      report();
      if (t === 9) assert.equal(tracker.snapshot().pods.get(A)?.inStartup, true, '10 min: still launching, below startup-max');
    }
    // 16 minutes after first sight: past startup-max (15 min), whatever the reported start says.
    const snap = tracker.snapshot();
    assert.equal(snap.pods.get(A)?.inStartup, false);
    assert.deepEqual(snap.startupPods, []);
    assert.equal(snap.pods.get(A)?.plugins.get('a/x')?.state, 'ready');
    // Still ahead later on: the process keeps counting from first sight, never back into start-up.
    clock.set(ahead + 1_000);
    report();
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, false);
  });

  it('a restart whose start time is in the future counts from when the new process was first seen', () => {
    const { tracker, clock } = newTracker([A]);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, false);
    clock.advance(3_600_000);
    tracker.ingest(okReport(A, clock.now(), metrics({}, clock.now() + 600_000)));
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, true, 'new process: in start-up from its first sight');
    clock.advance(61_000);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 } }, clock.now() + 539_000)));
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, false, 'past startup-grace since first sight, nothing launching');
  });

  it('keeps snapshots immutable: an old snapshot does not change when a new one is built', () => {
    const { tracker } = newTracker([A]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    const before = tracker.snapshot();
    tracker.ingest(okReport(A, T0 + 1, metrics({ 'a/x': { g: 0, f: 15 } }, OLD)));
    assert.equal(before.plugins.get('a/x')?.readyPods.length, 1);
    assert.equal(tracker.snapshot().plugins.get('a/x')?.failedPods.length, 1);
    assert.ok(tracker.snapshot().version > before.version);
  });

  it('rebuilds a pod view only when its data or a time-dependent state changes', () => {
    const { tracker, clock } = newTracker([A, B], { staleAfterMs: 55_000 });
    const young = T0 - 10_000; // 10 s old: inside startup-grace (60 s)
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, young)));
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    const a1 = tracker.snapshot().pods.get(A)!;
    assert.equal(a1.inStartup, true);
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(A), a1, 'another pod reporting reuses this pod view');
    clock.advance(51_000); // past the grace: same data, new start-up state
    tracker.ingest(okReport(B, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
    const a2 = tracker.snapshot().pods.get(A)!;
    assert.notEqual(a2, a1);
    assert.equal(a2.inStartup, false);
    assert.equal(a2.state, 'live');
    clock.advance(10_000); // A's last report is now 61 s old: past stale-after
    tracker.tick();
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'stale');
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [B]);
  });

  it('keeps the plugin index whole while no plugin state changes, and rebuilds it when one does', () => {
    const { tracker, clock } = newTracker([A, B]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 }, 'a/y': { g: 1 } }, OLD)));
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    const first = tracker.snapshot();
    clock.advance(2_000);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 }, 'a/y': { g: 1 } }, OLD)));
    const second = tracker.snapshot();
    assert.equal(second.plugins, first.plugins, 'same plugin states: same index');
    assert.notEqual(second.pods.get(A), first.pods.get(A), 'the pod view itself is new (new freshUntil)');
    assert.equal(second.pods.get(A)?.freshUntil, clock.now() + 10_000);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 0, f: 15 }, 'a/y': { g: 1 } }, OLD)));
    const third = tracker.snapshot();
    assert.notEqual(third.plugins, second.plugins);
    assert.deepEqual(third.plugins.get('a/x')?.readyPods, [B]);
    assert.deepEqual(third.plugins.get('a/x')?.failedPods, [A]);
    for (let i = 0; i < 3; i++) tracker.ingest(failReport(B, clock.now()));
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [], 'a pod leaving the live set rebuilds the index');
  });
});
