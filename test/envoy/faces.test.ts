/**
 * Through a real Envoy: a long streamed dispatch, Envoy → gate over TLS and
 * mutual TLS with the transport socket deploy/README.md documents, and the HTTP
 * forward-auth face behind Envoy's http_service (deploy/envoy/envoy-http-service.yaml).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { startE2e } from '../support/e2e.js';
import { httpRequest, parseEnvelopeLine, type HttpAnswer } from '../support/envoy-client.js';
import { startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { TestPki, type CertFiles } from '../support/certs.js';
import { eventually, type Harness } from '../support/gate.js';
import { packageRoot } from '../../src/core/package-root.js';
import { SIM_STREAM_HEADER } from '../../src/sim/routes.js';
import type { RawValues } from '../../src/config/config.js';

const TARGET = 'e2e/target'; // ready on pod-2 only
const SLOW = 'e2e/slow';
const NEVER = 3_600_000;
const DISPATCH = '/plugin/tenant-1/dispatch/llm/invoke';

/** Three pods, TARGET ready on pod-2 only, SLOW starting everywhere; the gate has polled. */
async function gateAndFleet(flags: RawValues = {}): Promise<Harness> {
  const h = await startE2e(
    {
      pods: 3,
      plugins: [
        { id: TARGET, launchMs: 1_000 },
        { id: SLOW, launchMs: NEVER },
      ],
      podPlugins: [{ [TARGET]: { launchMs: NEVER } }, undefined, { [TARGET]: { launchMs: NEVER } }],
    },
    flags,
  );
  await h.gate.whenReady();
  h.sched.advance(1_000);
  const s = await h.poll();
  assert.deepEqual(s.plugins.get(TARGET)?.readyPods, [h.fleet.pods[1]!.address]);
  return h;
}

/** Sum of the gate's plugin_gate_decisions_total, from its admin /metrics. */
async function decisionsOf(h: Harness): Promise<number> {
  const body = (await httpRequest(`127.0.0.1:${h.gate.adminPort}`, { path: '/metrics' })).body;
  let sum = 0;
  for (const m of body.matchAll(/^plugin_gate_decisions_total\{[^}]*\} (\d+)$/gm)) sum += Number(m[1]);
  return sum;
}

const dispatch = (front: string, plugin: string, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
  httpRequest(front, {
    method: 'POST',
    path: DISPATCH,
    headers: { 'x-plugin-id': plugin, 'content-type': 'application/json', ...headers },
    body: '{"model":"gpt-4o-mini"}',
    timeoutMs: 10_000,
  });

describe('real Envoy carries a long streamed dispatch whole, in order and as it comes (deploy/envoy/envoy.yaml)', () => {
  let h: Harness;
  let envoy: RunningEnvoy;

  before(async () => {
    h = await gateAndFleet();
    envoy = await startEnvoy({ config: 'deploy/envoy/envoy.yaml', addresses: { 'plugin-gate-headless:9191': `127.0.0.1:${h.gate.grpcPort}` } });
  });
  after(async () => {
    await envoy?.dispose();
    await h?.close();
  });

  it('16 chunks over 4 s arrive complete, in order, the first long before the last', async () => {
    const CHUNKS = 16;
    const INTERVAL = 250;
    const front = envoy.listener('plugin_daemon');
    const [host, port] = front.split(':') as [string, string];
    const arrivals: { at: number; text: string }[] = [];
    const t0 = Date.now();
    const res = await new Promise<{ status: number; pod: string }>((resolve, reject) => {
      const req = http.request(
        {
          host,
          port: Number(port),
          method: 'POST',
          path: DISPATCH,
          agent: false,
          headers: { 'x-plugin-id': TARGET, 'content-type': 'application/json', [SIM_STREAM_HEADER]: `${CHUNKS}@${INTERVAL}` },
        },
        (r) => {
          r.on('data', (c: Buffer) => arrivals.push({ at: Date.now() - t0, text: c.toString('utf8') }));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, pod: String(r.headers['x-sim-pod']) }));
          r.on('error', reject);
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error('stream timed out')));
      req.on('error', reject);
      req.end('{}');
    });
    assert.equal(res.status, 200, envoy.log());
    assert.equal(res.pod, 'pod-2');
    const lines = arrivals
      .map((a) => a.text)
      .join('')
      .split('\n')
      .filter((l) => l !== '');
    assert.equal(lines.length, CHUNKS);
    lines.forEach((l, i) => {
      const msg = JSON.parse(l) as { code: number; data: { served_by: string; chunk: number } };
      assert.equal(msg.code, 0);
      assert.equal(msg.data.chunk, i, 'in order');
      assert.equal(msg.data.served_by, 'pod-2');
    });
    // Not buffered to the end: the stream spans (CHUNKS-1) x INTERVAL = 3.75 s at the pod, and the
    // client saw its first line seconds before its last (a generous bound on a shared machine).
    const first = arrivals[0]!.at;
    const last = arrivals.at(-1)!.at;
    assert.ok(last - first >= 2_000, `first line at ${first} ms, last at ${last} ms`);
  });
});

