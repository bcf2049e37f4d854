/**
 * hold-starting over the wire: real gRPC ext_authz and HTTP forward-auth calls
 * on loopback against a simulated fleet. The gate's clock, its hold timers and
 * daemon time are one ManualScheduler, so "ten seconds later the plugin is
 * ready" and "the budget runs out" are exact, without sleeping; polls run on
 * demand, and each new snapshot is what releases a waiter.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, it } from 'node:test';
import { eventually, startHarness, type Harness } from './support/gate.js';
import { EnvoyAuthClient, checkRequest, dispatchCheck, dispatchTo, parseEnvelopeLine, type CheckOutcome } from './support/envoy-client.js';
import type { RawValues } from '../src/config/config.js';
import type { SimFleetOptions } from '../src/sim/fleet.js';
import { HOLD_TIMEOUT_HEADER } from '../src/front/http/server.js';

const NEVER = 3_600_000;
const UNAVAILABLE = 14;

interface Rig {
  readonly h: Harness;
  readonly client: EnvoyAuthClient;
  readonly addr: readonly string[];
}

const open: Rig[] = [];
after(async () => {
  for (const r of open) r.client.close();
  await Promise.all(open.map((r) => r.h.close()));
});

async function rig(fleet: Omit<SimFleetOptions, 'scheduler'>, flags: RawValues = {}): Promise<Rig> {
  const h = await startHarness(fleet, { 'hold-starting': '30s', ...flags });
  const r = { h, client: new EnvoyAuthClient(h.gate.grpcPort), addr: h.fleet.pods.map((p) => p.address) };
  open.push(r);
  await h.gate.whenReady();
  await h.poll();
  return r;
}

interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A forward-auth check as Envoy http_service (or a bare client) sends it; `abort` closes the connection. */
function httpCheck(port: number, plugin: string, headers: Record<string, string> = {}): { answer: Promise<HttpAnswer>; abort(): void } {
  let req: http.ClientRequest | undefined;
  const answer = new Promise<HttpAnswer>((resolve, reject) => {
    req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/plugin/tenant-1/dispatch/llm/invoke', headers: { 'x-plugin-id': plugin, ...headers }, agent: false, timeout: 20_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req?.destroy(new Error('no answer within 20 s')));
    req.end();
  });
  return { answer, abort: () => req?.destroy() };
}

