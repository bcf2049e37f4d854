/**
 * The Envoy ext_authz v3 front end to end: a grpc-js client built from Envoy's
 * official protos calls Authorization/Check on the real gate, which polls a
 * simulated daemon fleet over loopback HTTP. Every allow is then followed the
 * way Envoy's ORIGINAL_DST cluster would follow it: the dispatch request goes
 * to `dynamic_metadata.upstream_host` and the simulated pod says who served it.
 *
 * Daemon time and the gate's clock are one ManualScheduler; polls run on
 * demand, so every state below is set up exactly, without sleeping.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Harness } from '../support/gate.js';
import { MemoryLog, podName, startE2e, type E2eOptions } from '../support/e2e.js';
import {
  EnvoyAuthClient,
  applyOkResponse,
  checkRequest,
  dispatchCheck,
  dispatchTo,
  httpRequest,
  parseEnvelopeLine,
  type CheckOutcome,
} from '../support/envoy-client.js';
import type { RawValues } from '../../src/config/config.js';
import type { FleetSnapshot } from '../../src/fleet/types.js';
import type { SimFleetOptions } from '../../src/sim/fleet.js';
import { createLogger } from '../../src/observe/logger.js';

const TARGET = 'e2e/target';
const SLOW = 'e2e/slow';
const NEVER = 3_600_000; // a launch that does not finish within any test

const UNAVAILABLE = 14;
const INVALID_ARGUMENT = 3;

const stateOf = (s: FleetSnapshot, address: string, plugin: string): string => s.pods.get(address)?.plugins.get(plugin)?.state ?? 'absent';

interface Rig {
  readonly h: Harness;
  readonly client: EnvoyAuthClient;
  /** `IP:port` of pod-1 … pod-n, by 0-based index. */
  readonly addr: readonly string[];
  close(): Promise<void>;
}

async function rig(fleet: Omit<SimFleetOptions, 'scheduler'>, flags: RawValues = {}, opts: E2eOptions = {}): Promise<Rig> {
  const h = await startE2e(fleet, flags, opts);
  const client = new EnvoyAuthClient(h.gate.grpcPort);
  return {
    h,
    client,
    addr: h.fleet.pods.map((p) => p.address),
    async close() {
      client.close();
      await h.close();
    },
  };
}

/** Runs `body` on a fresh rig and always tears it down. */
async function withRig(fleet: Omit<SimFleetOptions, 'scheduler'>, flags: RawValues, body: (r: Rig) => Promise<void>, opts: E2eOptions = {}): Promise<void> {
  const r = await rig(fleet, flags, opts);
  try {
    await body(r);
  } finally {
    await r.close();
  }
}

/** An allow that names a pod: returns that pod's address. */
function routedTo(out: CheckOutcome, plugin: string | undefined, reason = 'plugin_ready'): string {
  assert.equal(out.code, 0, `allowed (${out.message})`);
  assert.equal(out.kind, 'ok_response');
  assert.equal(out.metadata['reason'], reason);
  if (plugin !== undefined) assert.equal(out.metadata['plugin_id'], plugin);
  assert.match(out.metadata['decision_id'] ?? '', /\S/);
  const up = out.metadata['upstream_host'];
  assert.ok(up !== undefined, 'dynamic_metadata.upstream_host is set');
  return up;
}

/** Checks and follows `n` dispatches for `plugin`; returns how many landed on each pod (by name). */
async function routeAndSend(r: Rig, plugin: string, n: number): Promise<Record<string, number>> {
  const landed: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const up = routedTo(await r.client.check(dispatchCheck(plugin)), plugin);
    const name = podName(r.h, up);
    const res = await dispatchTo(up, plugin);
    assert.equal(res.status, 200, `the pod the gate chose (${name}) runs ${plugin}: ${res.body}`);
    assert.equal(res.headers['x-sim-pod'], name, 'served by the pod named in upstream_host');
    assert.equal((JSON.parse(res.body.split('\n')[0]!) as { data: { served_by: string } }).data.served_by, name);
    landed[name] = (landed[name] ?? 0) + 1;
  }
  return landed;
}