/** deploy/README.md's transport socket for the gate cluster, with its names and files pointed at the test PKI. */
function documentedTransportSocket(o: { ca: CertFiles; client?: CertFiles }): Record<string, any> {
  const readme = readFileSync(join(packageRoot(), 'deploy/README.md'), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => /^\s*transport_socket:/m.test(b));
  assert.ok(block, 'deploy/README.md shows the transport socket');
  const ts = (parse(block) as { transport_socket: Record<string, any> }).transport_socket;
  const text = JSON.stringify(ts)
    // The documented name is the headless Service's; the test certificate names localhost.
    .replaceAll('plugin-gate-headless.dify.svc.cluster.local', 'localhost')
    .replaceAll('/etc/envoy/plugin-gate-tls/ca.crt', o.ca.cert)
    .replaceAll('/etc/envoy/plugin-gate-tls/tls.crt', o.client?.cert ?? '')
    .replaceAll('/etc/envoy/plugin-gate-tls/tls.key', o.client?.key ?? '');
  const out = JSON.parse(text) as Record<string, any>;
  if (o.client === undefined) delete out['typed_config']['common_tls_context']['tls_certificates'];
  return out;
}

describe('real Envoy to the gate over TLS and mutual TLS (deploy/README.md transport socket)', () => {
  let pki: TestPki;
  let ca: CertFiles;
  let server: CertFiles;
  let client: CertFiles;
  let wrongClient: CertFiles;

  before(() => {
    pki = new TestPki();
    ca = pki.ca('gate-ca');
    server = pki.leaf('gate', ca, 'server');
    client = pki.leaf('envoy', ca, 'client');
    wrongClient = pki.leaf('intruder', pki.ca('other-ca'), 'client');
  });
  after(() => pki?.remove());

  const withTls = (h: Harness, socket: Record<string, any>): Promise<RunningEnvoy> =>
    startEnvoy({
      config: 'deploy/envoy/envoy.yaml',
      addresses: { 'plugin-gate-headless:9191': `127.0.0.1:${h.gate.grpcPort}` },
      amend: (doc) => {
        const gate = (doc['static_resources']['clusters'] as Record<string, any>[]).find((c) => c['name'] === 'plugin_gate')!;
        gate['transport_socket'] = socket;
      },
    });

  it('TLS: Envoy verifies the gate against the CA and routes as before', async () => {
    const h = await gateAndFleet({ 'tls-cert': server.cert, 'tls-key': server.key });
    let envoy: RunningEnvoy | undefined;
    try {
      envoy = await withTls(h, documentedTransportSocket({ ca }));
      for (let i = 0; i < 5; i++) {
        const res = await dispatch(envoy.listener('plugin_daemon'), TARGET);
        assert.equal(res.status, 200, res.body + envoy.log());
        assert.equal(res.headers['x-sim-pod'], 'pod-2');
      }
      const denied = await dispatch(envoy.listener('plugin_daemon'), SLOW);
      assert.equal(denied.status, 503);
      assert.equal(denied.headers['x-plugin-gate-reason'], 'plugin_starting');
      assert.ok(((await envoy.stats('ssl')).get('cluster.plugin_gate.ssl.handshake') ?? 0) >= 1, 'the gate cluster spoke TLS');
    } finally {
      await envoy?.dispose();
      await h.close();
    }
  });

  it("mutual TLS: Envoy's client certificate from the gate's CA passes; one from another CA fails closed and no Check runs", async () => {
    const h = await gateAndFleet({ 'tls-cert': server.cert, 'tls-key': server.key, 'tls-client-ca': ca.cert });
    let good: RunningEnvoy | undefined;
    let bad: RunningEnvoy | undefined;
    try {
      good = await withTls(h, documentedTransportSocket({ ca, client }));
      const res = await dispatch(good.listener('plugin_daemon'), TARGET);
      assert.equal(res.status, 200, res.body + good.log());
      assert.equal(res.headers['x-sim-pod'], 'pod-2');
      await good.dispose();
      good = undefined;

      const checksBefore = await decisionsOf(h);
      const hits = h.fleet.pods[1]!.stats.hits.get(TARGET) ?? 0;
      bad = await withTls(h, documentedTransportSocket({ ca, client: wrongClient }));
      for (let i = 0; i < 3; i++) {
        const r = await dispatch(bad.listener('plugin_daemon'), TARGET);
        assert.equal(r.status, 503, r.body + bad.log());
        assert.equal(r.headers['x-sim-pod'], undefined);
      }
      assert.equal(h.fleet.pods[1]!.stats.hits.get(TARGET) ?? 0, hits, 'nothing reached a pod');
      const badEnvoy = bad;
      await eventually('UAEX in the access log', () => badEnvoy.accessLog().filter((l) => l['flags'] === 'UAEX').length >= 3, 5_000);
      assert.equal(await decisionsOf(h), checksBefore, 'the gate answered no Check for that Envoy');
      const stats = await bad.stats('cluster.plugin_gate.');
      // The handshake fails (the gate rejects the certificate): connection failures, and the gate's
      // health check fails too.
      assert.ok((stats.get('cluster.plugin_gate.upstream_cx_connect_fail') ?? 0) >= 3, JSON.stringify([...stats]));
      assert.ok((stats.get('cluster.plugin_gate.health_check.failure') ?? 0) >= 1);
    } finally {
      await good?.dispose();
      await bad?.dispose();
      await h.close();
    }
  });
});

