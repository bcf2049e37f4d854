/**
 * When the gate fails, through a real Envoy on deploy/envoy/envoy.yaml: two
 * gate replicas as processes behind the one headless-Service address (Envoy
 * sees and health-checks each), signalled while Envoy keeps running.
 *
 * - a stopped gate (SIGSTOP): Envoy answers 503 once its ext_authz timeout
 *   (250 ms in the file) passes, never hangs and never passes the request on;
 * - a draining gate (SIGTERM, still answering Checks): Envoy's gRPC health
 *   check takes it out and the other replica serves everything;
 * - every gate gone: 503 from status_on_error, never a pass-through;
 * - gates restarted on the same addresses: traffic recovers, Envoy untouched.
 *
 * One Envoy serves the whole sequence (its steps depend on each other in order).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { httpRequest, type HttpAnswer } from '../support/envoy-client.js';
import { loadEnvoyConfig, startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { freePort, startGateProcess, type GateProcess } from '../support/gate-process.js';
import { eventually } from '../support/gate.js';
import { SimFleet } from '../../src/sim/fleet.js';

const TARGET = 'e2e/target';
const DISPATCH = '/plugin/tenant-1/dispatch/llm/invoke';
/** grpc_service.timeout of the ext_authz filter in deploy/envoy/envoy.yaml, in ms. */
function extAuthzTimeoutMs(): number {
  const doc = loadEnvoyConfig('deploy/envoy/envoy.yaml');
  const hcm = doc['static_resources']['listeners'][0]['filter_chains'][0]['filters'][0]['typed_config'];
  const ext = (hcm['http_filters'] as Record<string, any>[]).find((f) => f['name'] === 'envoy.filters.http.ext_authz')!;
  const m = /^(\d+(?:\.\d+)?)s$/.exec(String(ext['typed_config']['grpc_service']['timeout']));
  assert.ok(m, 'a timeout in seconds');
  return Math.round(Number(m[1]) * 1000);
}
const EXT_AUTHZ_TIMEOUT_MS = extAuthzTimeoutMs();