/** What the pod itself answers for a plugin it does not run: the daemon's 404. */
async function assertNotRunningOn(address: string, plugin: string): Promise<void> {
  const res = await dispatchTo(address, plugin);
  assert.equal(res.status, 404);
  // The daemon's own envelope (no trailing newline: it is the whole body).
  const inner = JSON.parse((JSON.parse(res.body) as { message: string }).message) as { message: string };
  assert.match(inner.message, /plugin runtime not found/);
}

/**
 * Polls until every pod's last read succeeded (at most 3 rounds). A poll issued
 * in the same instant a pod restarts can still find the gate's pooled
 * keep-alive connection to the old process open and fail with "other side
 * closed"; the gate then rightly keeps its last data until a read succeeds.
 */
async function pollUntilClean(h: Harness): Promise<FleetSnapshot> {
  let s = await h.poll();
  for (let i = 1; i < 3 && [...s.pods.values()].some((p) => p.lastError !== undefined); i++) s = await h.poll();
  return s;
}

describe('ext_authz v3 end to end: a plugin ready on pod-2 only (3 pods)', () => {
  let r: Rig;
  before(async () => {
    r = await rig({
      pods: 3,
      plugins: [
        { id: TARGET, launchMs: 1_000 },
        { id: SLOW, launchMs: NEVER },
      ],
      podPlugins: [{ [TARGET]: { launchMs: NEVER } }, undefined, { [TARGET]: { launchMs: NEVER } }],
    });
    await r.h.gate.whenReady();
    r.h.sched.advance(1_000);
    const s = await r.h.poll();
    assert.deepEqual(
      r.addr.map((a) => stateOf(s, a, TARGET)),
      ['starting', 'ready', 'starting'],
    );
  });
  after(async () => {
    await r?.close();
  });

  it('routes every Check to pod-2, and the dispatch sent there is served by pod-2', async () => {
    r.h.fleet.pods.forEach((p) => p.resetStats());
    const landed = await routeAndSend(r, TARGET, 6);
    assert.deepEqual(landed, { 'pod-2': 6 });
    // What blind routing would have met on the other pods.
    await assertNotRunningOn(r.addr[0]!, TARGET);
    await assertNotRunningOn(r.addr[2]!, TARGET);
    assert.deepEqual(Object.fromEntries(r.h.fleet.hitsFor(TARGET)), { 'pod-1': 0, 'pod-2': 6, 'pod-3': 0 });
  });

  it('denies a plugin still starting everywhere: status 14, a 503 with retry-after, json, reason, one envelope line', async () => {
    const out = await r.client.check(dispatchCheck(SLOW));
    assert.equal(out.code, UNAVAILABLE);
    assert.equal(out.kind, 'denied_response', 'a denial, not an error: fail-open gateways do not wave it through');
    assert.equal(out.httpStatus, 503);
    assert.deepEqual(out.deniedHeaders.get('retry-after'), ['5']);
    assert.deepEqual(out.deniedHeaders.get('content-type'), ['application/json']);
    assert.deepEqual(out.deniedHeaders.get('x-plugin-gate-reason'), ['plugin_starting']);
    assert.deepEqual(out.deniedHeaders.get('x-plugin-gate-decision-id'), [out.metadata['decision_id']]);
    assert.equal(out.metadata['upstream_host'], undefined, 'a deny routes nowhere');
    assert.equal(out.metadata['reason'], 'plugin_starting');
    assert.equal(out.metadata['plugin_id'], SLOW);
    const env = parseEnvelopeLine(out.body);
    assert.equal(env.code, -500);
    assert.equal(env.errorType, 'PluginDaemonInternalServerError');
    assert.match(env.message, /plugin runtime not found/);
    assert.ok(env.message.includes(SLOW), env.message);
    assert.match(env.message, /starting on 3 of 3 live pods/);
    // The daemon would have answered the same request with its own 404 on every pod.
    for (const a of r.addr) await assertNotRunningOn(a, SLOW);
  });

  it('invalid_plugin_id: gRPC status 3 and HTTP 400 with the bad-request envelope, the id never echoed', async () => {
    const cases = [
      dispatchCheck('Not A Plugin/<script>'),
      checkRequest({ path: '/plugin/tenant-1/dispatch/tool/invoke', headers: {} }),
      checkRequest({ path: '/v2/invoke/dispatch/llm/invoke', headers: { 'x-plugin-unique-identifier': 'EVIL:::' } }),
    ];
    for (const req of cases) {
      const out = await r.client.check(req);
      assert.equal(out.code, INVALID_ARGUMENT);
      assert.equal(out.kind, 'denied_response');
      assert.equal(out.httpStatus, 400);
      assert.equal(out.deniedHeaders.get('retry-after'), undefined, 'nothing to wait for');
      assert.deepEqual(out.deniedHeaders.get('x-plugin-gate-reason'), ['invalid_plugin_id']);
      const env = parseEnvelopeLine(out.body);
      assert.equal(env.code, -400);
      assert.equal(env.errorType, 'PluginDaemonBadRequestError');
      assert.ok(!out.body!.includes('script') && !out.body!.includes('EVIL'), out.body);
      assert.equal(out.metadata['upstream_host'], undefined);
    }
  });

  it('a request that is not plugin-scoped goes to a live pod and is served there', async () => {
    const out = await r.client.check(checkRequest({ method: 'GET', path: '/plugin/tenant-1/management/list?page=1', headers: {} }));
    const up = routedTo(out, undefined, 'not_plugin_scoped');
    const res = await httpRequest(up, { path: '/plugin/tenant-1/management/list?page=1' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-sim-pod'], podName(r.h, up));
  });
});

describe('ext_authz v3 end to end: never routed where the plugin cannot answer (5 pods)', () => {
  it('failed, absent, unreachable and stale pods never get the request; ready ones share it round robin', async () => {
    await withRig(
      {
        pods: 5,
        plugins: [{ id: TARGET, launchMs: 1_000 }],
        // pod-1: every launch fails (gives up after 15); pod-3: the plugin is not installed there.
        podPlugins: [{ [TARGET]: { failures: 'always' } }],
      },
      { 'max-status-bytes': '65536' },
      async (r) => {
        const [p1, p2, p3, p4, p5] = r.addr as [string, string, string, string, string];
        await r.h.gate.whenReady();
        r.h.sched.advance(700_000); // 15 failed launches with the daemon's retry waits take ~585 s
        let s = await r.h.poll();
        assert.deepEqual(
          r.addr.map((a) => stateOf(s, a, TARGET)),
          ['failed', 'ready', 'absent', 'ready', 'ready'],
        );
        assert.equal(s.pods.get(p1)?.plugins.get(TARGET)?.failedLaunches, 15);

        // Round robin over the three ready pods.
        const picks: string[] = [];
        for (let i = 0; i < 6; i++) picks.push(podName(r.h, routedTo(await r.client.check(dispatchCheck(TARGET)), TARGET)));
        assert.deepEqual([...picks].sort(), ['pod-2', 'pod-2', 'pod-4', 'pod-4', 'pod-5', 'pod-5']);
        for (let i = 1; i < picks.length; i++) assert.notEqual(picks[i], picks[i - 1], `rotates: ${picks.join(',')}`);
        assert.deepEqual(await routeAndSend(r, TARGET, 3).then((l) => Object.keys(l).sort()), ['pod-2', 'pod-4', 'pod-5']);

        // pod-4 stops answering: unreachable after three failed polls, and out of rotation.
        await r.h.fleet.pods[3]!.setMode('refuse');
        for (let i = 0; i < 3; i++) s = await r.h.poll();
        assert.equal(s.pods.get(p4)?.state, 'unreachable');
        assert.deepEqual(await routeAndSend(r, TARGET, 6), { 'pod-2': 3, 'pod-5': 3 });

        // pod-5 keeps answering health but its metrics become unreadable: stale once its last good metrics age past stale-after.
        await r.h.fleet.pods[4]!.setMode({ oversizeBytes: 200_000 });
        r.h.sched.advance(11_000);
        s = await r.h.poll();
        assert.equal(s.pods.get(p5)?.state, 'stale');
        assert.equal(s.pods.get(p5)?.lastError?.code, 'status_too_large');
        assert.equal(s.pods.get(p2)?.state, 'live');
        assert.deepEqual(await routeAndSend(r, TARGET, 4), { 'pod-2': 4 });

        // No poll for longer than stale-after: pod-2's data is stale too, and nothing is routed.
        r.h.sched.advance(11_000);
        const out = await r.client.check(dispatchCheck(TARGET));
        assert.equal(out.code, UNAVAILABLE);
        assert.equal(out.metadata['reason'], 'no_live_pod');
        assert.equal(out.metadata['upstream_host'], undefined);
        assert.equal(out.httpStatus, 503);

        // Where a blind router would have sent some of these requests.
        await assertNotRunningOn(p1, TARGET);
        await assertNotRunningOn(p3, TARGET);
      },
      { beforeGate: (fleet) => void fleet.pods[2]!.uninstall(TARGET) },
    );
  });
});

describe('ext_authz v3 end to end: plugin_failed', () => {
  it('is answered only once every pod gave up; while one pod still retries it is plugin_starting', async () => {
    await withRig(
      {
        pods: 2,
        plugins: [
          { id: TARGET, launchMs: 1_000 },
          { id: 'e2e/broken', launchMs: 1_000, failures: 'always' },
        ],
        // Launch attempts take a minute on pod-2: it still has retries left when pod-1 has given up.
        podPlugins: [undefined, { 'e2e/broken': { launchMs: 60_000 } }],
      },
      {},
      async (r) => {
        await r.h.gate.whenReady();
        r.h.sched.advance(700_000);
        let s = await r.h.poll();
        assert.equal(stateOf(s, r.addr[0]!, 'e2e/broken'), 'failed');
        assert.equal(stateOf(s, r.addr[1]!, 'e2e/broken'), 'starting');
        let out = await r.client.check(dispatchCheck('e2e/broken'));
        assert.equal(out.code, UNAVAILABLE);
        assert.equal(out.metadata['reason'], 'plugin_starting');
        assert.deepEqual(out.deniedHeaders.get('x-plugin-gate-reason'), ['plugin_starting']);

        r.h.sched.advance(1_500_000);
        s = await r.h.poll();
        assert.equal(stateOf(s, r.addr[1]!, 'e2e/broken'), 'failed');
        out = await r.client.check(dispatchCheck('e2e/broken'));
        assert.equal(out.code, UNAVAILABLE);
        assert.equal(out.httpStatus, 503);
        assert.equal(out.metadata['reason'], 'plugin_failed');
        assert.deepEqual(out.deniedHeaders.get('x-plugin-gate-reason'), ['plugin_failed']);
        assert.deepEqual(out.deniedHeaders.get('retry-after'), ['60'], 'failed-retry-after');
        const env = parseEnvelopeLine(out.body);
        assert.equal(env.code, -500);
        assert.match(env.message, /gave up after 15 failed launches/);
        assert.match(env.message, /plugin runtime not found/);
        // The healthy plugin is unaffected.
        assert.deepEqual(Object.keys(await routeAndSend(r, TARGET, 2)).sort(), ['pod-1', 'pod-2']);
      },
    );
  });
});

describe('ext_authz v3 end to end: cold fleet restart', () => {
  it('plugins queued behind the launch limit are plugin_starting, not unknown, even with unknown-plugin allow', async () => {
    const ids = ['e2e/p1', 'e2e/p2', 'e2e/p3', 'e2e/p4', 'e2e/p5'];
    await withRig({ pods: 2, plugins: ids.map((id) => ({ id, launchMs: 10_000 })) }, { 'unknown-plugin': 'allow' }, async (r) => {
      await r.h.gate.whenReady();
      r.h.sched.advance(150_000); // all launched (two at a time), and the pods are past start-up
      let s = await r.h.poll();
      assert.deepEqual(s.startupPods.length, 0);
      assert.deepEqual(Object.keys(await routeAndSend(r, 'e2e/p5', 2)).sort(), ['pod-1', 'pod-2']);
      // The policy is really "allow": a plugin nobody reports passes once the fleet is past start-up.
      const unknown = await r.client.check(dispatchCheck('e2e/never-installed'));
      routedTo(unknown, 'e2e/never-installed', 'unknown_plugin_allowed');

      // Every pod restarts at once; each new process launches p1 and p2 and queues p3..p5 (no series for them).
      await Promise.all(r.h.fleet.pods.map((p) => p.restart()));
      s = await pollUntilClean(r.h);
      for (const a of r.addr) {
        assert.equal(s.pods.get(a)?.state, 'live');
        assert.equal(s.pods.get(a)?.lastError, undefined, 'the poll after the restart read the new process');
        assert.equal(s.pods.get(a)?.inStartup, true);
        assert.deepEqual(ids.map((id) => stateOf(s, a, id)), ['starting', 'starting', 'absent', 'absent', 'absent']);
      }
      for (const id of ['e2e/p1', 'e2e/p5', 'e2e/never-installed']) {
        const out = await r.client.check(dispatchCheck(id));
        assert.equal(out.code, UNAVAILABLE, `${id} is denied`);
        assert.equal(out.metadata['reason'], 'plugin_starting', id);
        assert.equal(out.metadata['upstream_host'], undefined);
        assert.match(parseEnvelopeLine(out.body).message, /plugin runtime not found/);
      }
      // Allowing p5 now would have hit the daemon's 404 on either pod.
      for (const a of r.addr) await assertNotRunningOn(a, 'e2e/p5');

      // Once launched again it is routed again.
      r.h.sched.advance(30_000);
      s = await r.h.poll();
      assert.deepEqual(ids.map((id) => stateOf(s, r.addr[0]!, id)), ['ready', 'ready', 'ready', 'ready', 'ready']);
      assert.deepEqual(Object.keys(await routeAndSend(r, 'e2e/p5', 2)).sort(), ['pod-1', 'pod-2']);
    });
  });
});

describe('ext_authz v3 end to end: a spoofed routing header never survives', () => {
  it('with route-header x-envoy-original-dst-host, client copies are overwritten with the gate pod or removed', async () => {
    await withRig(
      {
        pods: 3,
        plugins: [
          { id: TARGET, launchMs: 1_000 },
          { id: SLOW, launchMs: NEVER },
        ],
        podPlugins: [{ [TARGET]: { launchMs: NEVER } }, undefined, { [TARGET]: { launchMs: NEVER } }],
      },
      { 'route-header': 'x-envoy-original-dst-host' },
      async (r) => {
        await r.h.gate.whenReady();
        r.h.sched.advance(1_000);
        await r.h.poll();
        const [p1, p2, p3] = r.addr as [string, string, string];
        // The client tries to pick pod-1 (where the plugin is not running) through both routing headers.
        const spoof = {
          'x-envoy-original-dst-host': p1,
          'x-plugin-gate-upstream': p3,
          'x-plugin-gate-reason': 'plugin_ready',
          'x-plugin-gate-decision-id': 'forged',
        };
        const gateOwned = ['x-plugin-gate-upstream', 'x-plugin-gate-reason', 'x-plugin-gate-decision-id'];

        // Routed allow, `headers` map and `header_map` raw bytes alike.
        for (const req of [
          dispatchCheck(TARGET, { headers: spoof }),
          checkRequest({ path: '/plugin/tenant-1/dispatch/llm/invoke', rawHeaders: { 'x-plugin-id': TARGET, ...spoof } }),
        ]) {
          const out = await r.client.check(req);
          const up = routedTo(out, TARGET);
          assert.equal(up, p2);
          assert.deepEqual(out.setHeaders, [{ key: 'x-envoy-original-dst-host', value: p2, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD', append: null }]);
          for (const h of gateOwned) assert.ok(out.headersToRemove.includes(h), `${h} removed`);
          assert.ok(!out.headersToRemove.includes('x-envoy-original-dst-host'), 'the header the gate sets is not also removed');
          const upstreamHeaders = applyOkResponse({ 'x-plugin-id': TARGET, ...spoof }, out);
          assert.deepEqual(upstreamHeaders.get('x-envoy-original-dst-host'), [p2], 'exactly one value: the gate pod');
          for (const h of gateOwned) assert.equal(upstreamHeaders.has(h), false, `${h} does not reach the upstream`);
          // The cluster reads the first (only) value: the request lands on pod-2.
          const res = await dispatchTo(upstreamHeaders.get('x-envoy-original-dst-host')![0]!, TARGET);
          assert.equal(res.status, 200);
          assert.equal(res.headers['x-sim-pod'], 'pod-2');
        }

        // Not plugin-scoped: routed to some live pod, the header set to that pod.
        const any = await r.client.check(checkRequest({ method: 'GET', path: '/health/check', headers: spoof }));
        const anyUp = routedTo(any, undefined, 'not_plugin_scoped');
        assert.deepEqual(applyOkResponse(spoof, any).get('x-envoy-original-dst-host'), [anyUp]);

        // Allowed without a pod (a bypassed route): the routing header is removed, never passed on.
        const bypass = await r.client.check(dispatchCheck(TARGET, { headers: spoof, contextExtensions: { plugin_gate: 'bypass' } }));
        assert.equal(bypass.code, 0);
        assert.equal(bypass.metadata['reason'], 'route_bypass');
        assert.equal(bypass.metadata['upstream_host'], undefined);
        assert.deepEqual(bypass.setHeaders, []);
        for (const h of ['x-envoy-original-dst-host', ...gateOwned]) assert.ok(bypass.headersToRemove.includes(h), `${h} removed`);
        const bypassed = applyOkResponse(spoof, bypass);
        assert.equal(bypassed.has('x-envoy-original-dst-host'), false);
        assert.equal(bypassed.has('x-plugin-gate-upstream'), false);

        // Denied: nothing is forwarded, and nothing in the answer carries the client's value.
        const denied = await r.client.check(dispatchCheck(SLOW, { headers: spoof }));
        assert.equal(denied.code, UNAVAILABLE);
        assert.equal(denied.kind, 'denied_response');
        assert.equal(denied.metadata['upstream_host'], undefined);
        assert.equal(denied.deniedHeaders.has('x-envoy-original-dst-host'), false);
        assert.ok(!JSON.stringify(denied.raw).includes(p1) && !JSON.stringify(denied.raw).includes(p3), 'spoofed pods not echoed');
        assert.notEqual(denied.deniedHeaders.get('x-plugin-gate-decision-id')?.[0], 'forged');
      },
    );
  });
});

describe('ext_authz v3 end to end: gate health', () => {
  it('NOT_SERVING for "" and the Authorization service before the first complete round, SERVING after', async () => {
    await withRig(
      { pods: 2, plugins: [{ id: TARGET, launchMs: 1_000 }] },
      { 'poll-timeout': '2s' },
      async (r) => {
        assert.equal(r.h.gate.snapshot().complete, false, 'pod-2 hangs: the first round is still open');
        assert.equal(await r.client.healthOf(''), 'NOT_SERVING');
        assert.equal(await r.client.healthOf('envoy.service.auth.v3.Authorization'), 'NOT_SERVING');
        const early = await r.client.check(dispatchCheck(TARGET));
        assert.equal(early.code, UNAVAILABLE);
        assert.equal(early.metadata['reason'], 'gate_not_ready');
        assert.equal(early.httpStatus, 503);
        assert.equal(await r.client.healthOf(''), 'NOT_SERVING', 'still open when the Check was answered');

        await r.h.gate.whenReady();
        assert.equal(r.h.gate.snapshot().pods.get(r.addr[1]!)?.lastError?.code, 'status_timeout');
        assert.equal(await r.client.healthOf(''), 'SERVING');
        assert.equal(await r.client.healthOf('envoy.service.auth.v3.Authorization'), 'SERVING');
        assert.equal(await r.client.healthOf('no.such.Service'), 'error:NOT_FOUND');
      },
      { beforeGate: (fleet) => fleet.pods[1]!.setMode('hang') },
    );
  });
});

describe('ext_authz v3 end to end: the decision log', () => {
  it('with decision-log all, carries decision id, reason, plugin and the path without query, and no secret', async () => {
    const log = new MemoryLog();
    const secrets = {
      'x-api-key': 'sk-e2e-APIKEY-7f3a9c51',
      authorization: 'Bearer e2e-AUTHZ-2b8e41d0',
      cookie: 'session=e2e-COOKIE-91d0c2ee; csrf=e2e-CSRF-5511aa',
      'x-tenant-secret': 'e2e-TENANT-55aa11cc',
    };
    const querySecret = 'e2e-QUERY-c0ffee42';
    await withRig(
      {
        pods: 2,
        plugins: [
          { id: TARGET, launchMs: 1_000 },
          { id: SLOW, launchMs: NEVER },
        ],
      },
      { 'decision-log': 'all', 'log-level': 'info', 'redact-headers': 'x-tenant-secret' },
      async (r) => {
        await r.h.gate.whenReady();
        r.h.sched.advance(1_000);
        await r.h.poll();
        const path = `/plugin/tenant-1/dispatch/llm/invoke?api_key=${querySecret}`;
        const sent: { out: CheckOutcome; reason: string; plugin: string | undefined; path: string }[] = [];
        const send = async (req: object, reason: string, plugin: string | undefined, loggedPath: string): Promise<void> => {
          const out = await r.client.check(req);
          assert.equal(out.metadata['reason'], reason);
          sent.push({ out, reason, plugin, path: loggedPath });
        };
        await send(dispatchCheck(TARGET, { path, headers: secrets, id: 'req-e2e-1' }), 'plugin_ready', TARGET, '/plugin/tenant-1/dispatch/llm/invoke');
        await send(dispatchCheck(SLOW, { path, headers: secrets }), 'plugin_starting', SLOW, '/plugin/tenant-1/dispatch/llm/invoke');
        await send(
          checkRequest({ path, rawHeaders: { 'x-plugin-id': TARGET, ...secrets } }),
          'plugin_ready',
          TARGET,
          '/plugin/tenant-1/dispatch/llm/invoke',
        );
        await send(dispatchCheck('Bad/ID', { path, headers: secrets }), 'invalid_plugin_id', undefined, '/plugin/tenant-1/dispatch/llm/invoke');
        await send(
          checkRequest({ method: 'GET', path: `/plugin/tenant-1/management/list?token=${querySecret}`, headers: secrets }),
          'not_plugin_scoped',
          undefined,
          '/plugin/tenant-1/management/list',
        );

        const text = log.text();
        for (const v of [...Object.values(secrets), querySecret, 'APIKEY', 'AUTHZ', 'COOKIE', 'CSRF', 'TENANT-55', 'QUERY-c0']) {
          assert.ok(!text.includes(v), `the log must not contain ${v}`);
        }
        const decisions = log.records().filter((l) => l['msg'] === 'decision');
        assert.equal(decisions.length, sent.length, 'one line per decision');
        for (const d of decisions) {
          assert.equal(d['headers'], undefined);
          assert.ok(!Object.keys(d).some((k) => /api[-_]?key|authorization|cookie|secret/i.test(k)), Object.keys(d).join());
        }
        for (const { out, reason, plugin, path: loggedPath } of sent) {
          const line = decisions.find((d) => d['decision_id'] === out.metadata['decision_id']);
          assert.ok(line !== undefined, `decision ${out.metadata['decision_id']} logged`);
          assert.equal(line['reason'], reason);
          assert.equal(line['plugin_id'], plugin);
          assert.equal(line['path'], loggedPath);
          assert.equal(line['face'], 'grpc');
          if (reason === 'plugin_ready') assert.equal(line['upstream'], out.metadata['upstream_host']);
        }
        assert.equal(decisions.find((d) => d['decision_id'] === sent[0]!.out.metadata['decision_id'])?.['request_id'], 'req-e2e-1');
      },
      { logger: createLogger('info', ['x-tenant-secret'], log) },
    );
  });
});
