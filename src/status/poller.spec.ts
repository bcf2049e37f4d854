import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GateError } from '../core/errors.js';
import { Poller, type PollerOptions } from './poller.js';
import type { PodReport } from './types.js';
import { ManualScheduler, settle } from '../../test/support/manual-scheduler.js';

interface Pending {
  readonly signal: AbortSignal;
  resolve(): void;
  reject(err: unknown): void;
}

/** A fake pod reader: pods listed in `hanging` block until the test resolves them or the read is aborted. */
class FakeReads {
  readonly calls: string[] = [];
  readonly hanging = new Set<string>();
  readonly blocked = new Map<string, Pending>();
  readonly signals: AbortSignal[] = [];
  fail: Set<string> = new Set();
  read = (pod: string, signal: AbortSignal): Promise<PodReport> => {
    this.calls.push(pod);
    this.signals.push(signal);
    const report: PodReport = { pod, at: this.calls.length };
    if (this.fail.has(pod)) return Promise.reject(new Error(`read of ${pod} blew up`));
    if (!this.hanging.has(pod)) return Promise.resolve(report);
    return new Promise((resolve, reject) => {
      const p: Pending = { signal, resolve: () => resolve(report), reject };
      this.blocked.set(pod, p);
      signal.addEventListener('abort', () => resolve({ pod, at: -1 }), { once: true });
    });
  };
  count(pod: string): number {
    return this.calls.filter((c) => c === pod).length;
  }
}

function setup(extra: Partial<PollerOptions> = {}) {
  const sched = new ManualScheduler(0);
  const reads = new FakeReads();
  const reports: PodReport[] = [];
  const errors: [GateError, string][] = [];
  const poller = new Poller({
    read: reads.read,
    onReport: (r) => reports.push(r),
    onError: (e, pod) => errors.push([e, pod]),
    intervalMs: 1000,
    jitterPercent: 10,
    random: () => 0.5,
    scheduler: sched,
    ...extra,
  });
  const reportsOf = (pod: string) => reports.filter((r) => r.pod === pod);
  return { sched, reads, reports, errors, poller, reportsOf };
}

