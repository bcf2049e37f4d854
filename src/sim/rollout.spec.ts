import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SimFleet } from './fleet.js';
import { FleetDiscovery } from './discovery.js';
import { Kubelet, crashPod, rollingUpdate, type Readiness, type RolloutEvent } from './rollout.js';
import { ManualScheduler, advanceUntil } from '../../test/support/manual-scheduler.js';

const PLUGIN = 'roll/x';
const open: SimFleet[] = [];
after(async () => {
  await Promise.all(open.map((f) => f.close()));
});

async function fleetOf(pods: number): Promise<{ fleet: SimFleet; sched: ManualScheduler }> {
  const sched = new ManualScheduler();
  const fleet = new SimFleet({ pods, plugins: [{ id: PLUGIN, launchMs: 10_000 }], scheduler: sched });
  open.push(fleet);
  await fleet.start();
  return { fleet, sched };
}

const steps = (events: readonly RolloutEvent[]): string[] => events.map((e) => `${e.kind} ${e.pod.name}`);
const at = (events: readonly RolloutEvent[], kind: string, pod: string): number => {
  const e = events.find((x) => x.kind === kind && x.pod.name === pod);
  assert.ok(e !== undefined, `no ${kind} of ${pod} in ${steps(events).join(', ')}`);
  return e.at;
};
const running = (fleet: SimFleet, name: string): boolean =>
  fleet.pod(name).snapshot().plugins.some((p) => p.id === PLUGIN && p.phase === 'running');

describe('rollingUpdate (maxSurge 1, maxUnavailable 0)', () => {
  it('surges one cold pod, waits for Ready, terminates one old pod, in turn; with /health/check readiness a pod is Ready before its plugins run', async () => {
    const { fleet, sched } = await fleetOf(2);
    const oldAddresses = fleet.pods.map((p) => p.address);
    const kubelet = new Kubelet(fleet, { periodMs: 1_000 });
    const update = rollingUpdate(fleet, kubelet, { terminationDelayMs: 500, removalDelayMs: 2_000 });
    let finished = false;
    void update.done.then(() => (finished = true));
    await advanceUntil(sched, 'update done', () => finished, 100);
    kubelet.stop();
    const ev = update.events;
    assert.equal(update.error, undefined);
    assert.deepEqual(
      steps(ev).filter((s) => !s.startsWith('exit') && !s.startsWith('removed')),
      ['surge pod-3', 'ready pod-3', 'terminating pod-1', 'surge pod-4', 'ready pod-4', 'terminating pod-2'],
    );
    for (const [fresh, old] of [['pod-3', 'pod-1'], ['pod-4', 'pod-2']] as const) {
      assert.ok(at(ev, 'ready', fresh) <= at(ev, 'terminating', old), `${old} terminates only once ${fresh} is Ready`);
      assert.equal(at(ev, 'exit', old) - at(ev, 'terminating', old), 500, 'exit after the termination delay');
      assert.equal(at(ev, 'removed', old) - at(ev, 'exit', old), 2_000, 'leaves the fleet after the removal delay');
      // The daemon answers /health/check before any plugin runs: Ready while still launching (issue #598).
      assert.ok(at(ev, 'ready', fresh) - at(ev, 'surge', fresh) < 10_000, 'Ready before its 10 s launch finished');
    }
    assert.ok(at(ev, 'terminating', 'pod-1') <= at(ev, 'surge', 'pod-4'), 'one surge at a time');
    assert.deepEqual(fleet.pods.map((p) => p.name), ['pod-3', 'pod-4']);
    assert.ok(fleet.pods.every((p) => !oldAddresses.includes(p.address)), 'new pods, new addresses');
    const refused = await fetch(`http://${oldAddresses[0]}/health/check`).then(
      () => false,
      () => true,
    );
    assert.ok(refused, 'an exited pod refuses connections');
  });

  it('takes its Ready condition from the caller: here, only once the plugin runs on the new pod', async () => {
    const { fleet, sched } = await fleetOf(1);
    const probed: string[] = [];
    const ready: Readiness = async (pod) => {
      probed.push(pod.name);
      return running(fleet, pod.name);
    };
    const kubelet = new Kubelet(fleet, { ready, periodMs: 1_000 });
    const update = rollingUpdate(fleet, kubelet);
    let finished = false;
    void update.done.then(() => (finished = true));
    await advanceUntil(sched, 'update done', () => finished, 250);
    kubelet.stop();
    const ev = update.events;
    assert.deepEqual(steps(ev), ['surge pod-2', 'ready pod-2', 'terminating pod-1', 'exit pod-1', 'removed pod-1']);
    assert.ok(at(ev, 'ready', 'pod-2') - at(ev, 'surge', 'pod-2') >= 10_000, 'not Ready until its plugin ran');
    assert.ok(probed.filter((n) => n === 'pod-2').length >= 10, 'probed every period meanwhile');
  });
});

describe('crashPod', () => {
  it('kills a pod without warning and brings it back cold at the same address; the kubelet sees it unready, then Ready', async () => {
    const { fleet, sched } = await fleetOf(2);
    sched.advance(10_000);
    const pod = fleet.pods[1]!;
    const address = pod.address;
    const startedAt = pod.snapshot().startedAt!;
    const kubelet = new Kubelet(fleet, { periodMs: 1_000, failureThreshold: 3 });
    assert.deepEqual(kubelet.endpoints().map((p) => p.name), ['pod-1', 'pod-2']);
    const crash = crashPod(fleet, pod, { downMs: 10_000 });
    await advanceUntil(sched, 'three failed probes', () => !kubelet.isReady(pod), 500);
    assert.deepEqual(kubelet.endpoints().map((p) => p.name), ['pod-1']);
    let back = false;
    void crash.done.then(() => (back = true));
    await advanceUntil(sched, 'back', () => back && kubelet.isReady(pod), 500);
    kubelet.stop();
    assert.deepEqual(steps(crash.events), ['exit pod-2', 'back pod-2']);
    assert.equal(pod.address, address, 'same address');
    assert.ok(pod.snapshot().startedAt! > startedAt, 'a new process');
    assert.equal(running(fleet, 'pod-2'), false, 'cold: its plugin launches again');
    assert.deepEqual(fleet.pods.map((p) => p.name), ['pod-1', 'pod-2'], 'never left the fleet');
  });
});

describe('FleetDiscovery', () => {
  it('reports a new pod at once and a removed one only after the removal lag', async () => {
    const { fleet, sched } = await fleetOf(1);
    const seen: (readonly string[])[] = [];
    const discovery = new FleetDiscovery(fleet, { removalLagMs: 5_000, scheduler: sched });
    discovery.start((a) => seen.push(a));
    const first = fleet.pods[0]!.address;
    assert.deepEqual(seen, [[first]]);
    const added = await fleet.addPod();
    assert.deepEqual(seen.at(-1), [first, added.address].sort());
    await fleet.removePod(fleet.pods[0]!);
    assert.deepEqual(seen.at(-1), [first, added.address].sort(), 'still listed during the lag');
    sched.advance(4_999);
    assert.equal(seen.length, 2);
    sched.advance(1);
    assert.deepEqual(seen.at(-1), [added.address]);
    await discovery.stop();
    await fleet.removePod(added);
    assert.equal(seen.length, 3, 'nothing after stop');
  });
});
