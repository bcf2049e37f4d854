/**
 * The readiness engine end to end: the gate polls a simulated daemon fleet over
 * real loopback HTTP. Daemon time is a ManualScheduler shared with the gate, and
 * polls are triggered on demand, so every "follows within one poll" is exact.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, TEST_FLAGS, type Harness } from './support/gate.js';
import { Dnsmasq, NAME } from './support/dnsmasq.js';
import type { GateRequest } from '../src/decide/types.js';
import type { FleetSnapshot } from '../src/fleet/types.js';
import { SimDaemon } from '../src/sim/daemon.js';
import { startGate } from '../src/app/app.js';
import { configFor } from '../src/config/config.js';
import { createLogger } from '../src/observe/logger.js';
import { ManualScheduler, advanceUntil } from './support/manual-scheduler.js';

function dispatch(plugin: string): GateRequest {
  const h = new Map([['x-plugin-id', plugin]]);
  return { method: 'POST', path: '/plugin/t1/dispatch/llm/invoke', header: (n) => h.get(n), contextExtensions: new Map(), requestId: undefined };
}
const stateOf = (s: FleetSnapshot, pod: string, plugin: string): string => s.pods.get(pod)?.plugins.get(plugin)?.state ?? 'absent';

const open: Harness[] = [];
after(async () => {
  await Promise.all(open.map((h) => h.close()));
});
async function harness(...args: Parameters<typeof startHarness>): Promise<Harness> {
  const h = await startHarness(...args);
  open.push(h);
  return h;
}

describe('readiness engine against a simulated fleet', () => {
  it('follows a plugin absent → starting → ready within one poll each', async () => {
    const h = await harness({
      pods: 1,
      plugins: [
        { id: 'a/one', launchMs: 10_000 },
        { id: 'a/two', launchMs: 10_000 },
        { id: 'a/three', launchMs: 10_000 },
      ],
    });
    await h.gate.whenReady();
    const pod = h.fleet.pods[0]!.address;
    let s = await h.poll();
    assert.deepEqual(['a/one', 'a/two', 'a/three'].map((p) => stateOf(s, pod, p)), ['starting', 'starting', 'absent']);
    assert.equal(s.pods.get(pod)?.inStartup, true);
    assert.equal(h.gate.service.check(dispatch('a/three'), 'grpc').decision.reason, 'plugin_starting', 'queued plugin is starting, not unknown');

    h.sched.advance(10_000);
    s = await h.poll();
    assert.deepEqual(['a/one', 'a/two', 'a/three'].map((p) => stateOf(s, pod, p)), ['ready', 'ready', 'starting']);
    const d = h.gate.service.check(dispatch('a/one'), 'grpc').decision;
    assert.equal(d.allow && d.upstream, pod);

    h.sched.advance(10_000);
    s = await h.poll();
    assert.equal(stateOf(s, pod, 'a/three'), 'ready');
    assert.equal(h.gate.service.check(dispatch('a/three'), 'grpc').decision.reason, 'plugin_ready');
  });

  it('a plugin that failed 15 times is failed while one still retrying is starting; plugin_failed once all gave up', async () => {
    const h = await harness({
      pods: 2,
      plugins: [
        { id: 'a/good', launchMs: 1_000 },
        { id: 'a/bad', launchMs: 1_000, failures: 'always' },
      ],
      // Launch attempts on pod-2 take a minute each: it is still retrying when pod-1 has given up.
      podPlugins: [undefined, { 'a/bad': { launchMs: 60_000 } }],
    });
    await h.gate.whenReady();
    const [p1, p2] = h.fleet.pods.map((p) => p.address) as [string, string];
    h.sched.advance(700_000);
    let s = await h.poll();
    assert.equal(stateOf(s, p1, 'a/bad'), 'failed');
    assert.equal(s.pods.get(p1)?.plugins.get('a/bad')?.failedLaunches, 15);
    assert.equal(stateOf(s, p2, 'a/bad'), 'starting');
    assert.ok((s.pods.get(p2)?.plugins.get('a/bad')?.failedLaunches ?? 99) < 15, 'pod-2 has retries left');
    assert.equal(h.gate.service.check(dispatch('a/bad'), 'grpc').decision.reason, 'plugin_starting');

    h.sched.advance(1_500_000);
    s = await h.poll();
    assert.equal(stateOf(s, p2, 'a/bad'), 'failed');
    const d = h.gate.service.check(dispatch('a/bad'), 'grpc').decision;
    assert.equal(d.reason, 'plugin_failed');
    assert.match(!d.allow ? d.message : '', /gave up after 15 failed launches/);
    assert.equal(h.gate.service.check(dispatch('a/good'), 'grpc').decision.reason, 'plugin_ready');
  });

  it('a pod that stops answering is unreachable after the threshold and leaves every ready set', async () => {
    const h = await harness({ pods: 2, plugins: [{ id: 'a/x', launchMs: 1_000 }] }, { 'poll-timeout': '200ms' });
    await h.gate.whenReady();
    const [p1, p2] = h.fleet.pods.map((p) => p.address) as [string, string];
    h.sched.advance(2_000);
    let s = await h.poll();
    assert.deepEqual([...(s.plugins.get('a/x')?.readyPods ?? [])].sort(), [p1, p2].sort());

    // Accepting but never answering: timeouts may be a passing hiccup, so they count.
    await h.fleet.pods[1]!.setMode('hang');
    for (let i = 1; i <= 2; i++) {
      s = await h.poll();
      assert.equal(s.pods.get(p2)?.state, 'live', `after ${i} failed polls`);
      assert.equal(s.pods.get(p2)?.consecutiveFailures, i);
    }
    s = await h.poll();
    assert.equal(s.pods.get(p2)?.state, 'unreachable');
    assert.equal(s.pods.get(p2)?.lastError?.code, 'status_timeout');
    assert.deepEqual(s.plugins.get('a/x')?.readyPods, [p1]);
    for (let i = 0; i < 6; i++) {
      const d = h.gate.service.check(dispatch('a/x'), 'grpc').decision;
      assert.equal(d.allow && d.upstream, p1);
    }

    await h.fleet.pods[1]!.setMode('normal');
    s = await h.poll();
    assert.equal(s.pods.get(p2)?.state, 'live', 'comes back on its first good answer');

    // Nothing listening: refused at connect is unreachable at once (P2a).
    await h.fleet.pods[1]!.setMode('refuse');
    s = await h.poll();
    assert.equal(s.pods.get(p2)?.state, 'unreachable');
    assert.equal(s.pods.get(p2)?.lastError?.code, 'status_refused');
  });

  it('a pod answering slower than the timeout does not delay the others', async () => {
    const h = await harness({ pods: 2, plugins: [{ id: 'a/x', launchMs: 1_000 }] }, { 'poll-timeout': '300ms' });
    await h.gate.whenReady();
    const [p1, p2] = h.fleet.pods.map((p) => p.address) as [string, string];
    await h.fleet.pods[1]!.setMode({ slowMs: 5_000 });
    h.sched.advance(1); // reports of this round carry a new timestamp
    const round = h.sched.now();
    let p2WhenP1Arrived: number | undefined = -1;
    h.gate.tracker.onSnapshot((s) => {
      if (p2WhenP1Arrived === -1 && s.pods.get(p1)?.lastReportAt === round) p2WhenP1Arrived = s.pods.get(p2)?.lastReportAt;
    });
    const s = await h.poll();
    assert.notEqual(p2WhenP1Arrived, -1, 'pod-1 reported');
    assert.notEqual(p2WhenP1Arrived, round, 'pod-1 reported before the slow pod had answered or timed out');
    assert.equal(s.pods.get(p2)?.lastError?.code, 'status_timeout');
    assert.equal(s.pods.get(p1)?.lastError, undefined);
  });

  it('rejects a garbage body as status_unparseable and an oversized one as status_too_large, and keeps serving', async () => {
    const h = await harness({ pods: 2, plugins: [{ id: 'a/x', launchMs: 1_000 }] }, { 'max-status-bytes': '65536' });
    await h.gate.whenReady();
    const [p1, p2] = h.fleet.pods.map((p) => p.address) as [string, string];
    await h.fleet.pods[0]!.setMode('garbage');
    await h.fleet.pods[1]!.setMode({ oversizeBytes: 4_000_000 });
    const s = await h.poll();
    assert.equal(s.pods.get(p1)?.lastError?.code, 'status_unparseable');
    assert.equal(s.pods.get(p2)?.lastError?.code, 'status_too_large');
    const text = await h.gate.metrics.text();
    assert.match(text, /plugin_gate_polls_total\{source="metrics",code="status_unparseable"\} [1-9]/);
    assert.match(text, /plugin_gate_polls_total\{source="metrics",code="status_too_large"\} [1-9]/);
    const status = (await (await fetch(`http://127.0.0.1:${h.gate.adminPort}/status`)).json()) as { pods: { address: string; last_error: { code: string } | null }[] };
    assert.equal(status.pods.find((p) => p.address === p2)?.last_error?.code, 'status_too_large');
  });

  it('learns the daemon retry limit from /ready/check, and without it sees a retry that stopped', async () => {
    // The daemon gives up after 6 failed launches (PR #600's PLUGIN_LOCAL_MAX_RETRY_COUNT); the gate
    // is left at its default limit of 15.
    const fleetOpts = { pods: 1, readyCheck: true, retryLimit: 6, plugins: [{ id: 'a/ok', launchMs: 1_000 }, { id: 'a/bad', launchMs: 1_000, failures: 'always' as const }] };

    // With the ready-check source, a 503 during start-up carries MaxRetries, remembered for this process:
    // once the daemon answers 200 (which hides failed plugins) the count of 3 already means "gave up".
    const withReady = await harness(fleetOpts, { sources: 'metrics,health-check,ready-check' });
    await withReady.gate.whenReady();
    const pod = withReady.fleet.pods[0]!.address;
    // Poll through the start-up as the gate would (every 5 s here): while a/bad waits 30 s between
    // retries, the daemon's /ready/check answers 503 with its detail.
    for (let i = 0; i < 40; i++) {
      withReady.sched.advance(5_000);
      await withReady.poll();
    }
    withReady.sched.advance(600_000);
    let s = await withReady.poll();
    assert.equal(s.pods.get(pod)?.plugins.get('a/bad')?.failedLaunches, 6);
    assert.equal(stateOf(s, pod, 'a/bad'), 'failed');
    assert.match(s.pods.get(pod)?.plugins.get('a/bad')?.why ?? '', /gave up after 6 failed launches/);
    assert.equal(withReady.gate.service.check(dispatch('a/bad'), 'grpc').decision.reason, 'plugin_failed');

    // Metrics alone: 6 of 15 looks like retrying, until nothing has moved for retry-stall (5 min).
    const metricsOnly = await harness(fleetOpts);
    await metricsOnly.gate.whenReady();
    const mpod = metricsOnly.fleet.pods[0]!.address;
    metricsOnly.sched.advance(600_000);
    s = await metricsOnly.poll();
    assert.equal(stateOf(s, mpod, 'a/bad'), 'starting');
    metricsOnly.sched.advance(301_000);
    s = await metricsOnly.poll();
    assert.equal(stateOf(s, mpod, 'a/bad'), 'failed');
    assert.match(s.pods.get(mpod)?.plugins.get('a/bad')?.why ?? '', /no launch attempt for 300s after 6 failed launches/);
  });

  it('/readyz is 503 until the first round completes, even when a daemon never answers', async () => {
    const h = await harness({ pods: 2, plugins: [{ id: 'a/x', launchMs: 1_000 }] }, { 'poll-timeout': '1500ms' }, async (fleet) => {
      await fleet.pods[1]!.setMode('hang');
    });
    const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${h.gate.adminPort}/readyz`)).status;
    const healthz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${h.gate.adminPort}/healthz`)).status;
    assert.equal(await readyz(), 503);
    assert.equal(await healthz(), 200);
    assert.equal(h.gate.snapshot().complete, false);
    assert.equal(h.gate.service.check(dispatch('a/x'), 'grpc').decision.reason, 'gate_not_ready');
    await h.gate.whenReady();
    assert.equal(await readyz(), 200);
    const s = h.gate.snapshot();
    assert.equal(s.pods.get(h.fleet.pods[1]!.address)?.lastError?.code, 'status_timeout');
    assert.equal(s.pods.get(h.fleet.pods[0]!.address)?.state, 'live');
  });
});

describe('DNS discovery end to end (dnsmasq on loopback)', () => {
  it('adds and removes pods as the records change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-dns-'));
    const hosts = join(dir, 'hosts');
    writeFileSync(hosts, `127.0.0.2 ${NAME}\n`);
    const dns = new Dnsmasq(hosts, join(dir, 'pid'));
    const pods: SimDaemon[] = [];
    let gate: Awaited<ReturnType<typeof startGate>> | undefined;
    try {
      await dns.start();
      const a = new SimDaemon({ name: 'pod-a', host: '127.0.0.2', plugins: [{ id: 'a/x', launchMs: 1 }] });
      pods.push(a);
      await a.start();
      const port = Number(a.address.split(':')[1]);
      const b = new SimDaemon({ name: 'pod-b', host: '127.0.0.3', port, plugins: [{ id: 'a/x', launchMs: 1 }] });
      pods.push(b);
      await b.start();
      const config = configFor({
        ...TEST_FLAGS,
        discovery: 'dns',
        'dns-name': `${NAME}:${port}`,
        'dns-server': `127.0.0.1:${dns.port}`,
        'dns-interval': '100ms',
        'poll-interval': '100ms',
        'poll-timeout': '300ms',
        // On manual time the lookup deadline is moved by the test, not by the lookup: keep it far.
        'dns-timeout': '60s',
      });
      // Re-resolving and polling run on manual time: each step of 100 ms is one more lookup and poll.
      const sched = new ManualScheduler(Date.now());
      gate = await startGate(config, { logger: createLogger('silent'), scheduler: sched });
      const g = gate;
      const live = (): string[] => g.snapshot().livePods.map((p) => p.address);
      const until = (what: string, check: () => boolean): Promise<void> => advanceUntil(sched, what, check, 100);
      await until('pod-a live', () => live().join() === a.address);

      writeFileSync(hosts, `127.0.0.2 ${NAME}\n127.0.0.3 ${NAME}\n`);
      dns.reload();
      await until('pod-b added', () => live().join() === [a.address, b.address].join());

      writeFileSync(hosts, `127.0.0.3 ${NAME}\n`);
      dns.reload();
      await until('pod-a removed', () => g.snapshot().pods.get(a.address)?.state === 'removed');
      assert.deepEqual(live(), [b.address]);

      await dns.stop();
      await until('lookups fail', () => g.snapshot().discoveryError !== undefined);
      assert.equal(g.snapshot().discoveryError?.code, 'discovery_failed');
      assert.deepEqual(live(), [b.address], 'a failing resolver keeps the last good set');
    } finally {
      await gate?.close();
      await Promise.all(pods.map((p) => p.close()));
      await dns.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