/** Counter value of plugin_gate_hold_outcomes_total{outcome}. */
async function outcomes(h: Harness, outcome: string): Promise<number> {
  const m = new RegExp(`^plugin_gate_hold_outcomes_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(await h.gate.metrics.text());
  return Number(m?.[1] ?? 0); // prom-client leaves out a labelled series never incremented
}

const held = (h: Harness, n: number): Promise<void> => eventually(`${n} requests held`, () => h.gate.service.heldCount() === n);

describe('hold-starting: a request for a starting plugin waits for it', () => {
  it('is released when the plugin becomes ready, routed to the pod where it did, with the wait in metadata and headers', async () => {
    const r = await rig({ pods: 2, plugins: [{ id: 'h/slow', launchMs: 10_000 }], podPlugins: [undefined, { 'h/slow': { launchMs: NEVER } }] });
    const { h, client, addr } = r;
    const g = client.startCheck(dispatchCheck('h/slow'), 15_000);
    const web = httpCheck(h.gate.httpPort!, 'h/slow');
    await held(h, 2);
    assert.equal(h.gate.snapshot().plugins.get('h/slow')?.readyPods.length, 0, 'still starting while held');

    h.sched.advance(10_000);
    await h.poll();
    const out = await g.outcome;
    assert.equal(out.code, 0);
    assert.equal(out.metadata['reason'], 'plugin_ready_after_hold');
    assert.equal(out.metadata['upstream_host'], addr[0], 'routed to the pod that became ready');
    assert.equal(out.metadata['held_ms'], '10000');
    const w = await web.answer;
    assert.equal(w.status, 200);
    assert.equal(w.headers['x-plugin-gate-reason'], 'plugin_ready_after_hold');
    assert.equal(w.headers['x-plugin-gate-upstream'], addr[0]);
    assert.equal(w.headers['x-plugin-gate-held-ms'], '10000');
    // The pod really runs it now: the request the gateway forwards is served.
    assert.equal((await dispatchTo(addr[0]!, 'h/slow')).status, 200);
    assert.equal(h.gate.service.heldCount(), 0);
    assert.equal(await outcomes(h, 'released'), 2);
  });

  it('releases oldest first', async () => {
    const { h, client } = await rig({ pods: 1, plugins: [{ id: 'h/p', launchMs: 5_000 }] });
    const calls: ReturnType<EnvoyAuthClient['startCheck']>[] = [];
    for (let i = 0; i < 4; i++) {
      calls.push(client.startCheck(dispatchCheck('h/p'), 15_000));
      await held(h, i + 1); // one at a time, so arrival order is known
    }
    h.sched.advance(5_000);
    await h.poll();
    const outs = await Promise.all(calls.map((c) => c.outcome));
    assert.deepEqual(outs.map((o) => o.metadata['reason']), Array(4).fill('plugin_ready_after_hold'));
    // Decision ids carry the gate's request sequence (base 36 after the prefix): answered in arrival order.
    const seqs = outs.map((o) => parseInt(o.metadata['decision_id']!.split('-')[1]!, 36));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  });

  it('expires at the hold-starting budget with the same deny as without holding', async () => {
    const { h, client } = await rig({ pods: 1, plugins: [{ id: 'h/never', launchMs: NEVER }] }, { 'hold-starting': '2s' });
    const g = client.startCheck(dispatchCheck('h/never'), 15_000);
    const web = httpCheck(h.gate.httpPort!, 'h/never');
    await held(h, 2);
    h.sched.advance(1_999);
    assert.equal(h.gate.service.heldCount(), 2, 'still waiting 1 ms before the budget');
    h.sched.advance(1);
    const out: CheckOutcome = await g.outcome;
    assert.equal(out.code, UNAVAILABLE);
    assert.equal(out.httpStatus, 503);
    assert.equal(out.metadata['reason'], 'plugin_starting');
    assert.equal(out.metadata['held_ms'], '2000');
    assert.match(parseEnvelopeLine(out.body).message, /h\/never is starting/);
    const w = await web.answer;
    assert.equal(w.status, 503);
    assert.equal(w.headers['x-plugin-gate-reason'], 'plugin_starting');
    assert.ok(w.headers['retry-after'] !== undefined);
    assert.match(parseEnvelopeLine(w.body).message, /plugin runtime not found/);
    assert.equal(await outcomes(h, 'expired'), 2);
  });

  it("expires at the caller's deadline less the margin (gRPC deadline, HTTP timeout header)", async () => {
    const { h, client } = await rig({ pods: 1, plugins: [{ id: 'h/never', launchMs: NEVER }] });
    // Envoy's ext_authz timeout reaches the gate as the gRPC deadline: 8 s here, so the gate answers after 7.5 s.
    const g = client.startCheck(dispatchCheck('h/never'), 8_000);
    const web = httpCheck(h.gate.httpPort!, 'h/never', { [HOLD_TIMEOUT_HEADER]: '4000' });
    await held(h, 2);
    h.sched.advance(3_499);
    assert.equal(h.gate.service.heldCount(), 2);
    h.sched.advance(1);
    const w = await web.answer;
    assert.equal(w.status, 503);
    assert.equal(w.headers['x-plugin-gate-held-ms'], '3500');
    h.sched.advance(3_000);
    assert.equal(h.gate.service.heldCount(), 1, 'the gRPC call waits on: its deadline is later');
    h.sched.advance(1_000);
    const out = await g.outcome;
    assert.equal(out.code, UNAVAILABLE);
    assert.equal(out.metadata['reason'], 'plugin_starting');
    // The deadline is wall-clock time already running while the call travelled: a few ms less than 7 500.
    const heldMs = Number(out.metadata['held_ms']);
    assert.ok(heldMs > 7_000 && heldMs <= 7_500, `held ${heldMs} ms`);
    // A caller that waits less than the margin is not held at all.
    const quick = await client.check(dispatchCheck('h/never'), 400);
    assert.equal(quick.metadata['reason'], 'plugin_starting');
    assert.equal(quick.metadata['held_ms'], undefined);
  });

  it('drops a caller that goes away at once (cancelled stream, closed connection)', async () => {
    const { h, client } = await rig({ pods: 1, plugins: [{ id: 'h/never', launchMs: NEVER }] });
    const g = client.startCheck(dispatchCheck('h/never'), 15_000);
    const web = httpCheck(h.gate.httpPort!, 'h/never');
    await held(h, 2);
    g.cancel();
    await assert.rejects(g.outcome, /CANCELLED/);
    await held(h, 1);
    web.abort();
    await assert.rejects(web.answer);
    await held(h, 0);
    assert.equal(await outcomes(h, 'cancelled'), 2);
    assert.deepEqual([...h.gate.service.heldByPlugin()], []);
  });

  it('sheds past max-held: denied at once and counted', async () => {
    const { h, client } = await rig({ pods: 1, plugins: [{ id: 'h/never', launchMs: NEVER }] }, { 'max-held': '2' });
    const calls = [client.startCheck(dispatchCheck('h/never'), 15_000), client.startCheck(dispatchCheck('h/never'), 15_000)];
    for (const c of calls) c.outcome.catch(() => undefined); // cancelled below
    await held(h, 2);
    const shed = await client.check(dispatchCheck('h/never'), 15_000);
    assert.equal(shed.code, UNAVAILABLE);
    assert.equal(shed.metadata['reason'], 'plugin_starting');
    assert.equal(shed.metadata['held_ms'], undefined, 'never waited');
    const shedHttp = await httpCheck(h.gate.httpPort!, 'h/never').answer;
    assert.equal(shedHttp.status, 503);
    assert.equal(await outcomes(h, 'shed'), 2);
    assert.equal(h.gate.service.heldCount(), 2);
    assert.deepEqual([...h.gate.service.heldByPlugin()], [['h/never', 2]]);
    const status = (await (await fetch(`http://127.0.0.1:${h.gate.adminPort}/status`)).json()) as { counts: { held: number }; held: Record<string, number> };
    assert.equal(status.counts.held, 2);
    assert.deepEqual(status.held, { 'h/never': 2 });
    const page = await (await fetch(`http://127.0.0.1:${h.gate.adminPort}/`)).text();
    assert.match(page, /2 requests held/);
    assert.match(page, /<th class="plugin">h\/never<\/th>.*<td class="starting">2<\/td><\/tr>/);
    for (const c of calls) c.cancel();
    await held(h, 0);
  });

  it('drain answers every held request with a deny and holds nothing after', async () => {
    const { h, client } = await rig({ pods: 1, plugins: [{ id: 'h/never', launchMs: NEVER }, { id: 'h/other', launchMs: NEVER }] });
    const grpcCalls = [client.startCheck(dispatchCheck('h/never'), 15_000), client.startCheck(dispatchCheck('h/other'), 15_000)];
    const webCalls = [httpCheck(h.gate.httpPort!, 'h/never'), httpCheck(h.gate.httpPort!, 'h/other')];
    await held(h, 4);
    h.sched.advance(250);
    h.gate.service.drain();
    assert.equal(h.gate.service.heldCount(), 0);
    for (const c of grpcCalls) {
      const out = await c.outcome;
      assert.equal(out.code, UNAVAILABLE);
      assert.equal(out.metadata['reason'], 'plugin_starting');
      assert.equal(out.metadata['held_ms'], '250');
    }
    for (const c of webCalls) assert.equal((await c.answer).status, 503);
    assert.equal(await outcomes(h, 'drained'), 4);
    const after = await client.check(dispatchCheck('h/never'), 15_000);
    assert.equal(after.metadata['reason'], 'plugin_starting');
    assert.equal(after.metadata['held_ms'], undefined, 'not held while draining');
  });

  it('never holds failed, invalid or unknown plugins, nor a fleet with no live pod', async () => {
    const { h, client, addr } = await rig(
      { pods: 1, plugins: [{ id: 'h/ok', launchMs: 1_000 }, { id: 'h/bad', launchMs: 1_000, failures: 'always' }] },
      { 'unknown-plugin': 'deny' },
    );
    // Past start-up, with h/bad given up after the daemon's retry limit.
    for (let i = 0; i < 30; i++) {
      h.sched.advance(60_000);
      await h.poll();
    }
    assert.equal(h.gate.snapshot().pods.get(addr[0]!)?.plugins.get('h/bad')?.state, 'failed');
    const failed = await client.check(dispatchCheck('h/bad'), 15_000);
    assert.equal(failed.metadata['reason'], 'plugin_failed');
    const unknown = await client.check(dispatchCheck('h/unknown'), 15_000);
    assert.equal(unknown.metadata['reason'], 'unknown_plugin_denied');
    const invalid = await client.check(dispatchCheck('NOT A PLUGIN'), 15_000);
    assert.equal(invalid.metadata['reason'], 'invalid_plugin_id');
    const web = await httpCheck(h.gate.httpPort!, 'h/bad').answer;
    assert.equal(web.headers['x-plugin-gate-reason'], 'plugin_failed');
    const notScoped = await client.check(checkRequest({ path: '/health/check', method: 'GET' }), 15_000);
    assert.equal(notScoped.code, 0);

    await h.fleet.pods[0]!.setMode('refuse');
    for (let i = 0; i < 3; i++) await h.poll();
    const noPod = await client.check(dispatchCheck('h/ok'), 15_000);
    assert.equal(noPod.metadata['reason'], 'no_live_pod');
    for (const o of [failed, unknown, invalid, noPod]) assert.equal(o.metadata['held_ms'], undefined);
    assert.equal(h.gate.service.heldCount(), 0);
    assert.equal(await outcomes(h, 'shed'), 0);
  });

  it('a held request whose plugin fails meanwhile is answered plugin_failed at once', async () => {
    // The daemon gives up after 3 failed launches, with no wait between the first ones.
    const { h, client } = await rig({ pods: 1, retryLimit: 3, plugins: [{ id: 'h/bad', launchMs: 1_000, failures: 'always' }] }, { 'daemon-retry-limit': '3' });
    const g = client.startCheck(dispatchCheck('h/bad'), 60_000);
    await held(h, 1);
    for (let i = 0; i < 10 && h.gate.service.heldCount() > 0; i++) {
      h.sched.advance(1_000);
      await h.poll();
    }
    const out = await g.outcome;
    assert.equal(out.metadata['reason'], 'plugin_failed');
    assert.ok(Number(out.metadata['held_ms']) > 0);
    assert.equal(await outcomes(h, 'denied'), 1);
  });
});

describe('hold-starting off (the default)', () => {
  it('denies a starting plugin at once, as before', async () => {
    const { h, client } = await rig({ pods: 1, plugins: [{ id: 'h/never', launchMs: NEVER }] }, { 'hold-starting': '0s' });
    const out = await client.check(dispatchCheck('h/never'), 15_000);
    assert.equal(out.metadata['reason'], 'plugin_starting');
    assert.equal(out.metadata['held_ms'], undefined);
    assert.equal(h.gate.service.heldCount(), 0);
    assert.match(await h.gate.metrics.text(), /^plugin_gate_held_requests 0$/m);
  });
});
