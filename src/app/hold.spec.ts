import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HoldQueue, type Waiter } from './hold.js';
import { GateService, type CheckResult } from './service.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { FleetTracker } from '../fleet/tracker.js';
import { metrics, okReport, OLD, T0, trackerDefaults } from '../../test/support/fleet.js';
import type { GateRequest } from '../decide/types.js';

const A = '10.0.0.1:5002';
const B = '10.0.0.2:5002';

function req(plugin: string): GateRequest {
  const h = new Map([['x-plugin-id', plugin]]);
  return { method: 'POST', path: '/plugin/t1/dispatch/llm/invoke', header: (n) => h.get(n), contextExtensions: new Map(), requestId: undefined };
}

describe('HoldQueue', () => {
  it('expires waiters in deadline order with one timer, and forgets removed ones', () => {
    const sched = new ManualScheduler(T0);
    const expired: string[] = [];
    const q = new HoldQueue<string>(sched, (w) => expired.push(w.payload));
    const ws: Waiter<string>[] = [];
    for (const [p, at] of [['a', 500], ['b', 100], ['c', 300], ['d', 200], ['e', 400]] as const) ws.push(q.add('x/p', T0, T0 + at, p));
    assert.equal(sched.pending(), 1, 'one timer for all waiters');
    assert.equal(q.remove(ws[3]!), true);
    assert.equal(q.remove(ws[3]!), false, 'a waiter leaves once');
    sched.advance(350);
    assert.deepEqual(expired, ['b', 'c']);
    assert.equal(q.size, 2);
    sched.advance(1_000);
    assert.deepEqual(expired, ['b', 'c', 'e', 'a']);
    assert.equal(q.size, 0);
    assert.equal(sched.pending(), 0, 'no timer left once empty');
  });

  it('keeps each plugin oldest first and drops empty plugins from its index', () => {
    const sched = new ManualScheduler(T0);
    const q = new HoldQueue<number>(sched, () => undefined);
    const w1 = q.add('x/one', T0, T0 + 10, 1);
    const w2 = q.add('x/one', T0, T0 + 10, 2);
    q.add('x/two', T0, T0 + 10, 3);
    assert.deepEqual(Object.fromEntries(q.countsByPlugin()), { 'x/one': 2, 'x/two': 1 });
    assert.equal(q.oldest('x/one'), w1);
    q.remove(w1);
    assert.equal(q.oldest('x/one'), w2);
    q.remove(w2);
    assert.deepEqual([...q.plugins()], ['x/two']);
  });
});

describe('GateService holding', () => {
  function setup(pods: string[], flags: { maxHeld?: number } = {}) {
    const sched = new ManualScheduler(T0);
    const tracker = new FleetTracker(trackerDefaults, sched);
    tracker.setPods(pods);
    const cfg = {
      unknownPlugin: 'allow' as const,
      retryAfterMs: 5_000,
      failedRetryAfterMs: 60_000,
      dryRun: false,
      decisionLog: 'none' as const,
      holdStartingMs: 30_000,
      maxHeld: flags.maxHeld ?? 10_000,
    };
    const service = new GateService(() => tracker.snapshot(), cfg, sched, undefined, undefined);
    return { sched, tracker, service };
  }
  const starting = metrics({ 'x/p': { g: 0.5 } }, OLD);
  const ready = metrics({ 'x/p': { g: 1 } }, OLD);

  it('holds gate_not_ready until the first complete round, then spreads a burst over every ready pod', async () => {
    const { tracker, service } = setup([A, B]);
    tracker.ingest(okReport(A, T0, ready));
    assert.equal(tracker.snapshot().complete, false);
    const answers: CheckResult[] = [];
    for (let i = 0; i < 6; i++) {
      const r = service.checkOrHold(req('x/p'), 'grpc', undefined, (a) => answers.push(a));
      assert.ok('held' in r, 'held while the gate is not ready');
    }
    tracker.ingest(okReport(B, T0, ready));
    service.snapshotChanged();
    assert.equal(answers.length, 6);
    const ups = answers.map((a) => (a.decision.allow ? a.decision.upstream : 'deny'));
    assert.deepEqual(
      [A, B].map((p) => ups.filter((u) => u === p).length),
      [3, 3],
    );
    assert.ok(answers.every((a) => a.decision.reason === 'plugin_ready_after_hold' && a.decision.heldMs === 0));
  });

  it('answers thousands released at once in slices, oldest first, without holding up the caller', async () => {
    const { tracker, service } = setup([A]);
    tracker.ingest(okReport(A, T0, starting));
    const order: number[] = [];
    for (let i = 0; i < 1_000; i++) service.checkOrHold(req('x/p'), 'http', undefined, () => order.push(i));
    assert.equal(service.heldCount(), 1_000);
    tracker.ingest(okReport(A, T0, ready));
    service.snapshotChanged();
    assert.ok(order.length > 0 && order.length < 1_000, `a first slice only (${order.length})`);
    for (let i = 0; i < 20 && order.length < 1_000; i++) await new Promise((r) => setImmediate(r));
    assert.equal(order.length, 1_000);
    assert.deepEqual(order, [...order].sort((a, b) => a - b), 'oldest first');
    assert.equal(service.heldCount(), 0);
  });

  it('a snapshot that leaves a plugin starting touches nobody; max-held 0 never holds', () => {
    const { tracker, service } = setup([A]);
    tracker.ingest(okReport(A, T0, starting));
    let answered = 0;
    service.checkOrHold(req('x/p'), 'grpc', undefined, () => answered++);
    tracker.ingest(okReport(A, T0 + 1, starting));
    service.snapshotChanged();
    assert.equal(answered, 0);
    assert.equal(service.heldCount(), 1);

    const none = setup([A], { maxHeld: 0 });
    none.tracker.ingest(okReport(A, T0, starting));
    const r = none.service.checkOrHold(req('x/p'), 'grpc', undefined, () => undefined);
    assert.ok(!('held' in r) && r.decision.reason === 'plugin_starting');
  });
});