describe('Poller', () => {
  it('waits the interval intervalOf gives each pod (settled pods less often), asked after every read', async () => {
    let settled = new Set(['10.0.0.2:5002']);
    const { sched, poller } = setup({ intervalOf: (a) => (settled.has(a) ? 6000 : 1000) });
    poller.setTargets(['10.0.0.1:5002', '10.0.0.2:5002']);
    await settle();
    assert.deepEqual([...sched.delays()].sort((a, b) => a - b), [1000, 6000]);
    // The pod is no longer settled (a plugin started launching): its next wait is the short one again.
    settled = new Set();
    sched.advance(6000);
    await settle();
    assert.ok(sched.delays().every((d) => d <= 1000), `delays ${sched.delays().join(',')}`);
    await poller.stop();
  });

  it('polls new targets at once, then every interval after the previous read', async () => {
    const { sched, reads, poller, reportsOf } = setup();
    poller.setTargets(['10.0.0.1:5002', '10.0.0.2:5002']);
    await settle();
    assert.equal(reportsOf('10.0.0.1:5002').length, 1);
    assert.equal(reportsOf('10.0.0.2:5002').length, 1);
    assert.deepEqual(sched.delays(), [1000, 1000]);
    sched.runPending();
    await settle();
    assert.equal(reads.count('10.0.0.1:5002'), 2);
    assert.equal(reads.count('10.0.0.2:5002'), 2);
    await poller.stop();
  });

  it('youngReads: at most max reads younger than youngMs; a finished or aged read frees its slot, and stop() ends a wait', async () => {
    const { sched, reads, poller } = setup({ youngReads: { max: 4, youngMs: 20 } });
    const pods = Array.from({ length: 10 }, (_, i) => `10.0.0.${i + 1}:5002`);
    // The first four hang: they hold their slots until they are 20 ms old.
    for (const p of pods.slice(0, 4)) reads.hanging.add(p);
    poller.setTargets(pods);
    await settle();
    assert.deepEqual(reads.calls, pods.slice(0, 4), 'four young reads at most');
    sched.advance(19);
    await settle();
    assert.equal(reads.calls.length, 4);
    sched.advance(1);
    await settle();
    // Aged out: four more start; they answer at once, and each finished read hands its slot on.
    assert.equal(reads.calls.length, 10);
    assert.equal(new Set(reads.calls).size, 10, 'every pod read once');
    await poller.stop();
    assert.equal(sched.pending(), 0, 'no slot timer left behind');
  });

  it('youngReads: a pod removed while it waits for a slot leaves the queue and is never read', async () => {
    const { sched, reads, poller } = setup({ youngReads: { max: 1, youngMs: 20 } });
    reads.hanging.add('10.0.0.1:5002');
    poller.setTargets(['10.0.0.1:5002', '10.0.0.2:5002', '10.0.0.3:5002']);
    await settle();
    assert.deepEqual(reads.calls, ['10.0.0.1:5002']);
    poller.setTargets(['10.0.0.1:5002', '10.0.0.3:5002']);
    sched.advance(20);
    await settle();
    assert.deepEqual(reads.calls, ['10.0.0.1:5002', '10.0.0.3:5002'], 'the removed pod gave up its place');
    await poller.stop();
  });

  it('jitters the wait within interval ± jitter%', async () => {
    for (const [random, expected] of [
      [0, 900],
      [0.999999, 1100],
      [0.25, 950],
    ] as const) {
      const { sched, poller } = setup({ random: () => random });
      poller.setTargets(['10.0.0.1:5002']);
      await settle();
      assert.deepEqual(sched.delays(), [expected]);
      await poller.stop();
    }
  });

  it('a hanging pod does not delay the reports of the others, and never has two reads in flight', async () => {
    const { sched, reads, poller, reportsOf } = setup();
    reads.hanging.add('10.0.0.9:5002');
    poller.setTargets(['10.0.0.1:5002', '10.0.0.9:5002']);
    for (let i = 0; i < 5; i++) {
      await settle();
      sched.runPending();
    }
    await settle();
    assert.equal(reportsOf('10.0.0.1:5002').length, 6);
    assert.equal(reportsOf('10.0.0.9:5002').length, 0);
    assert.equal(reads.count('10.0.0.9:5002'), 1, 'the hanging pod is not read again while its read is open');
    assert.equal(poller.isSettled(), false);

    reads.blocked.get('10.0.0.9:5002')!.resolve();
    await settle();
    assert.equal(reportsOf('10.0.0.9:5002').length, 1);
    assert.equal(poller.isSettled(), true);
    await poller.stop();
  });

  it('settled() waits for every current target, and follows target changes', async () => {
    const { reads, poller } = setup();
    reads.hanging.add('10.0.0.9:5002');
    reads.hanging.add('10.0.0.8:5002');
    let done = false;
    assert.equal(poller.isSettled(), true, 'no targets: nothing to wait for');
    poller.setTargets(['10.0.0.1:5002', '10.0.0.9:5002', '10.0.0.8:5002']);
    void poller.settled().then(() => (done = true));
    await settle();
    assert.equal(done, false);
    reads.blocked.get('10.0.0.9:5002')!.resolve();
    await settle();
    assert.equal(done, false);
    // The last unsettled pod leaves discovery: the rest have all been read.
    poller.setTargets(['10.0.0.1:5002', '10.0.0.9:5002']);
    await settle();
    assert.equal(done, true);
    // A new pod makes the poller unsettled again until it has been read.
    reads.hanging.add('10.0.0.7:5002');
    poller.setTargets(['10.0.0.1:5002', '10.0.0.9:5002', '10.0.0.7:5002']);
    assert.equal(poller.isSettled(), false);
    await poller.stop();
    assert.equal(poller.isSettled(), true);
  });

  it('setTargets removes gone pods: read aborted, report dropped, timer cleared', async () => {
    const { sched, reads, poller, reportsOf } = setup();
    reads.hanging.add('10.0.0.9:5002');
    poller.setTargets(['10.0.0.1:5002', '10.0.0.9:5002']);
    await settle();
    const hangingSignal = reads.blocked.get('10.0.0.9:5002')!.signal;
    assert.equal(sched.pending(), 1);

    poller.setTargets(['10.0.0.9:5002']);
    assert.equal(sched.pending(), 0, 'the removed pod’s timer is cleared');
    assert.equal(hangingSignal.aborted, false);
    poller.setTargets([]);
    assert.equal(hangingSignal.aborted, true);
    await settle();
    assert.equal(reportsOf('10.0.0.9:5002').length, 0, 'an aborted read of a gone pod is not reported');
    assert.deepEqual(poller.targets(), []);
    sched.runPending();
    await settle();
    assert.equal(reads.count('10.0.0.1:5002'), 1);
    await poller.stop();
  });

  it('a pod that comes back gets a fresh loop', async () => {
    const { reads, poller } = setup();
    poller.setTargets(['10.0.0.1:5002']);
    await settle();
    poller.setTargets([]);
    poller.setTargets(['10.0.0.1:5002']);
    await settle();
    assert.equal(reads.count('10.0.0.1:5002'), 2);
    await poller.stop();
  });

  it('an onReport that throws goes to onError and the loop keeps polling', async () => {
    let n = 0;
    const { sched, reads, errors, poller } = setup({
      onReport: () => {
        n++;
        throw new Error('consumer bug');
      },
    });
    poller.setTargets(['10.0.0.1:5002']);
    await settle();
    sched.runPending();
    await settle();
    assert.equal(n, 2);
    assert.equal(reads.count('10.0.0.1:5002'), 2);
    assert.equal(errors.length, 2);
    assert.equal(errors[0]![0].code, 'internal');
    assert.equal(errors[0]![1], '10.0.0.1:5002');
    await poller.stop();
  });

  it('a read that rejects goes to onError, counts as a completed read, and polling goes on', async () => {
    const { sched, reads, errors, poller, reports } = setup();
    reads.fail.add('10.0.0.1:5002');
    poller.setTargets(['10.0.0.1:5002']);
    await poller.settled();
    sched.runPending();
    await settle();
    assert.equal(reads.count('10.0.0.1:5002'), 2);
    assert.equal(reports.length, 0);
    assert.equal(errors.length, 2);
    assert.equal(errors[0]![0].code, 'status_unreachable');
    await poller.stop();
  });

  it('an onError that throws is contained', async () => {
    const { sched, reads, poller } = setup({
      onReport: () => {
        throw new Error('a');
      },
      onError: () => {
        throw new Error('b');
      },
    });
    poller.setTargets(['10.0.0.1:5002']);
    await settle();
    sched.runPending();
    await settle();
    assert.equal(reads.count('10.0.0.1:5002'), 2);
    await poller.stop();
  });

  it('pollNow wakes sleeping pods at once and waits for a read started after the call', async () => {
    const { sched, reads, poller } = setup();
    reads.hanging.add('10.0.0.9:5002');
    poller.setTargets(['10.0.0.1:5002', '10.0.0.9:5002']);
    await settle();
    let done = false;
    void poller.pollNow().then(() => (done = true));
    await settle();
    assert.equal(reads.count('10.0.0.1:5002'), 2, 'the sleeping pod was read without its timer');
    assert.equal(done, false, 'the pod mid-read still owes a read started after the call');

    reads.blocked.get('10.0.0.9:5002')!.resolve();
    await settle();
    assert.equal(reads.count('10.0.0.9:5002'), 2, 'the busy pod is read again right after, without waiting');
    assert.equal(done, false);
    reads.blocked.get('10.0.0.9:5002')!.resolve();
    await settle();
    assert.equal(done, true);
    assert.equal(sched.pending(), 2);
    await poller.stop();
  });

  it('stop() aborts in-flight reads, awaits them, clears every timer, and reports nothing after', async () => {
    const { sched, reads, poller, reports } = setup();
    reads.hanging.add('10.0.0.9:5002');
    poller.setTargets(['10.0.0.1:5002', '10.0.0.9:5002']);
    await settle();
    const before = reports.length;
    const pendingPoll = poller.pollNow();
    await poller.stop();
    await pendingPoll; // resolves on stop rather than hanging
    assert.equal(sched.pending(), 0);
    assert.ok(reads.signals.every((s) => s.aborted));
    assert.equal(reports.length, before);
    poller.setTargets(['10.0.0.2:5002']);
    await settle();
    assert.equal(reads.count('10.0.0.2:5002'), 0, 'a stopped poller starts nothing');
    await poller.stop(); // idempotent
  });

  it('stop() waits for a read that ignores the abort signal', async () => {
    const { reads, poller } = setup();
    let release!: () => void;
    const slow = new Promise<PodReport>((r) => (release = () => r({ pod: 'x', at: 0 })));
    const p = new Poller({ read: () => slow, onReport: () => {}, intervalMs: 1000, jitterPercent: 0, scheduler: new ManualScheduler(0) });
    p.setTargets(['10.0.0.1:5002']);
    let stopped = false;
    const s = p.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false);
    release();
    await s;
    assert.equal(stopped, true);
    assert.equal(reads.calls.length, 0);
    await poller.stop();
  });
  describe('connectionLost', () => {
    const A = '10.0.0.1:5002';
    const B = '10.0.0.2:5002';

    it('polls that pod at once, with no timer firing and no time passing, and only that pod', async () => {
      const { sched, reads, poller } = setup({ lossPollGapMs: 500 });
      poller.setTargets([A, B]);
      await settle();
      assert.deepEqual([reads.count(A), reads.count(B)], [1, 1]);
      poller.connectionLost(A);
      await settle();
      assert.deepEqual([reads.count(A), reads.count(B)], [2, 1]);
      assert.equal(sched.now(), 0);
      // The interval starts again after that read: the next regular poll is a full interval away.
      assert.deepEqual(sched.delays(), [1000, 1000]);
      poller.connectionLost('10.9.9.9:5002'); // not a target: ignored
      await settle();
      assert.equal(reads.calls.length, 3);
      await poller.stop();
    });

    it('rate-limits per pod: losses inside the gap are polled once, when the gap ends', async () => {
      const { sched, reads, poller } = setup({ lossPollGapMs: 500 });
      poller.setTargets([A]);
      await settle();
      poller.connectionLost(A);
      await settle();
      assert.equal(reads.count(A), 2);
      // A daemon closing every connection it gets: three more losses, 100 ms later.
      sched.advance(100);
      poller.connectionLost(A);
      poller.connectionLost(A);
      poller.connectionLost(A);
      await settle();
      assert.equal(reads.count(A), 2, 'no poll inside the gap');
      assert.deepEqual(sched.delays(), [400, 900], 'one deferred poll, at the end of the gap');
      sched.advance(400);
      await settle();
      assert.equal(reads.count(A), 3, 'one poll for all the losses in the gap');
      assert.equal(sched.pending(), 1, 'only the interval wait is left');
      // Past the gap, a loss polls at once again.
      sched.advance(500);
      poller.connectionLost(A);
      await settle();
      assert.equal(reads.count(A), 4);
      await poller.stop();
      assert.equal(sched.pending(), 0, 'stop leaves no timer behind');
    });

    it('a read that starts inside the gap covers the losses before it', async () => {
      const { sched, reads, poller } = setup({ lossPollGapMs: 500 });
      poller.setTargets([A]);
      await settle();
      poller.connectionLost(A);
      await settle();
      poller.connectionLost(A);
      await poller.pollNow(); // another poll comes first
      assert.equal(reads.count(A), 3);
      sched.advance(500); // the gap ends: nothing left to poll for
      await settle();
      assert.equal(reads.count(A), 3);
      await poller.stop();
    });

    it('during a read, polls again right after it instead of waiting', async () => {
      const { sched, reads, poller, reportsOf } = setup({ lossPollGapMs: 500 });
      reads.hanging.add(A);
      poller.setTargets([A]);
      await settle();
      poller.connectionLost(A);
      reads.hanging.delete(A);
      reads.blocked.get(A)!.resolve();
      await settle();
      assert.equal(reads.count(A), 2);
      assert.equal(reportsOf(A).length, 2);
      assert.deepEqual(sched.delays(), [1000]);
      await poller.stop();
    });

    it('a removed pod is never polled for a loss, and its gap timer goes with it', async () => {
      const { sched, reads, poller } = setup({ lossPollGapMs: 500 });
      poller.setTargets([A, B]);
      await settle();
      poller.connectionLost(B);
      await settle();
      poller.connectionLost(B); // deferred to the end of the gap
      poller.setTargets([A]);
      assert.deepEqual(sched.delays(), [1000], 'the deferred poll of B is gone');
      sched.advance(500);
      await settle();
      assert.equal(reads.count(B), 2);
      poller.connectionLost(B);
      await settle();
      assert.equal(reads.count(B), 2);
      await poller.stop();
    });
  });
});
