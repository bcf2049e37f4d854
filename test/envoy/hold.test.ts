/**
 * hold-starting through a real Envoy running the shipped deploy/envoy/envoy.yaml
 * (32 s check timeout, the file the Kubernetes and compose kits use), with only
 * addresses substituted. A request for a plugin still starting is held by the
 * gate while Envoy waits on its ext_authz call, then served by the pod where the
 * plugin started; one whose plugin does not start within the budget gets the
 * gate's own 503 through Envoy, not an ext_authz timeout.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startE2e } from '../support/e2e.js';
import { httpRequest, parseEnvelopeLine, type HttpAnswer } from '../support/envoy-client.js';
import { startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually, type Harness } from '../support/gate.js';

const SLOW = 'hold/slow'; // starts on pod-2 after 10 s, never on pod-1
const NEVER_PLUGIN = 'hold/never';
const NEVER = 3_600_000;
const GATE = 'plugin-gate-headless:9191';

describe('hold-starting through real Envoy (deploy/envoy/envoy.yaml)', () => {
  let h: Harness;
  let envoy: RunningEnvoy;
  let front = '';
  const dispatch = (plugin: string): Promise<HttpAnswer> =>
    httpRequest(front, {
      method: 'POST',
      path: '/plugin/tenant-1/dispatch/llm/invoke',
      headers: { 'x-plugin-id': plugin, 'content-type': 'application/json' },
      body: '{"model":"gpt-4o-mini"}',
      timeoutMs: 40_000,
    });
  const why = (): string => `\nEnvoy log:\n${envoy.log().slice(-3000)}`;

  before(async () => {
    h = await startE2e(
      {
        pods: 2,
        plugins: [
          { id: SLOW, launchMs: 10_000 },
          { id: NEVER_PLUGIN, launchMs: NEVER },
        ],
        podPlugins: [{ [SLOW]: { launchMs: NEVER } }, undefined],
      },
      { 'hold-starting': '30s' },
    );
    await h.gate.whenReady();
    await h.poll();
    envoy = await startEnvoy({ config: 'deploy/envoy/envoy.yaml', addresses: { [GATE]: `127.0.0.1:${h.gate.grpcPort}` } });
    front = envoy.listener('plugin_daemon');
  });

  after(async () => {
    await envoy?.dispose();
    await h?.close();
  });

  it('holds the request while the plugin starts and serves it from the pod where it started', async () => {
    const pending = dispatch(SLOW);
    await eventually('the request is held by the gate', () => h.gate.service.heldCount() === 1, 10_000);
    assert.equal(h.fleet.pods.reduce((n, p) => n + (p.stats.hits.get(SLOW) ?? 0) + (p.stats.misses.get(SLOW) ?? 0), 0), 0, 'no pod saw it yet');
    h.sched.advance(10_000);
    await h.poll();
    const res = await pending;
    assert.equal(res.status, 200, res.body + why());
    assert.equal(res.headers['x-sim-pod'], 'pod-2');
    assert.equal(h.fleet.pods[1]!.stats.hits.get(SLOW), 1);
    await eventually('access log line', () => envoy.accessLog().some((l) => l['plugin'] === SLOW), 5_000);
    const line = envoy.accessLog().find((l) => l['plugin'] === SLOW)!;
    assert.equal(line['gate_reason'], 'plugin_ready_after_hold');
    assert.equal(line['gate_held_ms'], '10000');
    assert.equal(line['upstream_host'], h.fleet.pods[1]!.address);
  });

  it("a plugin that does not start within the budget gets the gate's 503 through Envoy, not a check timeout", async () => {
    const pending = dispatch(NEVER_PLUGIN);
    await eventually('the request is held by the gate', () => h.gate.service.heldCount() === 1, 10_000);
    // 30 s of gate time, polling along the way so the pods' data stays fresh.
    for (let i = 0; i < 6; i++) {
      h.sched.advance(5_000);
      await h.poll();
    }
    const res = await pending;
    assert.equal(res.status, 503, res.body + why());
    assert.equal(res.headers['x-plugin-gate-reason'], 'plugin_starting');
    assert.ok(res.headers['retry-after'] !== undefined);
    assert.match(parseEnvelopeLine(res.body).message, /plugin runtime not found/);
    const stats = await envoy.stats('ext_authz');
    const sum = (suffix: string): number => [...stats].filter(([k]) => k === `http.plugin_daemon.ext_authz.plugin_gate.${suffix}`).reduce((n, [, v]) => n + v, 0);
    assert.equal(sum('denied'), 1, `one denial counted (${JSON.stringify([...stats])})`);
    assert.equal(sum('error'), 0, 'the check answered, it did not time out');
  });
});
