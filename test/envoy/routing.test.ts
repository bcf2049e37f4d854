/**
 * Through a real Envoy: the shipped configurations deploy/envoy/envoy.yaml
 * (the pod from ext_authz dynamic metadata) and envoy-header-routing.yaml (the
 * pod from x-envoy-original-dst-host, gate run with --route-header), with only
 * addresses and ports substituted. The gate and the simulated fleet run on
 * loopback (one ManualScheduler: states set up exactly); the client talks only
 * to Envoy, and the pods say who served each request.
 *
 * One Envoy per configuration serves every assertion of its block.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MemoryLog, startE2e } from '../support/e2e.js';
import { httpRequest, parseEnvelopeLine, type HttpAnswer } from '../support/envoy-client.js';
import { startEnvoy, type RunningEnvoy } from '../support/envoy.js';
import { eventually, type Harness } from '../support/gate.js';
import { createLogger } from '../../src/observe/logger.js';
import { packageRoot } from '../../src/core/package-root.js';
import type { RawValues } from '../../src/config/config.js';

const TARGET = 'e2e/target'; // ready on pod-2 only
const SPREAD = 'e2e/spread'; // ready on pod-1 and pod-3
const SLOW = 'e2e/slow'; // starting everywhere
const NEVER = 3_600_000;
const DISPATCH = '/plugin/tenant-1/dispatch/llm/invoke';
const GATE = 'plugin-gate-headless:9191';

/** Sends `n` requests, `width` at a time; answers in completion order. */
async function many(n: number, width: number, send: () => Promise<HttpAnswer>): Promise<HttpAnswer[]> {
  const out: HttpAnswer[] = [];
  let left = n;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (left > 0) {
        left--;
        out.push(await send());
      }
    }),
  );
  return out;
}

