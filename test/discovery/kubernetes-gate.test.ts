/**
 * The whole gate on discovery=kubernetes: the API-server stand-in lists and
 * watches one EndpointSlice per simulated daemon pod, reached through a
 * kubeconfig (CA file, tokenFile); real gRPC Checks go to the gate. Asserted:
 * not ready before the first list, pod names wherever a pod is shown, and no
 * Check routed to a pod once the gate has seen it terminating or gone.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startHarness, eventually, type Harness } from '../support/gate.js';
import { MemoryLog } from '../support/e2e.js';
import { EnvoyAuthClient, dispatchCheck } from '../support/envoy-client.js';
import { KubeApiStandIn, type StandInSlice } from '../support/kube-api.js';
import { createLogger } from '../../src/observe/logger.js';
import type { SimDaemon } from '../../src/sim/daemon.js';

const SERVICE = 'plugin-daemon';
const PLUGIN = 'langgenius/openai';

/** One slice per sim pod: they share 127.0.0.1 and differ by port, and a slice's port is per slice. */
function sliceOf(pod: SimDaemon, i: number, more: { terminating?: boolean; ready?: boolean } = {}): StandInSlice {
  return {
    name: `${SERVICE}-s${i}`,
    service: SERVICE,
    endpoints: [{ ip: '127.0.0.1', pod: `${SERVICE}-${i}`, ready: more.ready ?? true, serving: true, terminating: more.terminating ?? false }],
    ports: [{ name: 'http', port: Number(pod.address.split(':')[1]) }],
  };
}

function kubeconfigFile(dir: string, api: KubeApiStandIn, tokenFile: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(join(dir, 'ca.crt'), api.ca.certPem);
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'current-context: test',
      'clusters:',
      '- name: stand-in',
      '  cluster:',
      `    server: ${api.url}`,
      '    certificate-authority: ca.crt',
      'users:',
      '- name: gate',
      '  user:',
      `    tokenFile: ${tokenFile}`,
      'contexts:',
      '- name: test',
      '  context: {cluster: stand-in, user: gate, namespace: dify}',
      '',
    ].join('\n'),
  );
  return path;
}

