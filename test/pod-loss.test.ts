/**
 * Pod loss in milliseconds (README, P2a and *Pod loss*): a simulated pod whose
 * process exits is taken out of routing because it closed the gate's keep-alive
 * status connections and the poll that followed was refused, not because a poll
 * interval came round. In the harness the poll loops' waits never end on their
 * own (`neverPolls`) and daemon time (a ManualScheduler shared with the gate)
 * moves only when a test moves it, so nothing but the connection close can
 * explain what the gate does.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, eventually, type Harness } from './support/gate.js';
import { EnvoyAuthClient, dispatchCheck } from './support/envoy-client.js';
import type { GateRequest } from '../src/decide/types.js';

const PLUGIN = 'loss/target';
/** Far longer than any test: the pod stays down until the fleet is closed. */
const FOREVER = 3_600_000;

const open: Harness[] = [];
after(async () => {
  await Promise.all(open.map((h) => h.close()));
});

async function settledFleet(pods: number, pollOnClose = true): Promise<{ h: Harness; addr: string[] }> {
  const h = await startHarness({ pods, plugins: [{ id: PLUGIN, launchMs: 1_000 }] }, {}, undefined, undefined, { pollOnClose });
  open.push(h);
  await h.gate.whenReady();
  h.sched.advance(2_000);
  const s = await h.poll();
  const addr = h.fleet.pods.map((p) => p.address);
  assert.deepEqual([...(s.plugins.get(PLUGIN)?.readyPods ?? [])].sort(), [...addr].sort(), 'ready on every pod to begin with');
  return { h, addr };
}

function dispatch(plugin: string): GateRequest {
  const hdr = new Map([['x-plugin-id', plugin]]);
  return { method: 'POST', path: '/plugin/t1/dispatch/llm/invoke', header: (n) => hdr.get(n), contextExtensions: new Map(), requestId: undefined };
}

