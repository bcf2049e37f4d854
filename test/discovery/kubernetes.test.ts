/**
 * Kubernetes discovery against the API-server stand-in (test/support/kube-api.ts):
 * real TLS, bearer tokens, the list JSON and newline-delimited watch events.
 * In-cluster credentials come from a service-account directory of the test's own.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeCredentials } from '../../src/config/kubernetes-files.js';
import type { GateError } from '../../src/core/errors.js';
import { KubernetesDiscovery, portSpecOf, type KubernetesDiscoveryOptions } from '../../src/discovery/kubernetes.js';
import type { Endpoint } from '../../src/discovery/types.js';
import { KubeApiStandIn, type StandInSlice } from '../support/kube-api.js';
import { eventually } from '../support/gate.js';

interface Call {
  readonly addresses: readonly string[];
  readonly error: GateError | undefined;
  readonly endpoints: ReadonlyMap<string, Endpoint> | undefined;
}

class Recorder {
  readonly calls: Call[] = [];
  readonly listener = (addresses: readonly string[], error: GateError | undefined, endpoints?: ReadonlyMap<string, Endpoint>): void => {
    this.calls.push({ addresses, error, endpoints });
  };
  get last(): Call | undefined {
    return this.calls.at(-1);
  }
  async until(what: string, check: (c: Call) => boolean, ms = 8_000): Promise<Call> {
    await eventually(what, () => this.last !== undefined && check(this.last), ms);
    return this.last!;
  }
}

const SERVICE = 'plugin-daemon';
const slice = (name: string, endpoints: StandInSlice['endpoints'], port = 5002): StandInSlice => ({
  name,
  service: SERVICE,
  endpoints,
  ports: [{ name: 'http', port }],
});

describe('Kubernetes discovery against the API-server stand-in', { timeout: 120_000 }, () => {
  let api: KubeApiStandIn;
  let saDir: string;
  const running: KubernetesDiscovery[] = [];

  before(async () => {
    api = await KubeApiStandIn.start({ tokens: ['token-1'], services: [`dify/${SERVICE}`] });
    saDir = mkdtempSync(join(tmpdir(), 'pg-sa-'));
    writeFileSync(join(saDir, 'token'), 'token-1\n');
    writeFileSync(join(saDir, 'ca.crt'), api.ca.certPem);
    writeFileSync(join(saDir, 'namespace'), 'dify');
  });
  after(async () => {
    await Promise.all(running.map((d) => d.stop()));
    await api.close();
    rmSync(saDir, { recursive: true, force: true });
  });

  function discovery(more: Partial<KubernetesDiscoveryOptions> = {}): KubernetesDiscovery {
    const credentials = kubeCredentials({
      kubeconfig: undefined,
      env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(api.port) },
      serviceAccountDir: saDir,
    });
    const d = new KubernetesDiscovery({
      credentials,
      namespace: credentials.namespace!,
      service: SERVICE,
      port: portSpecOf('http'),
      timeoutMs: 2_000,
      watchTimeoutMs: 30_000,
      random: () => 0.5,
      ...more,
    });
    running.push(d);
    return d;
  }

  async function stop(d: KubernetesDiscovery): Promise<void> {
    await d.stop();
    running.splice(running.indexOf(d), 1);
  }

  it('lists, then watches from the list resourceVersion with bookmarks; pod names and conditions come along', async () => {
    api.setSlice(slice('pd-a', [{ ip: '10.0.0.1', pod: 'plugin-daemon-0', ready: true }, { ip: '10.0.0.2', pod: 'plugin-daemon-1', ready: false, serving: false }]));
    const listRv = api.resourceVersion;
    const rec = new Recorder();
    const d = discovery();
    d.start(rec.listener);
    const first = await rec.until('first list', (c) => c.addresses.length === 2);
    assert.deepEqual(first.addresses, ['10.0.0.1:5002', '10.0.0.2:5002']);
    assert.equal(first.error, undefined);
    assert.deepEqual(first.endpoints?.get('10.0.0.1:5002'), { podName: 'plugin-daemon-0', ready: true, serving: true, terminating: false });
    assert.deepEqual(first.endpoints?.get('10.0.0.2:5002'), { podName: 'plugin-daemon-1', ready: false, serving: false, terminating: false });

    await eventually('a watch is open', () => api.openWatches() === 1);
    const w = api.watchRequests().at(-1)!;
    assert.equal(w.query.get('resourceVersion'), listRv);
    assert.equal(w.query.get('allowWatchBookmarks'), 'true');
    assert.equal(w.query.get('timeoutSeconds'), '30');
    assert.equal(w.query.get('labelSelector'), `kubernetes.io/service-name=${SERVICE}`);
    assert.equal(w.token, 'token-1');

    // A second slice, then a pod turning terminating, then a slice deleted: each one event, each one new set.
    api.setSlice(slice('pd-b', [{ ip: '10.0.0.3', pod: 'plugin-daemon-2' }]));
    await rec.until('ADDED slice', (c) => c.addresses.includes('10.0.0.3:5002'));
    api.setSlice(slice('pd-a', [{ ip: '10.0.0.1', pod: 'plugin-daemon-0', ready: false, serving: true, terminating: true }, { ip: '10.0.0.2', pod: 'plugin-daemon-1', ready: true }]));
    const term = await rec.until('MODIFIED: terminating', (c) => c.endpoints?.get('10.0.0.1:5002')?.terminating === true);
    assert.deepEqual(term.endpoints?.get('10.0.0.1:5002'), { podName: 'plugin-daemon-0', ready: false, serving: true, terminating: true });
    api.deleteSlice('pd-b');
    await rec.until('DELETED slice', (c) => !c.addresses.includes('10.0.0.3:5002'));

    // A bookmark moves the resourceVersion on: the next watch starts from it, and no list is needed.
    const bookmarkRv = api.bookmark();
    await new Promise((r) => setTimeout(r, 100));
    const lists = api.listRequests().length;
    api.dropWatches();
    await eventually('watch re-opened', () => api.openWatches() === 1);
    assert.equal(api.watchRequests().at(-1)!.query.get('resourceVersion'), bookmarkRv);
    assert.equal(api.listRequests().length, lists, 'no list after a dropped watch');
    await stop(d);
    api.deleteSlice('pd-a');
  });

  it('a dropped watch reconnects (with backoff) from the last resourceVersion and catches up on what it missed', async () => {
    api.setSlice(slice('pd-c', [{ ip: '10.0.1.1', pod: 'plugin-daemon-0' }]));
    const rec = new Recorder();
    const d = discovery();
    d.start(rec.listener);
    await rec.until('first list', (c) => c.addresses.length === 1);
    await eventually('a watch is open', () => api.openWatches() === 1);
    const listsBefore = api.listRequests().length;
    const watchesBefore = api.watchRequests().length;

    api.dropWatches();
    // Changed while no watch is open: the reconnecting watch replays it from its resourceVersion.
    api.setSlice(slice('pd-c', [{ ip: '10.0.1.1', pod: 'plugin-daemon-0' }, { ip: '10.0.1.2', pod: 'plugin-daemon-1' }]));
    const caught = await rec.until('caught up after the drop', (c) => c.addresses.length === 2);
    assert.equal(caught.error, undefined);
    assert.ok(api.watchRequests().length > watchesBefore);
    assert.equal(api.listRequests().length, listsBefore, 'reconnected by watching, not by listing');
    await stop(d);
    api.deleteSlice('pd-c');
  });

  it('410 Gone (compaction) makes it list again, and the new list is the truth', async () => {
    api.setSlice(slice('pd-d', [{ ip: '10.0.2.1', pod: 'plugin-daemon-0' }]));
    const rec = new Recorder();
    const d = discovery();
    d.start(rec.listener);
    await rec.until('first list', (c) => c.addresses.length === 1);
    await eventually('a watch is open', () => api.openWatches() === 1);
    const lists = api.listRequests().length;

    api.dropWatches();
    api.setSlice(slice('pd-d', [{ ip: '10.0.2.9', pod: 'plugin-daemon-9' }]));
    // Compacted before the watch comes back: its resourceVersion is gone; only a list can tell the state.
    api.compact();
    const relisted = await rec.until('relisted after 410', (c) => c.addresses.includes('10.0.2.9:5002'));
    assert.deepEqual(relisted.addresses, ['10.0.2.9:5002']);
    assert.ok(api.listRequests().length > lists, 'listed again');
    await eventually('watching again', () => api.openWatches() === 1);
    assert.equal(api.watchRequests().at(-1)!.query.get('resourceVersion'), api.resourceVersion);

    // An ERROR 410 event on an open watch does the same.
    const lists2 = api.listRequests().length;
    api.compact();
    await eventually('listed again after an ERROR 410 event', () => api.listRequests().length > lists2);
    await stop(d);
    api.deleteSlice('pd-d');
  });

  it('a rotated token file is used by the next request, without a restart', async () => {
    api.setSlice(slice('pd-e', [{ ip: '10.0.3.1', pod: 'plugin-daemon-0' }]));
    const rec = new Recorder();
    const d = discovery();
    d.start(rec.listener);
    await rec.until('first list', (c) => c.addresses.length === 1);
    await eventually('a watch is open', () => api.openWatches() === 1);
    assert.equal(api.watchRequests().at(-1)!.token, 'token-1');

    // The kubelet swaps the projected token in place; the old one then expires.
    api.tokens.add('token-2');
    writeFileSync(join(saDir, 'token.new'), 'token-2\n');
    renameSync(join(saDir, 'token.new'), join(saDir, 'token'));
    api.tokens.delete('token-1');
    api.dropWatches();
    api.setSlice(slice('pd-e', [{ ip: '10.0.3.1', pod: 'plugin-daemon-0' }, { ip: '10.0.3.2', pod: 'plugin-daemon-1' }]));
    const after = await rec.until('watching with the new token', (c) => c.addresses.length === 2);
    assert.equal(after.error, undefined);
    assert.equal(api.watchRequests().at(-1)!.token, 'token-2');
    assert.ok(!api.requests.some((r) => r.status === 401), 'the expired token was never sent');
    await stop(d);
    api.deleteSlice('pd-e');
    writeFileSync(join(saDir, 'token'), 'token-1\n');
    api.tokens.add('token-1');
  });

  it('an unknown Service is discovery_service_not_found, and the gate-facing set stays empty until it exists', async () => {
    const rec = new Recorder();
    const d = discovery({ service: 'no-such-service' });
    d.start(rec.listener);
    const c = await rec.until('not found', (x) => x.error !== undefined);
    assert.equal(c.error?.code, 'discovery_service_not_found');
    assert.match(c.error!.message, /Service dify\/no-such-service not found/);
    assert.deepEqual(c.addresses, []);
    // It keeps trying: the Service and its slice appear, and discovery recovers.
    api.services.add('dify/no-such-service');
    api.setSlice({ name: 'nss-1', service: 'no-such-service', endpoints: [{ ip: '10.0.4.1', pod: 'x-0' }], ports: [{ name: 'http', port: 5002 }] });
    const ok = await rec.until('recovered', (x) => x.error === undefined && x.addresses.length === 1);
    assert.deepEqual(ok.addresses, ['10.0.4.1:5002']);
    await stop(d);
    api.deleteSlice('nss-1');
  });

  it('RBAC refusal (403) is discovery_forbidden with the API message; granted later, it recovers', async () => {
    api.setSlice(slice('pd-f', [{ ip: '10.0.5.1', pod: 'plugin-daemon-0' }]));
    api.forbidden.add('token-1');
    const rec = new Recorder();
    const d = discovery();
    d.start(rec.listener);
    const c = await rec.until('forbidden', (x) => x.error !== undefined);
    assert.equal(c.error?.code, 'discovery_forbidden');
    assert.match(c.error!.message, /cannot list resource "endpointslices" in API group "discovery.k8s.io"/);
    assert.deepEqual(c.addresses, []);
    api.forbidden.delete('token-1');
    const ok = await rec.until('granted', (x) => x.error === undefined && x.addresses.length === 1);
    assert.deepEqual(ok.addresses, ['10.0.5.1:5002']);
    await stop(d);
    api.deleteSlice('pd-f');
  });

  it('a refused token (401) is discovery_unauthorized; a hung API server is a timeout, never a hang', async () => {
    writeFileSync(join(saDir, 'token'), 'not-a-token\n');
    const rec = new Recorder();
    const d = discovery();
    d.start(rec.listener);
    const c = await rec.until('unauthorized', (x) => x.error !== undefined);
    assert.equal(c.error?.code, 'discovery_unauthorized');
    await stop(d);
    writeFileSync(join(saDir, 'token'), 'token-1\n');

    api.stall = true;
    try {
      const rec2 = new Recorder();
      const d2 = discovery({ timeoutMs: 300 });
      d2.start(rec2.listener);
      const t = await rec2.until('timed out', (x) => x.error !== undefined);
      assert.equal(t.error?.code, 'discovery_failed');
      assert.match(t.error!.message, /no answer within 300ms/);
      await stop(d2);
    } finally {
      api.stall = false;
    }
  });

  it('a watch that goes silent past timeoutSeconds plus the idle grace is abandoned and re-opened from its resourceVersion', async () => {
    api.setSlice(slice('pd-h', [{ ip: '10.0.7.1', pod: 'plugin-daemon-0' }]));
    api.holdWatchesOpen = true;
    try {
      const base = api.watchRequests().length;
      const rec = new Recorder();
      const d = discovery({ watchTimeoutMs: 1_000, idleGraceMs: 300 });
      d.start(rec.listener);
      await rec.until('first list', (c) => c.addresses.length === 1);
      await eventually('a watch is open', () => api.watchRequests().length === base + 1);
      const first = api.watchRequests()[base]!;
      assert.equal(first.query.get('timeoutSeconds'), '1');
      const lists = api.listRequests().length;
      // The server never ends it and sends nothing: the gate gives up on it after 1 s + 0.3 s and watches again.
      await eventually('a second watch', () => api.watchRequests().length >= base + 2, 8_000);
      assert.equal(api.watchRequests()[base + 1]!.query.get('resourceVersion'), first.query.get('resourceVersion'));
      assert.equal(api.listRequests().length, lists, 'no list needed');
      await stop(d);
    } finally {
      api.holdWatchesOpen = false;
      api.dropWatches();
      api.deleteSlice('pd-h');
    }
  });

  it('a port name the slices lack is reported, naming the option', async () => {
    api.setSlice(slice('pd-g', [{ ip: '10.0.6.1', pod: 'plugin-daemon-0' }]));
    const rec = new Recorder();
    const d = discovery({ port: portSpecOf('grpc') });
    d.start(rec.listener);
    const c = await rec.until('port problem', (x) => x.error !== undefined);
    assert.equal(c.error?.code, 'discovery_failed');
    assert.match(c.error!.message, /no port named "grpc".*kubernetes-port/);
    await stop(d);
    api.deleteSlice('pd-g');
  });
});