function tally(answers: readonly HttpAnswer[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const a of answers) {
    const k = `${a.status} ${String(a.headers['x-sim-pod'] ?? '-')}`;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

/** The README's join command (the fenced block after its marker comment), run by bash on real files. */
function readmeJoinCommand(): string {
  const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8');
  const m = /<!-- join-command -->\s*```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, 'README.md has the join command after <!-- join-command -->');
  return m[1]!.trim();
}

function routingSuite(title: string, config: string, flags: RawValues): void {
  describe(title, () => {
    let h: Harness;
    let envoy: RunningEnvoy;
    const gateLog = new MemoryLog();
    let front = '';

    const send = (opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<HttpAnswer> =>
      httpRequest(front, { timeoutMs: 10_000, ...opts });
    const dispatch = (plugin: string, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
      send({ method: 'POST', path: DISPATCH, headers: { 'x-plugin-id': plugin, 'content-type': 'application/json', ...headers }, body: '{"model":"gpt-4o-mini"}' });
    const why = (): string => `\nEnvoy log:\n${envoy.log().slice(-3000)}`;
    const neverSaw = (plugin: string): void => {
      for (const p of h.fleet.pods) assert.equal((p.stats.hits.get(plugin) ?? 0) + (p.stats.misses.get(plugin) ?? 0), 0, `${p.name} never saw ${plugin}`);
    };

    before(async () => {
      h = await startE2e(
        {
          pods: 3,
          plugins: [
            { id: TARGET, launchMs: 1_000 },
            { id: SPREAD, launchMs: 1_000 },
            { id: SLOW, launchMs: NEVER },
          ],
          podPlugins: [{ [TARGET]: { launchMs: NEVER } }, { [SPREAD]: { launchMs: NEVER } }, { [TARGET]: { launchMs: NEVER } }],
        },
        { 'decision-log': 'all', 'decision-log-rate': '0', ...flags },
        { logger: createLogger('info', [], gateLog) },
      );
      await h.gate.whenReady();
      h.sched.advance(1_000);
      const s = await h.poll();
      const [p1, p2, p3] = h.fleet.pods.map((p) => p.address);
      assert.deepEqual(s.plugins.get(TARGET)?.readyPods, [p2]);
      assert.deepEqual([...(s.plugins.get(SPREAD)?.readyPods ?? [])].sort(), [p1, p3].sort());
      envoy = await startEnvoy({ config, addresses: { [GATE]: `127.0.0.1:${h.gate.grpcPort}` } });
      front = envoy.listener('plugin_daemon');
    });

    after(async () => {
      await envoy?.dispose();
      await h?.close();
    });

    it('a plugin ready only on pod-2 lands on pod-2, 200 requests out of 200', async () => {
      h.fleet.pods.forEach((p) => p.resetStats());
      const answers = await many(200, 8, () => dispatch(TARGET));
      assert.deepEqual(tally(answers), { '200 pod-2': 200 }, why());
      for (const a of answers) assert.equal((JSON.parse(a.body.split('\n')[0]!) as { data: { served_by: string } }).data.served_by, 'pod-2');
      assert.deepEqual(Object.fromEntries(h.fleet.hitsFor(TARGET)), { 'pod-1': 0, 'pod-2': 200, 'pod-3': 0 });
    });

    it('a plugin ready on pod-1 and pod-3 is spread over both and never sent to pod-2', async () => {
      h.fleet.pods.forEach((p) => p.resetStats());
      const answers = await many(200, 8, () => dispatch(SPREAD));
      const t = tally(answers);
      assert.equal((t['200 pod-1'] ?? 0) + (t['200 pod-3'] ?? 0), 200, JSON.stringify(t) + why());
      // Round robin over two pods: each gets half, whatever the interleaving of concurrent requests.
      assert.ok((t['200 pod-1'] ?? 0) >= 80 && (t['200 pod-3'] ?? 0) >= 80, JSON.stringify(t));
      assert.equal(h.fleet.pods[1]!.stats.misses.get(SPREAD) ?? 0, 0);
    });

    it('a starting plugin gets 503 with retry-after, content-type, x-plugin-gate-reason and the one-line envelope; no pod sees it', async () => {
      h.fleet.pods.forEach((p) => p.resetStats());
      const res = await dispatch(SLOW);
      assert.equal(res.status, 503, res.body + why());
      assert.equal(res.headers['retry-after'], '5');
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(res.headers['x-plugin-gate-reason'], 'plugin_starting');
      assert.match(String(res.headers['x-plugin-gate-decision-id']), /^[A-Za-z0-9._-]+$/);
      const env = parseEnvelopeLine(res.body);
      assert.equal(env.code, -500);
      assert.equal(env.errorType, 'PluginDaemonInternalServerError');
      assert.match(env.message, /plugin runtime not found/);
      neverSaw(SLOW);
    });

    it('an invalid plugin id gets 400 with the bad-request envelope', async () => {
      const res = await dispatch('Bad/ID');
      assert.equal(res.status, 400, res.body + why());
      assert.equal(res.headers['x-plugin-gate-reason'], 'invalid_plugin_id');
      const env = parseEnvelopeLine(res.body);
      assert.equal(env.code, -400);
      assert.equal(env.errorType, 'PluginDaemonBadRequestError');
    });

    it("a client's x-envoy-original-dst-host, x-plugin-gate-* or x-original-url never changes where a request goes", async () => {
      h.fleet.pods.forEach((p) => p.resetStats());
      const [p1, , p3] = h.fleet.pods.map((p) => p.address) as [string, string, string];
      const spoofs: Record<string, string>[] = [
        { 'x-envoy-original-dst-host': p1 },
        { 'x-envoy-original-dst-host': `${p3},${p1}` },
        { 'x-plugin-gate-upstream': p3, 'x-plugin-gate-reason': 'plugin_ready', 'x-plugin-gate-decision-id': 'forged' },
        { 'x-original-url': `http://plugin-daemon:5002/health/check`, 'x-forwarded-uri': '/health/check' },
      ];
      for (const spoof of spoofs) {
        for (let i = 0; i < 5; i++) {
          const res = await dispatch(TARGET, spoof);
          assert.equal(res.status, 200, `${JSON.stringify(spoof)}: ${res.body}${why()}`);
          assert.equal(res.headers['x-sim-pod'], 'pod-2', `${JSON.stringify(spoof)}: the gate chose, not the client`);
        }
        const denied = await dispatch(SLOW, spoof);
        assert.equal(denied.status, 503, `${JSON.stringify(spoof)} cannot lift a deny`);
        assert.equal(denied.headers['x-plugin-gate-reason'], 'plugin_starting');
      }
      assert.deepEqual(Object.fromEntries(h.fleet.hitsFor(TARGET)), { 'pod-1': 0, 'pod-2': 20, 'pod-3': 0 });
      neverSaw(SLOW);
      // A path the gate routes to any live pod: a forged destination off the fleet is never dialled.
      const res = await send({ path: '/plugin/tenant-1/management/list', headers: { 'x-envoy-original-dst-host': `127.0.0.1:${h.gate.adminPort}` } });
      assert.equal(res.status, 200, res.body + why());
      assert.match(String(res.headers['x-sim-pod']), /^pod-[123]$/);
    });

    it("the access log carries the gate's decision_id and reason, and the README's command joins a line to its gate decision", async () => {
      const allowed = await dispatch(TARGET);
      const denied = await dispatch(SLOW);
      assert.equal(allowed.status, 200);
      assert.equal(denied.status, 503);
      const deniedId = String(denied.headers['x-plugin-gate-decision-id']);
      // Envoy writes the line once the stream completes, which can trail the client's last byte.
      const lines = (): Record<string, unknown>[] => envoy.accessLog().filter((l) => l['plugin'] === TARGET || l['plugin'] === SLOW);
      await eventually('access log lines', () => lines().some((l) => l['gate_decision_id'] === deniedId), 5_000);
      const allowLine = lines().filter((l) => l['plugin'] === TARGET).at(-1)!;
      assert.equal(allowLine['gate_reason'], 'plugin_ready');
      assert.match(String(allowLine['gate_decision_id']), /^[A-Za-z0-9._-]+$/);
      assert.equal(allowLine['upstream_host'], h.fleet.pods[1]!.address);
      const denyLine = lines().find((l) => l['gate_decision_id'] === deniedId)!;
      assert.equal(denyLine['gate_reason'], 'plugin_starting');
      assert.equal(denyLine['deny_reason'], 'plugin_starting');
      assert.equal(denyLine['status'], 503);

      const dir = mkdtempSync(join(tmpdir(), 'pg-join-'));
      try {
        writeFileSync(join(dir, 'envoy-access.log'), envoy.accessLogText());
        writeFileSync(join(dir, 'gate.log'), gateLog.text());
        const out = execFileSync('bash', ['-c', readmeJoinCommand()], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
        const joined = out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { envoy: Record<string, unknown>; gate: Record<string, unknown> });
        const allowId = String(allowLine['gate_decision_id']);
        const a = joined.filter((j) => j.envoy['gate_decision_id'] === allowId);
        assert.equal(a.length, 1, out);
        assert.equal(a[0]!.gate['decision_id'], allowId);
        assert.equal(a[0]!.gate['reason'], 'plugin_ready');
        assert.equal(a[0]!.gate['upstream'], h.fleet.pods[1]!.address);
        assert.equal(a[0]!.envoy['upstream_host'], a[0]!.gate['upstream'], 'Envoy went where the gate said');
        const d = joined.filter((j) => j.envoy['gate_decision_id'] === deniedId);
        assert.equal(d.length, 1, out);
        assert.equal(d[0]!.gate['reason'], 'plugin_starting');
        assert.equal(d[0]!.gate['status'], 503);
        // Every access-log line of a gated request found its decision.
        assert.equal(joined.length, envoy.accessLog().filter((l) => typeof l['gate_decision_id'] === 'string').length);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('paths that are not plugin-scoped reach live pods only', async () => {
      await h.fleet.pods[2]!.setMode('refuse');
      let s = h.gate.snapshot();
      for (let i = 0; i < 3; i++) s = await h.poll();
      assert.equal(s.pods.get(h.fleet.pods[2]!.address)?.state, 'unreachable');
      const served = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const res = await send({ path: '/plugin/tenant-1/management/list?page=1' });
        assert.equal(res.status, 200, res.body + why());
        served.add(String(res.headers['x-sim-pod']));
      }
      assert.deepEqual([...served].sort(), ['pod-1', 'pod-2'], 'round robin over the live pods only');
      const webhook = await send({ method: 'POST', path: '/e/hook-123/run', body: '{}' });
      assert.equal(webhook.status, 200, webhook.body + why());
      assert.match(String(webhook.headers['x-sim-pod']), /^pod-[12]$/);
      await h.fleet.pods[2]!.setMode('normal');
    });
  });
}

routingSuite('real Envoy, routed by ext_authz dynamic metadata (deploy/envoy/envoy.yaml)', 'deploy/envoy/envoy.yaml', {});
routingSuite('real Envoy, routed by header (deploy/envoy/envoy-header-routing.yaml, --route-header)', 'deploy/envoy/envoy-header-routing.yaml', {
  'route-header': 'x-envoy-original-dst-host',
});
