import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { failReport, metrics, newTracker, okReport, OLD, T0, trackerDefaults } from '../../test/support/fleet.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { GateError } from '../core/errors.js';
import { FleetTracker, QUIET_PUBLISH_MS } from './tracker.js';
import type { FleetChange } from './tracker.js';
import type { FleetSnapshot } from './types.js';

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

  it('a snapshot listener that throws is reported and neither breaks the view nor the other listeners', () => {
    const errors: GateError[] = [];
    const tracker = new FleetTracker(trackerDefaults, new ManualScheduler(T0), (e) => errors.push(e));
    let seen = 0;
    tracker.onSnapshot(() => {
      throw new Error('listener bug');
    });
    tracker.onSnapshot(() => seen++);
    tracker.setPods([A]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(seen, 2);
    assert.equal(errors.length, 2);
    assert.equal(errors[0]?.code, 'internal');
    assert.equal(errors[0]?.message, 'listener bug');
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'live');
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
      // Timeouts and resets may be a passing hiccup: they count.
      tracker.ingest(failReport(B, clock.now(), i === 1 ? 'status_reset' : 'status_timeout'));
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

  it('P2a a poll refused at connect makes the pod unreachable at once, whatever the other sources did', () => {
    const { tracker, clock } = newTracker([A, B]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    clock.advance(500);
    // Metrics refused, health timed out: something refused, so nothing listens there.
    const refused = failReport(B, clock.now(), 'status_refused');
    tracker.ingest({ ...refused, health: failReport(B, clock.now(), 'status_timeout').health! });
    let snap = tracker.snapshot();
    assert.equal(snap.pods.get(B)?.state, 'unreachable');
    assert.equal(snap.pods.get(B)?.consecutiveFailures, 1);
    assert.equal(snap.pods.get(B)?.lastError?.code, 'status_refused');
    assert.deepEqual(snap.plugins.get('a/x')?.readyPods, [A]);
    // A later timeout (the node is gone too) does not make it reachable again.
    clock.advance(500);
    tracker.ingest(failReport(B, clock.now(), 'status_timeout'));
    snap = tracker.snapshot();
    assert.equal(snap.pods.get(B)?.state, 'unreachable');
    assert.equal(snap.pods.get(B)?.lastError?.code, 'status_timeout');
    // A partial answer is an answer: a refused source there changes nothing.
    clock.advance(500);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
    const partial = okReport(A, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD));
    tracker.ingest({ ...partial, health: failReport(A, clock.now(), 'status_refused').health! });
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'live');
  });

  it('P2b a pod that refused connections and answers again is a new process: new start time, start-up rules again', () => {
    const { tracker, clock } = newTracker([A], { startupGraceMs: 60_000 });
    // No process_start_time_seconds: the gate knows the process only by when it first answered.
    const ready = { ready: false, reason: 'plugins_starting', detail: { missing: [], failed: [], expected: 1, running: 0, maxRetries: 3 } };
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, undefined), ready));
    clock.advance(120_000);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 }, 'a/y': { g: 0, f: 4 } }, undefined)));
    let pod = tracker.snapshot().pods.get(A)!;
    assert.equal(pod.inStartup, false, 'past start-up-grace, nothing launching');
    assert.equal(pod.plugins.get('a/y')?.state, 'failed', 'the learned limit of 3 applies');
    tracker.ingest(failReport(A, clock.now(), 'status_refused'));
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'unreachable');
    clock.advance(3_000);
    const back = clock.now();
    tracker.ingest(okReport(A, back, metrics({ 'a/x': { g: 0.5 }, 'a/y': { g: 0, f: 4 } }, undefined)));
    pod = tracker.snapshot().pods.get(A)!;
    assert.equal(pod.state, 'live');
    assert.equal(pod.consecutiveFailures, 0);
    assert.equal(pod.inStartup, true, 'a new process is in start-up again (S1 from the time it came back)');
    assert.equal(pod.plugins.get('a/x')?.state, 'starting');
    assert.equal(pod.plugins.get('a/y')?.state, 'starting', 'the old process\'s retry limit is forgotten (default 15)');
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, []);
    clock.advance(60_001);
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 0.5 }, 'a/y': { g: 0, f: 4 } }, undefined)));
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, true, 'past the grace from its return, still launching a/x');
    // A timeout, unlike a refusal, proves no exit: the same process keeps what was learned.
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 } }, T0)));
    tracker.ingest(failReport(A, clock.now(), 'status_timeout'));
    tracker.ingest(okReport(A, clock.now(), metrics({ 'a/x': { g: 1 } }, T0)));
    assert.equal(tracker.snapshot().pods.get(A)?.startedAt, T0);
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
    assert.equal(tracker.snapshot().pods.get(A)?.plugins.size, 0);
  });

  it('D0 is about the first round only: a pod discovered later is stale until read, and the gate stays complete', () => {
    const { tracker } = newTracker([A]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().complete, true);
    tracker.setPods([A, B]);
    assert.equal(tracker.snapshot().complete, true, 'a new pod (scale-up, rolling update) does not make the gate deny everything');
    assert.equal(tracker.snapshot().pods.get(B)?.state, 'stale');
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [A]);
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

describe('FleetTracker: the plugin index kept up to date report by report', () => {
  /** The index by its definition: every plugin any pod reports; the live pods where it is ready, starting or failed, in address order. */
  function expected(snap: FleetSnapshot): unknown {
    const out = new Map<string, { ready: string[]; starting: string[]; failed: string[] }>();
    for (const address of [...snap.pods.keys()].sort()) {
      const pod = snap.pods.get(address)!;
      for (const [id, p] of pod.plugins) {
        let e = out.get(id);
        if (e === undefined) out.set(id, (e = { ready: [], starting: [], failed: [] }));
        if (pod.state === 'live' && p.state !== 'absent') e[p.state].push(address);
      }
    }
    return [...out].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }
  function actual(snap: FleetSnapshot): unknown {
    return [...snap.plugins.values()]
      .map((pv) => [pv.id, { ready: [...pv.readyPods], starting: [...pv.startingPods], failed: [...pv.failedPods] }] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  it('equals an index built from scratch after any sequence of reports, failures, removals and returns', () => {
    const pods = ['10.0.0.1:5002', '10.0.0.2:5002', '10.0.0.3:5002', '10.0.0.4:5002', '10.0.0.5:5002'];
    const ids = ['a/p1', 'a/p2', 'b/p3', 'b/p4', 'c/p5', 'c/p6'];
    const series = fc.oneof(fc.constant(undefined), fc.record({ g: fc.constantFrom(0, 0.5, 1), f: fc.constantFrom(0, 2, 20) }));
    const step = fc.oneof(
      fc.record({ kind: fc.constant('ok' as const), pod: fc.nat(pods.length - 1), young: fc.boolean(), plugins: fc.array(series, { minLength: ids.length, maxLength: ids.length }) }),
      fc.record({ kind: fc.constant('fail' as const), pod: fc.nat(pods.length - 1) }),
      fc.record({ kind: fc.constant('discover' as const), keep: fc.subarray(pods) }),
      fc.record({ kind: fc.constant('time' as const), ms: fc.constantFrom(1_000, 11_000, 400_000) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const { tracker, clock } = newTracker(pods);
        for (const s of steps) {
          const now = clock.now();
          if (s.kind === 'ok') {
            const ps: Record<string, { g?: number; f?: number }> = {};
            s.plugins.forEach((p, j) => {
              if (p !== undefined) ps[ids[j]!] = p.f === 0 ? { g: p.g } : p;
            });
            tracker.ingest(okReport(pods[s.pod]!, now, metrics(ps, s.young ? now - 1_000 : OLD)));
          } else if (s.kind === 'fail') tracker.ingest(failReport(pods[s.pod]!, now));
          else if (s.kind === 'discover') tracker.setPods(s.keep);
          else {
            clock.advance(s.ms);
            tracker.tick();
          }
          assert.deepEqual(actual(tracker.snapshot()), expected(tracker.snapshot()));
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('FleetTracker: a pod with no new report still changes with time', () => {
  // Another pod's report builds a new snapshot; the silent pod's time-based states must be current in it.
  it('goes stale once its data passes stale-after', () => {
    const { tracker, clock } = newTracker([A, B]);
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    clock.advance(10_001);
    tracker.ingest(okReport(B, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'stale');
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [B]);
  });

  it('leaves start-up when startup-grace has passed', () => {
    const { tracker, clock } = newTracker([A, B], { staleAfterMs: 600_000 });
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, T0 - 1_000)));
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, true);
    clock.advance(59_000);
    tracker.ingest(okReport(B, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.inStartup, false);
    assert.deepEqual(tracker.snapshot().startupPods, []);
  });

  it('gives a plugin up once its retry has stalled for retry-stall', () => {
    const { tracker, clock } = newTracker([A, B], { staleAfterMs: 3_600_000 });
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 0, f: 3 } }, OLD)));
    tracker.ingest(okReport(B, T0, metrics({}, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.plugins.get('a/x')?.state, 'starting');
    clock.advance(300_001);
    tracker.ingest(okReport(B, clock.now(), metrics({}, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.plugins.get('a/x')?.state, 'failed');
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.failedPods, [A]);
  });

  describe('quiet reports (a settled pod answering the same plugin families)', () => {
    const settled = (cfg: Partial<typeof trackerDefaults> = {}): { tracker: FleetTracker; clock: ManualScheduler; m: ReturnType<typeof metrics> } => {
      const clock = new ManualScheduler(T0);
      const tracker = new FleetTracker({ ...trackerDefaults, ...cfg }, clock, undefined, clock);
      tracker.setPods([A, B]);
      const m = metrics({ 'a/x': { g: 1 } }, OLD);
      tracker.ingest(okReport(A, clock.now(), m));
      tracker.ingest(okReport(B, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
      return { tracker, clock, m };
    };

    it('are published within QUIET_PUBLISH_MS, together, instead of one snapshot each', () => {
      const { tracker, clock, m } = settled();
      const before = tracker.snapshot();
      clock.advance(2000);
      tracker.ingest(okReport(A, clock.now(), m));
      tracker.ingest(okReport(A, clock.now(), m));
      assert.equal(tracker.snapshot(), before, 'nothing a decision reads changed: no new snapshot yet');
      clock.advance(QUIET_PUBLISH_MS);
      const after = tracker.snapshot();
      assert.equal(after.version, before.version + 1, 'one build for both reports');
      assert.equal(after.pods.get(A)?.freshUntil, T0 + 2000 + trackerDefaults.staleAfterMs);
      assert.equal(after.pods.get(A)?.lastReportAt, T0 + 2000);
    });

    it('a report that changes anything is published at once, and carries the waiting quiet ones with it', () => {
      const { tracker, clock, m } = settled();
      clock.advance(1000);
      tracker.ingest(okReport(A, clock.now(), m));
      const v = tracker.snapshot().version;
      tracker.ingest(okReport(B, clock.now(), metrics({ 'a/x': { g: 0, f: 1 } }, OLD)));
      const snap = tracker.snapshot();
      assert.equal(snap.version, v + 1);
      assert.equal(snap.pods.get(A)?.lastReportAt, T0 + 1000, "A's quiet report is in the same build");
      assert.notEqual(snap.pods.get(B)?.plugins.get('a/x')?.state, 'ready');
      clock.advance(QUIET_PUBLISH_MS);
      assert.equal(tracker.snapshot(), snap, 'the deferred publish was cancelled: nothing left to publish');
    });

    it('a failed poll, a refused pod or new metrics are never deferred', () => {
      const { tracker, clock } = settled();
      const v = tracker.snapshot().version;
      clock.advance(500);
      tracker.ingest(failReport(A, clock.now(), 'status_refused'));
      assert.equal(tracker.snapshot().version, v + 1);
      assert.equal(tracker.snapshot().pods.get(A)?.state, 'unreachable');
    });

    it('never waits past half of what remains of the pod\'s freshness', () => {
      // stale-after 400 ms: a report 300 ms after the last leaves 100 ms of freshness, so it is published within 50 ms.
      const { tracker, clock, m } = settled({ staleAfterMs: 400 });
      clock.advance(300);
      const v = tracker.snapshot().version;
      tracker.ingest(okReport(A, clock.now(), m));
      clock.advance(49);
      assert.equal(tracker.snapshot().version, v);
      clock.advance(1);
      assert.equal(tracker.snapshot().version, v + 1);
      assert.equal(tracker.snapshot().pods.get(A)?.freshUntil, T0 + 300 + 400);
      assert.equal(tracker.snapshot().pods.get(A)?.state, 'live');
    });

    it('without a scheduler for deferral (the probe, tests) every report is published at once', () => {
      const { tracker, clock } = newTracker([A]);
      const m = metrics({ 'a/x': { g: 1 } }, OLD);
      tracker.ingest(okReport(A, clock.now(), m));
      const v = tracker.snapshot().version;
      clock.advance(1000);
      tracker.ingest(okReport(A, clock.now(), m));
      assert.equal(tracker.snapshot().version, v + 1);
    });
  });
});