describe('pod loss: an exited pod leaves routing on its connection close, not on a poll interval', () => {
  it('a killed pod is out of every ready set with no poll due and daemon time standing still', async () => {
    const { h, addr } = await settledFleet(3);
    const [p1, p2, p3] = addr as [string, string, string];
    const before = h.sched.now();
    void h.fleet.pods[1]!.restart({ downMs: FOREVER }); // the process dies; nothing listens on its port
    await eventually('pod-2 unreachable', () => h.gate.snapshot().pods.get(p2)?.state === 'unreachable');
    const s = h.gate.snapshot();
    assert.equal(h.sched.now(), before, 'no daemon time passed: no interval poll could have fired');
    assert.equal(s.pods.get(p2)?.lastError?.code, 'status_refused', 'refused at connect: unreachable at once, not after 3 polls');
    assert.equal(s.pods.get(p2)?.consecutiveFailures, 1);
    assert.deepEqual(s.plugins.get(PLUGIN)?.readyPods, [p1, p3].sort());
    assert.deepEqual(s.livePods.map((p) => p.address), [p1, p3].sort());
    for (let i = 0; i < 6; i++) {
      const d = h.gate.service.check(dispatch(PLUGIN), 'grpc').decision;
      assert.ok(d.allow && d.upstream !== p2, `routed to ${d.allow ? d.upstream : 'deny'}`);
    }
  });

  it('the same kill with connection-loss polls off leaves the pod in routing until a poll comes (the control)', async () => {
    const { h, addr } = await settledFleet(2, false);
    const p2 = addr[1]!;
    void h.fleet.pods[1]!.restart({ downMs: FOREVER });
    // Long enough for the close-triggered path to have run many times over (it takes a few ms).
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(h.gate.snapshot().pods.get(p2)?.state, 'live', 'nothing but the connection close could have removed it');
    const s = await h.poll();
    assert.equal(s.pods.get(p2)?.state, 'unreachable', 'the next poll is refused: unreachable at once');
    assert.equal(s.pods.get(p2)?.lastError?.code, 'status_refused');
  });

  it('a pod back at the same address is a new process: out of routing until its plugins run again', async () => {
    const { h, addr } = await settledFleet(2);
    const p2 = addr[1]!;
    const oldStart = h.gate.snapshot().pods.get(p2)?.startedAt;
    const restarted = h.fleet.pods[1]!.restart({ downMs: 5_000 });
    await eventually('pod-2 unreachable', () => h.gate.snapshot().pods.get(p2)?.state === 'unreachable');
    h.sched.advance(5_000); // back cold: a new process, plugins launching again
    await restarted;
    assert.equal(h.fleet.pods[1]!.address, p2, 'same address');
    let s = await h.poll();
    const pod = s.pods.get(p2)!;
    assert.equal(pod.state, 'live');
    assert.ok(pod.startedAt !== undefined && oldStart !== undefined && pod.startedAt > oldStart, 'new process start time');
    assert.equal(pod.inStartup, true, 'start-up rules again');
    assert.equal(pod.plugins.get(PLUGIN)?.state, 'starting');
    assert.deepEqual(s.plugins.get(PLUGIN)?.readyPods, [addr[0]]);
    h.sched.advance(1_000);
    s = await h.poll();
    assert.deepEqual([...(s.plugins.get(PLUGIN)?.readyPods ?? [])].sort(), [...addr].sort(), 'back in routing once its plugin runs');
  });

  it('under load: no Check is routed to a killed pod later than 100 ms after its exit', async (t) => {
    const { h, addr } = await settledFleet(3);
    const victim = addr[1]!;
    const client = new EnvoyAuthClient(h.gate.grpcPort);
    /*
     * The measurement, made to hold on a loaded 2-core machine:
     * - exit: taken just before the pod is killed (the kill completes after it),
     *   so the window can only come out longer than it is;
     * - routed: when the client got the answer naming the victim (the decision
     *   was made before that), again the late side;
     * - time this process did not run at all (the machine busy elsewhere: event
     *   loop gaps over 10 ms, seen by a 1 ms timer chain) is not the gate's
     *   reaction time and is left out of the 100 ms. The raw window must still
     *   be bounded (5 s): no interval poll ever comes in this harness.
     * bench/pod-loss.ts reports the raw figure.
     */
    const ticks: number[] = [];
    let ticking = true;
    const tick = (): void => {
      ticks.push(performance.now());
      if (ticking) setTimeout(tick, 1).unref();
    };
    tick();
    const routed: { at: number; upstream: string | undefined }[] = [];
    let running = true;
    let errors = 0;
    const worker = async (): Promise<void> => {
      while (running) {
        try {
          const out = await client.check(dispatchCheck(PLUGIN));
          routed.push({ at: performance.now(), upstream: out.code === 0 ? out.metadata['upstream_host'] : undefined });
        } catch {
          errors++;
        }
      }
    };
    const workers = Array.from({ length: 8 }, () => worker());
    try {
      await new Promise((r) => setTimeout(r, 300));
      const routedBefore = routed.filter((r) => r.upstream === victim).length;
      const exitAt = performance.now();
      void h.fleet.pods[1]!.restart({ downMs: FOREVER });
      await eventually('victim unreachable', () => h.gate.snapshot().pods.get(victim)?.state === 'unreachable', 10_000);
      await new Promise((r) => setTimeout(r, 300));
      running = false;
      await Promise.all(workers);
      ticking = false;

      assert.equal(errors, 0, 'every Check answered');
      assert.ok(routedBefore > 0, 'the victim was in rotation before its exit');
      const after = routed.filter((r) => r.at >= exitAt);
      assert.ok(after.length > 50, `load went on after the exit (${after.length} Checks)`);
      const toVictim = after.filter((r) => r.upstream === victim);
      const lastAt = toVictim.length === 0 ? exitAt : toVictim[toVictim.length - 1]!.at;
      const raw = lastAt - exitAt;
      let stalled = 0;
      for (let i = 1; i < ticks.length; i++) {
        const from = Math.max(ticks[i - 1]!, exitAt);
        const to = Math.min(ticks[i]!, lastAt);
        if (to > from && ticks[i]! - ticks[i - 1]! > 10) stalled += to - from;
      }
      const window = raw - stalled;
      const detail = `raw window ${raw.toFixed(1)} ms, of which ${stalled.toFixed(1)} ms the process did not run; ${toVictim.length} Checks routed to it after exit, ${after.length} in all`;
      t.diagnostic(detail);
      assert.ok(raw < 5_000, `bounded even counting the stalls: ${detail}`);
      assert.ok(window <= 100, `no Check routed to the exited pod later than 100 ms after its exit: ${detail}`);
      // Every Check answered after the gate saw the loss went elsewhere, and all pods left are used.
      const lateTargets = new Set(after.filter((r) => r.at > lastAt).map((r) => r.upstream));
      assert.deepEqual([...lateTargets].sort(), [addr[0], addr[2]].sort());
    } finally {
      running = false;
      ticking = false;
      await Promise.all(workers);
      client.close();
    }
  });
});
