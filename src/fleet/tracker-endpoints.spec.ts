/** What discovery says of an endpoint (Kubernetes): pod names, and terminating pods out of routing at once. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { metrics, newTracker, okReport, OLD, T0 } from '../../test/support/fleet.js';
import type { Endpoint } from '../discovery/types.js';
import type { FleetChange } from './tracker.js';

const A = '10.0.0.1:5002';
const B = '10.0.0.2:5002';
const ep = (podName: string, more: Partial<Endpoint> = {}): Endpoint => ({ podName, ready: true, serving: true, terminating: false, ...more });

describe('FleetTracker with endpoint information', () => {
  it('P4a a terminating endpoint makes the pod terminating: out of every ready set and the live list at once, still shown', () => {
    const { tracker, clock } = newTracker([]);
    tracker.setPods([A, B], undefined, new Map([[A, ep('daemon-0')], [B, ep('daemon-1')]]));
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    tracker.ingest(okReport(B, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [A, B]);
    const changes: FleetChange[] = [];
    tracker.onSnapshot((_s, c) => changes.push(...c));

    clock.advance(100);
    tracker.setPods([A, B], undefined, new Map([[A, ep('daemon-0')], [B, ep('daemon-1', { ready: false, terminating: true })]]));
    const snap = tracker.snapshot();
    assert.equal(snap.pods.get(B)?.state, 'terminating');
    assert.deepEqual(snap.plugins.get('a/x')?.readyPods, [A]);
    assert.deepEqual(snap.livePods.map((p) => p.address), [A]);
    assert.deepEqual(snap.pods.get(B)?.endpoint, { podName: 'daemon-1', ready: false, serving: true, terminating: true });
    assert.deepEqual(changes, [{ kind: 'pod', pod: B, name: 'daemon-1', from: 'live', to: 'terminating', error: undefined }]);

    // Its daemon still answers while it drains: reports do not bring it back.
    tracker.ingest(okReport(B, clock.now(), metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(B)?.state, 'terminating');
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [A]);
    // Then it leaves the slices: removed.
    tracker.setPods([A], undefined, new Map([[A, ep('daemon-0')]]));
    assert.equal(tracker.snapshot().pods.get(B)?.state, 'removed');
  });

  it('names pods from discovery; a name or condition change alone rebuilds the view, ready/serving do not route', () => {
    const { tracker } = newTracker([]);
    tracker.setPods([A], undefined, new Map([[A, ep('daemon-0', { ready: false, serving: false })]]));
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    let pod = tracker.snapshot().pods.get(A)!;
    assert.equal(pod.name, 'daemon-0');
    assert.equal(pod.state, 'live', 'a not-ready endpoint is still routed to: the gate reads the daemon itself');
    assert.deepEqual(tracker.snapshot().plugins.get('a/x')?.readyPods, [A]);
    tracker.setPods([A], undefined, new Map([[A, ep('daemon-0', { ready: true, serving: true })]]));
    pod = tracker.snapshot().pods.get(A)!;
    assert.equal(pod.endpoint?.ready, true);
    assert.equal(pod.freshUntil, T0 + 10_000, 'data kept: same pod');
  });

  it('another pod at a known address starts over: nothing learned about the old pod is trusted', () => {
    const { tracker } = newTracker([]);
    tracker.setPods([A], undefined, new Map([[A, ep('daemon-0')]]));
    tracker.ingest(okReport(A, T0, metrics({ 'a/x': { g: 1 } }, OLD)));
    assert.equal(tracker.snapshot().pods.get(A)?.state, 'live');
    tracker.setPods([A], undefined, new Map([[A, ep('daemon-7')]]));
    const pod = tracker.snapshot().pods.get(A)!;
    assert.equal(pod.name, 'daemon-7');
    assert.equal(pod.state, 'stale', 'not read yet');
    assert.equal(tracker.snapshot().plugins.get('a/x')?.readyPods.length ?? 0, 0);
  });

  it('without endpoint information (static, DNS) pods have no name and no endpoint', () => {
    const { tracker } = newTracker([A]);
    assert.equal(tracker.snapshot().pods.get(A)?.name, undefined);
    assert.equal(tracker.snapshot().pods.get(A)?.endpoint, undefined);
  });
});