describe("real Envoy's http_service in front of the HTTP forward-auth face (deploy/envoy/envoy-http-service.yaml)", () => {
  let h: Harness;
  let envoy: RunningEnvoy;
  let front = '';

  before(async () => {
    h = await gateAndFleet({ 'http-request-from': 'request', 'http-deny-status': '429' });
    envoy = await startEnvoy({ config: 'deploy/envoy/envoy-http-service.yaml', addresses: { 'plugin-gate-headless:9192': `127.0.0.1:${h.gate.httpPort}` } });
    front = envoy.listener('plugin_daemon');
  });
  after(async () => {
    await envoy?.dispose();
    await h?.close();
  });

  it('routes to the pod the gate named, whatever x-plugin-gate-upstream or x-original-url the client sends', async () => {
    h.fleet.pods.forEach((p) => p.resetStats());
    const [p1, , p3] = h.fleet.pods.map((p) => p.address) as [string, string, string];
    const spoofs: Record<string, string>[] = [{}, { 'x-plugin-gate-upstream': p1 }, { 'x-envoy-original-dst-host': p3 }, { 'x-original-url': 'http://d/health/check', 'x-forwarded-uri': '/health/check' }];
    for (const spoof of spoofs) {
      for (let i = 0; i < 5; i++) {
        const res = await dispatch(front, TARGET, spoof);
        assert.equal(res.status, 200, `${JSON.stringify(spoof)}: ${res.status} ${res.body}\n${envoy.log()}`);
        assert.equal(res.headers['x-sim-pod'], 'pod-2');
      }
    }
    assert.deepEqual(Object.fromEntries(h.fleet.hitsFor(TARGET)), { 'pod-1': 0, 'pod-2': 20, 'pod-3': 0 });
  });

  it('a denial reaches the client with the documented status 429, retry-after, the gate headers and the envelope', async () => {
    const res = await dispatch(front, SLOW, { 'x-original-url': 'http://d/health/check' });
    assert.equal(res.status, 429, res.body + envoy.log());
    assert.equal(res.headers['retry-after'], '5');
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['x-plugin-gate-reason'], 'plugin_starting');
    const env = parseEnvelopeLine(res.body);
    assert.equal(env.code, -500);
    assert.match(env.message, /plugin runtime not found/);
    const bad = await dispatch(front, 'Bad/ID');
    assert.equal(bad.status, 400);
    assert.equal(parseEnvelopeLine(bad.body).code, -400);
    for (const p of h.fleet.pods) assert.equal((p.stats.hits.get(SLOW) ?? 0) + (p.stats.misses.get(SLOW) ?? 0), 0);
  });

  it("the access log carries the gate's reason and decision id from its response headers", async () => {
    const res = await dispatch(front, TARGET);
    assert.equal(res.status, 200);
    const denied = await dispatch(front, SLOW);
    const id = String(denied.headers['x-plugin-gate-decision-id']);
    await eventually('access log line of the denial', () => envoy.accessLog().some((l) => l['gate_decision_id'] === id), 5_000);
    const line = envoy.accessLog().find((l) => l['gate_decision_id'] === id)!;
    assert.equal(line['gate_reason'], 'plugin_starting');
    assert.equal(line['status'], 429);
    const allowLine = envoy.accessLog().filter((l) => l['plugin'] === TARGET && l['status'] === 200).at(-1)!;
    assert.equal(allowLine['gate_reason'], 'plugin_ready');
    assert.equal(allowLine['upstream_host'], h.fleet.pods[1]!.address);
  });
});