describe('real Envoy when the gate fails (deploy/envoy/envoy.yaml, two gate replicas as processes)', () => {
  let fleet: SimFleet;
  let envoy: RunningEnvoy;
  let a: GateProcess;
  let b: GateProcess;
  let aPort = 0;
  let bPort = 0;
  let front = '';
  const gates: GateProcess[] = [];

  const startGate = async (port: number, drain = '0s'): Promise<GateProcess> => {
    const g = await startGateProcess({
      args: ['--targets', fleet.targets, '--grpc-listen', `127.0.0.1:${port}`, '--poll-interval', '500ms', '--poll-timeout', '400ms', '--decision-log', 'none', '--drain', drain],
    });
    gates.push(g);
    return g;
  };
  /** Sum of the replica's plugin_gate_decisions_total: how many Checks it answered. */
  const decisions = async (g: GateProcess): Promise<number> => {
    const body = await fetch(`http://127.0.0.1:${g.adminPort}/metrics`, { signal: AbortSignal.timeout(3_000) }).then((r) => r.text());
    let sum = 0;
    for (const m of body.matchAll(/^plugin_gate_decisions_total\{[^}]*\} (\d+)$/gm)) sum += Number(m[1]);
    return sum;
  };
  const dispatch = (): Promise<HttpAnswer> =>
    httpRequest(front, {
      method: 'POST',
      path: DISPATCH,
      headers: { 'x-plugin-id': TARGET, 'content-type': 'application/json' },
      body: '{}',
      // Longer than Envoy's own ext_authz timeout: Envoy must answer first.
      timeoutMs: EXT_AUTHZ_TIMEOUT_MS + 30_000,
    });
  const why = (): string => `\nEnvoy log:\n${envoy.log().slice(-3000)}`;
  const hostHealthy = async (port: number): Promise<boolean | undefined> =>
    (await envoy.clusterHosts('plugin_gate')).find((h) => h.address === `127.0.0.1:${port}`)?.healthy;
  const waitHealth = async (port: number, healthy: boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while ((await hostHealthy(port)) !== healthy) {
      if (Date.now() > deadline) throw new Error(`${what}: not within 30 s; hosts ${JSON.stringify(await envoy.clusterHosts('plugin_gate'))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /**
   * Sends batches of 10 dispatches until one batch gives replica `g` a number of checks that
   * `ok` accepts (Envoy's workers take the health change a moment after its admin shows it).
   */
  const untilBatch = async (g: GateProcess, ok: (n: number) => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const before = await decisions(g);
      for (let i = 0; i < 10; i++) assert.equal((await dispatch()).status, 200, why());
      if (ok((await decisions(g)) - before)) return;
      if (Date.now() > deadline) throw new Error(`${what}: not within 20 s; Envoy's view ${JSON.stringify(await envoy.clusterHosts('plugin_gate'))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const podHits = (): number => [...fleet.hitsFor(TARGET).values()].reduce((x, y) => x + y, 0);

  before(async () => {
    // Real time: the plugin is running on both pods a moment after start.
    fleet = new SimFleet({ pods: 2, plugins: [{ id: TARGET, launchMs: 1 }] });
    await fleet.start();
    await eventually('plugin running on both pods', () => fleet.pods.every((p) => p.snapshot().plugins.some((x) => x.id === TARGET && x.gauge === 1)), 10_000);
    aPort = await freePort();
    bPort = await freePort();
    a = await startGate(aPort, '60s');
    b = await startGate(bPort);
    envoy = await startEnvoy({ config: 'deploy/envoy/envoy.yaml', addresses: { 'plugin-gate-headless:9191': [`127.0.0.1:${aPort}`, `127.0.0.1:${bPort}`] } });
    front = envoy.listener('plugin_daemon');
  });

  after(async () => {
    await envoy?.dispose();
    for (const g of gates) {
      g.child.kill('SIGCONT');
      g.kill();
      await g.exited;
    }
    await fleet?.close();
  });

  it('both replicas are healthy in Envoy and share the checks', async () => {
    await waitHealth(aPort, true, 'replica A healthy');
    await waitHealth(bPort, true, 'replica B healthy');
    const before = [await decisions(a), await decisions(b)];
    for (let i = 0; i < 20; i++) {
      const res = await dispatch();
      assert.equal(res.status, 200, res.body + why());
    }
    const da = (await decisions(a)) - before[0]!;
    const db = (await decisions(b)) - before[1]!;
    assert.equal(da + db, 20);
    assert.ok(da > 0 && db > 0, `round robin over both replicas: ${da} / ${db}`);
  });

  it("a draining gate (SIGTERM) is taken out by Envoy's gRPC health check while it still answers; the other replica serves everything", async () => {
    // A runs with drain 60s: after SIGTERM it keeps answering Checks, and says NOT_SERVING.
    await waitHealth(bPort, true, 'replica B healthy');
    a.child.kill('SIGTERM');
    try {
    await waitHealth(aPort, false, "Envoy's health check marks draining replica A unhealthy");
    assert.ok(a.alive(), 'A is still draining, not gone: the health check took it out');
    const health = (await envoy.clusterHosts('plugin_gate')).find((h) => h.address === `127.0.0.1:${aPort}`)!;
    assert.match(health.healthFlags, /failed_active_health_check/);
    await untilBatch(a, (n) => n === 0, 'Envoy stops sending checks to the draining replica');
    const beforeA = await decisions(a);
    const beforeB = await decisions(b);
    for (let i = 0; i < 30; i++) {
      const res = await dispatch();
      assert.equal(res.status, 200, res.body + why());
    }
    assert.equal((await decisions(a)) - beforeA, 0, 'the draining replica got no check');
    assert.equal((await decisions(b)) - beforeB, 30, 'the other replica got every check');
    } finally {
      a.kill();
      await a.exited;
    }
  });

  it('the drained replica, started again on its address, gets checks again: Envoy needs no restart', async () => {
    a = await startGate(aPort, '60s');
    await waitHealth(aPort, true, 'restarted replica A healthy');
    await untilBatch(a, (n) => n > 0, 'round robin includes the restarted replica');
  });

  it('a stopped gate (SIGSTOP): its checks get 503 from Envoy once the ext_authz timeout passes and go nowhere; the health check takes it out', async () => {
    b.child.kill('SIGSTOP');
    try {
      const hits = podHits();
      // Round robin: of four checks at once, two go to the stopped replica.
      const t0 = Date.now();
      const pending = Array.from({ length: 4 }, () => dispatch().then((res) => ({ res, ms: Date.now() - t0 })));
      // Meanwhile Envoy's health check (0.5 s timeout) finds the stopped replica, and new checks avoid it.
      await waitHealth(bPort, false, "Envoy's health check marks the stopped replica unhealthy");
      for (let i = 0; i < 5; i++) {
        const res = await dispatch();
        assert.equal(res.status, 200, 'new requests go to the replica that answers' + why());
      }
      const answers = await Promise.all(pending);
      const failed = answers.filter((x) => x.res.status !== 200);
      assert.ok(failed.length >= 1, `some check went to the stopped replica: ${answers.map((x) => x.res.status).join(',')}`);
      for (const f of failed) {
        assert.equal(f.res.status, 503, f.res.body + why());
        assert.equal(f.res.headers['x-sim-pod'], undefined);
        // Answered when Envoy's timeout ran out, not before and not hung (generous bound: the machine is shared).
        assert.ok(f.ms >= EXT_AUTHZ_TIMEOUT_MS - 50 && f.ms < EXT_AUTHZ_TIMEOUT_MS + 20_000, `answered after ${f.ms} ms (timeout ${EXT_AUTHZ_TIMEOUT_MS} ms)`);
      }
      assert.equal(podHits(), hits + 5 + answers.length - failed.length, 'only allowed requests reached a pod');
      // Envoy's own account: flagged UAEX (unauthorized external service), counted as an ext_authz error.
      await eventually('access log of the timed-out checks', () => envoy.accessLog().filter((l) => l['status'] === 503 && l['flags'] === 'UAEX').length >= failed.length, 5_000);
      for (const l of envoy.accessLog().filter((x) => x['status'] === 503 && x['flags'] === 'UAEX').slice(-failed.length)) {
        assert.ok(Number(l['duration_ms']) >= EXT_AUTHZ_TIMEOUT_MS - 50, `waited for the ext_authz timeout: ${JSON.stringify(l)}`);
      }
      assert.ok(((await envoy.stats('ext_authz')).get('http.plugin_daemon.ext_authz.plugin_gate.error') ?? 0) >= 1, 'counted as an ext_authz error');
    } finally {
      b.child.kill('SIGCONT');
    }
    await waitHealth(bPort, true, 'replica B healthy again after SIGCONT');
  });

  it('every gate gone: Envoy answers 503 (status_on_error), never passes the request through', async () => {
    for (const g of [a, b]) {
      g.kill();
      await g.exited;
    }
    const hits = podHits();
    for (let i = 0; i < 4; i++) {
      const res = await dispatch();
      assert.equal(res.status, 503, res.body + why());
      assert.equal(res.headers['x-sim-pod'], undefined);
    }
    assert.equal(podHits(), hits, 'no request reached a pod');
    await eventually('UAEX lines', () => envoy.accessLog().slice(-4).every((l) => l['status'] === 503 && l['flags'] === 'UAEX'), 5_000);
  });

  it('the gates restarted on the same addresses: traffic recovers without restarting Envoy', async () => {
    const pid = envoy.child.pid;
    a = await startGate(aPort);
    b = await startGate(bPort);
    const deadline = Date.now() + 30_000;
    let res = await dispatch();
    while (res.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      res = await dispatch();
    }
    assert.equal(res.status, 200, res.body + why());
    await waitHealth(aPort, true, 'replica A healthy again');
    await waitHealth(bPort, true, 'replica B healthy again');
    await untilBatch(a, () => true, 'served');
    for (let i = 0; i < 10; i++) assert.equal((await dispatch()).status, 200);
    assert.equal(envoy.child.pid, pid);
    assert.equal(envoy.child.exitCode, null, 'the same Envoy process throughout');
  });
});