describe('the gate on Kubernetes discovery', { timeout: 120_000 }, () => {
  let api: KubeApiStandIn;
  let dir: string;
  let kubeconfig: string;
  let h: Harness | undefined;
  let client: EnvoyAuthClient | undefined;
  const log = new MemoryLog();

  before(async () => {
    api = await KubeApiStandIn.start({ tokens: ['gate-token'], services: [`dify/${SERVICE}`] });
    dir = mkdtempSync(join(tmpdir(), 'pg-kgate-'));
    writeFileSync(join(dir, 'token'), 'gate-token');
    kubeconfig = kubeconfigFile(dir, api, join(dir, 'token'));
  });
  after(async () => {
    client?.close();
    await h?.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not ready until the first list has answered', async () => {
    api.forbidden.add('gate-token');
    const g = await startHarness(
      { pods: 1, plugins: [{ id: PLUGIN, launchMs: 1_000 }] },
      { discovery: 'kubernetes', kubeconfig, 'kubernetes-service': SERVICE, 'kubernetes-port': 'http' },
      (fleet) => {
        api.setSlice(sliceOf(fleet.pods[0]!, 0));
      },
    );
    try {
      await eventually('discovery refused', () => g.gate.snapshot().discoveryError?.code === 'discovery_forbidden');
      assert.equal(g.gate.snapshot().complete, false);
      const c = new EnvoyAuthClient(g.gate.grpcPort);
      try {
        const out = await c.check(dispatchCheck(PLUGIN));
        assert.equal(out.metadata['reason'] ?? out.deniedHeaders.get('x-plugin-gate-reason')?.[0], 'gate_not_ready');
      } finally {
        c.close();
      }
      api.forbidden.delete('gate-token');
      // The retry waits out its backoff on the gate's scheduler: move it on until the list answers.
      await eventually('ready once the Role is granted', () => {
        g.sched.advance(1_000);
        return g.gate.snapshot().complete;
      });
      assert.equal(g.gate.snapshot().discoveryError, undefined);
      assert.equal(g.gate.snapshot().pods.get(g.fleet.pods[0]!.address)?.name, `${SERVICE}-0`);
    } finally {
      await g.close();
      api.deleteSlice(`${SERVICE}-s0`);
    }
  });

  it('routes no Check to a pod after it saw the pod terminating, and none after it saw it gone', async () => {
    h = await startHarness(
      { pods: 3, plugins: [{ id: PLUGIN, launchMs: 1_000 }] },
      { discovery: 'kubernetes', kubeconfig, 'kubernetes-service': SERVICE, 'decision-log': 'all' },
      (fleet) => {
        fleet.pods.forEach((p, i) => api.setSlice(sliceOf(p, i)));
      },
      createLogger('info', [], log),
    );
    await h.gate.whenReady();
    h.sched.advance(2_000);
    await h.poll();
    const [p0, p1, p2] = h.fleet.pods.map((p) => p.address) as [string, string, string];
    assert.deepEqual(h.gate.snapshot().plugins.get(PLUGIN)?.readyPods, [p0, p1, p2].sort());
    client = new EnvoyAuthClient(h.gate.grpcPort);

    // The moment the gate's view first shows each change (the snapshot listener runs inside the swap).
    let seenTerminating = Infinity;
    let seenGone = Infinity;
    h.gate.tracker.onSnapshot((snap) => {
      if (seenTerminating === Infinity && snap.pods.get(p1)?.state === 'terminating') seenTerminating = performance.now();
      if (seenGone === Infinity && snap.pods.get(p2)?.state === 'removed') seenGone = performance.now();
    });

    // Checks in a steady stream, four in flight, each stamped when it was sent.
    const answers: { sentAt: number; upstream: string | undefined; reason: string | undefined }[] = [];
    let running = true;
    const worker = async (): Promise<void> => {
      while (running) {
        const sentAt = performance.now();
        const out = await client!.check(dispatchCheck(PLUGIN));
        answers.push({ sentAt, upstream: out.metadata['upstream_host'], reason: out.metadata['reason'] });
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    try {
      await eventually('Checks reach every pod', () => [p0, p1, p2].every((p) => answers.some((a) => a.upstream === p)));
      api.setSlice(sliceOf(h.fleet.pods[1]!, 1, { terminating: true, ready: false }));
      await eventually('the gate sees the pod terminating', () => seenTerminating !== Infinity);
      const n = answers.length;
      await eventually('Checks after it', () => answers.length > n + 50);
      api.deleteSlice(`${SERVICE}-s2`);
      await eventually('the gate sees the pod gone', () => seenGone !== Infinity);
      const m = answers.length;
      await eventually('Checks after that', () => answers.length > m + 50);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    const afterTerminating = answers.filter((a) => a.sentAt > seenTerminating);
    const afterGone = answers.filter((a) => a.sentAt > seenGone);
    assert.ok(afterTerminating.length > 100 && afterGone.length > 50);
    assert.equal(afterTerminating.filter((a) => a.upstream === p1).length, 0, 'no Check to the terminating pod once seen');
    assert.equal(afterGone.filter((a) => a.upstream === p2).length, 0, 'no Check to the removed pod once seen');
    assert.ok(afterGone.every((a) => a.upstream === p0 && a.reason === 'plugin_ready'), 'all served by the one pod left');

    // Shown with its name and conditions: /status, the page, metrics, logs.
    const base = `http://127.0.0.1:${h.gate.adminPort}`;
    const status = (await (await fetch(`${base}/status`)).json()) as { pods: { address: string; name: string | null; state: string; endpoint: unknown }[] };
    const s1 = status.pods.find((p) => p.address === p1)!;
    assert.deepEqual({ name: s1.name, state: s1.state, endpoint: s1.endpoint }, {
      name: `${SERVICE}-1`,
      state: 'terminating',
      endpoint: { ready: false, serving: true, terminating: true },
    });
    assert.deepEqual(
      status.pods.filter((p) => p.address === p0).map((p) => [p.name, p.state, p.endpoint]),
      [[`${SERVICE}-0`, 'live', { ready: true, serving: true, terminating: false }]],
    );
    const html = await (await fetch(`${base}/`)).text();
    assert.match(html, new RegExp(`<th class="pod terminating">${SERVICE}-1<br>${p1.replace(/\./g, '\\.')}<br><small>terminating`));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, new RegExp(`plugin_gate_pod_live\\{pod="${p1.replace(/\./g, '\\.')}",pod_name="${SERVICE}-1",state="terminating"\\} 0`));
    assert.match(metrics, new RegExp(`plugin_gate_pod_live\\{pod="${p0.replace(/\./g, '\\.')}",pod_name="${SERVICE}-0",state="live"\\} 1`));
    const change = log.records().find((r) => r['msg'] === 'pod state changed' && r['pod'] === p1 && r['to'] === 'terminating');
    assert.equal(change?.['pod_name'], `${SERVICE}-1`);
    assert.equal(change?.['from'], 'live');
    const decision = log.records().find((r) => r['msg'] === 'decision' && r['upstream'] === p0);
    assert.equal(decision?.['upstream_pod_name'], `${SERVICE}-0`, 'the decision log names the chosen pod');
  });
});
