/**
 * A real nginx in front: deploy/nginx/nginx-e2e.conf.template (the shared
 * section of deploy/nginx/nginx.conf with loopback placeholders) rendered into a
 * temporary prefix, nginx asking the gate's HTTP forward-auth face
 * (`--http-deny-status 403`) through auth_request, and proxying to the pod the
 * gate names. The client only ever talks to nginx.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startE2e } from '../support/e2e.js';
import { httpRequest, parseEnvelopeLine, type HttpAnswer } from '../support/envoy-client.js';
import { eventually, type Harness } from '../support/gate.js';
import { Nginx } from '../support/nginx.js';

const TARGET = 'e2e/target';
const SLOW = 'e2e/slow';
const NEVER = 3_600_000;
const DISPATCH = '/plugin/tenant-1/dispatch/llm/invoke';

describe('nginx auth_request in front of the gate (deploy/nginx/nginx-e2e.conf.template)', () => {
  let h: Harness;
  let nginx: Nginx | undefined;
  let gateClosed = false;

  const viaNginx = (opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<HttpAnswer> =>
    httpRequest(nginx!.address, opts);
  const dispatch = (plugin: string, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
    viaNginx({
      method: 'POST',
      path: DISPATCH,
      headers: { 'x-plugin-id': plugin, 'content-type': 'application/json', ...headers },
      body: '{"model":"gpt-4o-mini"}',
    });
  const why = (): string => `\nnginx log:\n${nginx?.log() ?? ''}`;

  before(async () => {
    h = await startE2e(
      {
        pods: 3,
        plugins: [
          { id: TARGET, launchMs: 1_000 },
          { id: SLOW, launchMs: NEVER },
        ],
        podPlugins: [{ [TARGET]: { launchMs: NEVER } }, undefined, { [TARGET]: { launchMs: NEVER } }],
      },
      { 'http-deny-status': '403' },
    );
    await h.gate.whenReady();
    h.sched.advance(1_000);
    const s = await h.poll();
    assert.deepEqual(
      s.plugins.get(TARGET)?.readyPods,
      [h.fleet.pods[1]!.address],
    );
    nginx = new Nginx({ gate: `127.0.0.1:${h.gate.httpPort}`, daemon: h.fleet.pods[0]!.address });
    await nginx.start();
  });

  after(async () => {
    await nginx?.dispose();
    if (h !== undefined) {
      if (gateClosed) await h.fleet.close();
      else await h.close();
    }
  });

  it('a plugin ready only on pod-2 reaches pod-2 through nginx', async () => {
    h.fleet.pods.forEach((p) => p.resetStats());
    for (let i = 0; i < 4; i++) {
      const res = await dispatch(TARGET);
      assert.equal(res.status, 200, res.body + why());
      assert.equal(res.headers['x-sim-pod'], 'pod-2');
      assert.equal((JSON.parse(res.body.split('\n')[0]!) as { data: { served_by: string } }).data.served_by, 'pod-2');
    }
    assert.deepEqual(Object.fromEntries(h.fleet.hitsFor(TARGET)), { 'pod-1': 0, 'pod-2': 4, 'pod-3': 0 });
    // nginx writes the access log line just after the response, so it may trail the client a little.
    const logged = (): Record<string, string>[] => nginx!.accessLog().filter((l) => l['plugin'] === TARGET);
    await eventually('4 access log lines', () => logged().length >= 4, 2_000);
    for (const l of logged()) {
      assert.equal(l['upstream_addr'], h.fleet.pods[1]!.address, 'nginx proxied to the pod the gate named');
      assert.equal(l['gate_reason'], 'plugin_ready');
    }
  });

  it('a starting plugin gets 503, Retry-After and the daemon envelope at the client, and no pod sees it', async () => {
    h.fleet.pods.forEach((p) => p.resetStats());
    const res = await dispatch(SLOW);
    assert.equal(res.status, 503, res.body + why());
    assert.equal(res.headers['retry-after'], '5');
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['x-plugin-gate-reason'], 'plugin_starting');
    assert.match(String(res.headers['x-plugin-gate-decision-id']), /^[A-Za-z0-9._-]+$/);
    const env = parseEnvelopeLine(res.body);
    assert.equal(env.code, -500);
    assert.equal(env.errorType, 'PluginDaemonInternalServerError');
    assert.match(env.message, /plugin runtime not found/);
    assert.match(env.message, /plugin_starting/);
    for (const p of h.fleet.pods) assert.equal((p.stats.hits.get(SLOW) ?? 0) + (p.stats.misses.get(SLOW) ?? 0), 0, `${p.name} never saw it`);
  });

  it('a client-sent X-Plugin-Gate-Upstream (or X-Envoy-Original-Dst-Host) cannot redirect a request', async () => {
    h.fleet.pods.forEach((p) => p.resetStats());
    const [p1, , p3] = h.fleet.pods.map((p) => p.address) as [string, string, string];
    const spoof = { 'x-plugin-gate-upstream': p1, 'x-envoy-original-dst-host': p3 };
    for (let i = 0; i < 3; i++) {
      const res = await dispatch(TARGET, spoof);
      assert.equal(res.status, 200, res.body + why());
      assert.equal(res.headers['x-sim-pod'], 'pod-2', 'the gate chose, not the client');
    }
    // Denied stays denied, whatever pod the client names.
    const denied = await dispatch(SLOW, spoof);
    assert.equal(denied.status, 503);
    assert.equal(denied.headers['x-plugin-gate-reason'], 'plugin_starting');
    assert.deepEqual(Object.fromEntries(h.fleet.hitsFor(TARGET)), { 'pod-1': 0, 'pod-2': 3, 'pod-3': 0 });
    for (const p of h.fleet.pods) assert.equal(p.stats.misses.get(TARGET) ?? 0, 0);
    for (const p of h.fleet.pods) assert.equal((p.stats.hits.get(SLOW) ?? 0) + (p.stats.misses.get(SLOW) ?? 0), 0);
  });

  it("a client cannot make the gate judge another request: X-Original-URL / X-Forwarded-Uri from the client are ignored", async () => {
    h.fleet.pods.forEach((p) => p.resetStats());
    const forged: Record<string, string>[] = [
      { 'x-original-url': 'http://plugin-daemon:5002/health/check', 'x-original-method': 'GET' },
      { 'x-forwarded-uri': '/health/check', 'x-forwarded-method': 'GET' },
    ];
    for (const headers of forged) {
      const res = await dispatch(SLOW, headers);
      assert.equal(res.status, 503, `still judged as the dispatch it is (${Object.keys(headers).join(', ')}): ${res.status} ${res.body}${why()}`);
      assert.equal(res.headers['x-plugin-gate-reason'], 'plugin_starting');
    }
    for (const p of h.fleet.pods) assert.equal((p.stats.hits.get(SLOW) ?? 0) + (p.stats.misses.get(SLOW) ?? 0), 0, `${p.name} never saw it`);
  });

  it('an invalid plugin id gets 400 with the bad-request envelope', async () => {
    const res = await dispatch('Bad/ID');
    assert.equal(res.status, 400, res.body + why());
    const env = parseEnvelopeLine(res.body);
    assert.equal(env.code, -400);
    assert.equal(env.errorType, 'PluginDaemonBadRequestError');
    assert.equal(res.headers['x-plugin-gate-reason'], 'invalid_plugin_id');
  });

  it('a path that is not plugin-scoped reaches a live pod, never one that stopped answering', async () => {
    await h.fleet.pods[2]!.setMode('refuse');
    let s = h.gate.snapshot();
    for (let i = 0; i < 3; i++) s = await h.poll();
    assert.equal(s.pods.get(h.fleet.pods[2]!.address)?.state, 'unreachable');
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const res = await viaNginx({ path: '/plugin/tenant-1/management/list?page=1' });
      assert.equal(res.status, 200, res.body + why());
      served.add(String(res.headers['x-sim-pod']));
    }
    assert.deepEqual([...served].sort(), ['pod-1', 'pod-2'], 'round robin over the live pods only');
    const webhook = await viaNginx({ method: 'POST', path: '/e/hook-123/run', body: '{}' });
    assert.equal(webhook.status, 200);
    assert.match(String(webhook.headers['x-sim-pod']), /^pod-[12]$/);
    await h.fleet.pods[2]!.setMode('normal');
  });

  it('fails closed: with the gate gone nginx answers 503 with the envelope, not the daemon', async () => {
    h.fleet.pods.forEach((p) => p.resetStats());
    gateClosed = true;
    await h.gate.close();
    const res = await dispatch(TARGET);
    assert.equal(res.status, 503, res.body + why());
    assert.equal(res.headers['x-plugin-gate-reason'], 'gate_unavailable');
    assert.equal(parseEnvelopeLine(res.body).code, -500);
    assert.deepEqual(Object.fromEntries(h.fleet.hitsFor(TARGET)), { 'pod-1': 0, 'pod-2': 0, 'pod-3': 0 });
  });
});
