import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, maybeQueued, type DecideConfig } from './decide.js';
import { classify } from './classify.js';
import type { Decision, GateRequest } from './types.js';
import { failReport, metrics, newTracker, okReport, OLD, T0, type PluginSeries } from '../../test/support/fleet.js';
import type { FleetSnapshot } from '../fleet/types.js';

const cfg: DecideConfig = { unknownPlugin: 'allow', retryAfterMs: 5_000, failedRetryAfterMs: 60_000, dryRun: false };
const A = '10.0.0.1:5002';
const B = '10.0.0.2:5002';
const C = '10.0.0.3:5002';

function req(path: string, headers: Record<string, string> = {}, ctx: Record<string, string> = {}): GateRequest {
  const h = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { method: 'POST', path, header: (n) => h.get(n), contextExtensions: new Map(Object.entries(ctx)), requestId: undefined };
}
const dispatch = (plugin: string) => req('/plugin/tenant-1/dispatch/llm/invoke', { 'x-plugin-id': plugin });

/** Pods → plugin series; processStart per pod (OLD = past start-up). */
function fleet(pods: Record<string, { start?: number; plugins: Record<string, PluginSeries> } | 'down'>): FleetSnapshot {
  const { tracker } = newTracker(Object.keys(pods));
  for (const [pod, spec] of Object.entries(pods)) {
    if (spec === 'down') for (let i = 0; i < 3; i++) tracker.ingest(failReport(pod, T0));
    else tracker.ingest(okReport(pod, T0, metrics(spec.plugins, spec.start ?? OLD)));
  }
  return tracker.snapshot();
}

const at = (s: FleetSnapshot, r: GateRequest, seq = 0, c: DecideConfig = cfg, now = T0): Decision => decide(r, s, c, now, seq);

describe('classify', () => {
  it('reads the daemon routes', () => {
    assert.deepEqual(classify(dispatch('langgenius/openai')), { kind: 'plugin', pluginId: 'langgenius/openai', tenant: 'tenant-1' });
    assert.deepEqual(
      classify(req('/v2/invoke/dispatch/tool/invoke', { 'x-plugin-unique-identifier': 'langgenius/openai:0.0.1@' + 'a'.repeat(64) })),
      { kind: 'plugin', pluginId: 'langgenius/openai', tenant: undefined },
    );
    assert.equal(classify(req('/e/abc123/hook')).kind, 'any');
    assert.equal(classify(req('/plugin/t/management/list')).kind, 'any');
    assert.equal(classify(req('/health/check')).kind, 'any');
    assert.equal(classify(req('/plugin/t/dispatch/tool/invoke?x=1', { 'x-plugin-id': 'Bad Id!' })).kind, 'invalid');
    assert.equal(classify(req('/plugin/t/dispatch/tool/invoke')).kind, 'invalid');
    assert.equal(classify(req('/v2/invoke/extract', { 'x-plugin-unique-identifier': 'nope' })).kind, 'invalid');
  });
  it('classifies on the decoded path, as the daemon routes', () => {
    assert.equal(classify(req('/plugin/t1/%64ispatch/llm/invoke', { 'x-plugin-id': 'a/b' })).kind, 'plugin');
    assert.equal(classify(req('/plugin/t1%2Fdispatch/llm/invoke', { 'x-plugin-id': 'a/b' })).kind, 'plugin');
    assert.equal(classify(req('/v2/invoke/%64ispatch/x', { 'x-plugin-unique-identifier': 'a/b:1.0.0@' + 'c'.repeat(32) })).kind, 'plugin');
    assert.equal(classify(req('/plugin/%ZZ/dispatch/x', { 'x-plugin-id': 'a/b' })).kind, 'invalid');
    assert.equal(classify(req('/e/abc%20def/x')).kind, 'any');
  });
  it('honours per-route context_extensions', () => {
    assert.equal(classify(req('/plugin/t/dispatch/x', { 'x-plugin-id': 'a/b' }, { plugin_gate: 'bypass' })).kind, 'bypass');
    assert.equal(classify(req('/custom/path', { 'x-plugin-id': 'a/b' }, { plugin_gate_source: 'x-plugin-id' })).kind, 'plugin');
    assert.equal(classify(req('/plugin/t/dispatch/x', { 'x-plugin-id': 'a/b' }, { plugin_gate_source: 'none' })).kind, 'any');
  });
});

describe('decide: state table D1-D6', () => {
  it('D1 routes only to pods where the plugin is ready, round robin', () => {
    const s = fleet({ [A]: { plugins: { 'a/x': { g: 1 } } }, [B]: { plugins: { 'a/x': { g: 0.5 } } }, [C]: { plugins: { 'a/x': { g: 1 } } } });
    const picks = [0, 1, 2, 3].map((seq) => {
      const d = at(s, dispatch('a/x'), seq);
      assert.equal(d.allow && d.reason, 'plugin_ready');
      return d.allow ? d.upstream : undefined;
    });
    assert.deepEqual(picks, [A, C, A, C]);
  });
  it('D2 denies no_live_pod when no pod answers', () => {
    const s = fleet({ [A]: 'down' });
    const d = at(s, dispatch('a/x'));
    assert.equal(d.reason, 'no_live_pod');
    assert.equal(at(s, req('/plugin/t/management/list')).reason, 'no_live_pod');
  });
  it('D3 denies plugin_starting with 503, Retry-After and the daemon envelope while it launches', () => {
    const s = fleet({ [A]: { plugins: { 'a/x': { g: 0.5 }, 'a/y': { g: 1 } } } });
    const d = at(s, dispatch('a/x'));
    assert.equal(d.allow, false);
    if (d.allow) return;
    assert.equal(d.reason, 'plugin_starting');
    assert.equal(d.httpStatus, 503);
    assert.equal(d.retryAfterS, 5);
    assert.ok(d.body.endsWith('\n') && d.body.indexOf('\n') === d.body.length - 1, 'exactly one line');
    const env = JSON.parse(d.body) as { code: number; message: string; data: null };
    assert.equal(env.code, -500);
    assert.equal(env.data, null);
    const inner = JSON.parse(env.message) as { message: string; error_type: string; args: null };
    assert.equal(inner.error_type, 'PluginDaemonInternalServerError');
    assert.equal(inner.args, null);
    assert.match(inner.message, /plugin runtime not found/);
    assert.match(inner.message, /a\/x/);
    assert.match(inner.message, /retry after 5s/);
  });
  it('D3 uses the daemon backoff as Retry-After when every starting pod waits for a retry', () => {
    const s = fleet({ [A]: { plugins: { 'a/x': { g: 0, f: 9 } } }, [B]: { plugins: { 'a/x': { g: 0, f: 5 } } } });
    const d = at(s, dispatch('a/x'));
    assert.equal(d.reason, 'plugin_starting');
    assert.equal(!d.allow && d.retryAfterS, 30);
  });
  it('D3 Retry-After follows the daemon schedule from the failures so far: 30 s after the 3rd, 60 s after the 8th', () => {
    const after = (f: number): number | false | undefined => {
      const d = at(fleet({ [A]: { plugins: { 'a/x': { g: 0, f } } } }), dispatch('a/x'));
      return !d.allow && d.retryAfterS;
    };
    assert.deepEqual([2, 3, 7, 8, 14].map(after), [5, 30, 30, 60, 60]);
  });
  it('D4 a cold fleet restart: plugins no pod reports yet are starting, not unknown', () => {
    const young = T0 - 5_000;
    const s = fleet({ [A]: { start: young, plugins: { 'a/x': { g: 0.5 } } }, [B]: { start: young, plugins: {} } });
    assert.equal(at(s, dispatch('a/queued')).reason, 'plugin_starting');
    assert.equal(at(s, dispatch('a/queued'), 0, { ...cfg, unknownPlugin: 'deny' }).reason, 'plugin_starting');
  });
  it('D5 plugin_failed only when every pod that has it gave up', () => {
    const gaveUp = fleet({ [A]: { plugins: { 'a/x': { g: 0, f: 15 } } }, [B]: { plugins: { 'a/x': { g: 0, f: 15 } } } });
    const d = at(gaveUp, dispatch('a/x'));
    assert.equal(d.reason, 'plugin_failed');
    assert.equal(!d.allow && d.retryAfterS, 60);
    assert.match(!d.allow ? d.message : '', /gave up after 15 failed launches/);
    const oneRetrying = fleet({ [A]: { plugins: { 'a/x': { g: 0, f: 15 } } }, [B]: { plugins: { 'a/x': { g: 0, f: 3 } } } });
    assert.equal(at(oneRetrying, dispatch('a/x')).reason, 'plugin_starting');
    const oneReady = fleet({ [A]: { plugins: { 'a/x': { g: 0, f: 15 } } }, [B]: { plugins: { 'a/x': { g: 1 } } } });
    const r = at(oneReady, dispatch('a/x'));
    assert.equal(r.allow && r.upstream, B);
  });
  it('D6 a plugin no pod reports, past start-up, follows the unknown-plugin policy', () => {
    const s = fleet({ [A]: { plugins: { 'a/y': { g: 1 } } } });
    const allowed = at(s, dispatch('a/x'));
    assert.equal(allowed.reason, 'unknown_plugin_allowed');
    assert.equal(allowed.allow && allowed.upstream, A);
    assert.equal(at(s, dispatch('a/x'), 0, { ...cfg, unknownPlugin: 'deny' }).reason, 'unknown_plugin_denied');
  });
  it('never routes on data past freshUntil, even if the snapshot was not rebuilt', () => {
    const s = fleet({ [A]: { plugins: { 'a/x': { g: 1 } } } });
    assert.equal(at(s, dispatch('a/x'), 0, cfg, T0 + 10_001).reason, 'no_live_pod');
  });
  it('denies gate_not_ready before the first complete round, for every kind of request', () => {
    const { tracker } = newTracker([A]);
    const s = tracker.snapshot();
    assert.equal(at(s, dispatch('a/x')).reason, 'gate_not_ready');
    assert.equal(at(s, req('/plugin/t/management/list')).reason, 'gate_not_ready');
  });
  it('invalid plugin ids are a 400 that never echoes the input', () => {
    const s = fleet({ [A]: { plugins: {} } });
    const d = at(s, dispatch('../../etc/passwd'));
    assert.equal(d.reason, 'invalid_plugin_id');
    assert.equal(!d.allow && d.httpStatus, 400);
    assert.doesNotMatch(!d.allow ? d.body : '', /passwd/);
  });
  it('routes not-plugin-scoped requests and webhooks to any live pod', () => {
    const s = fleet({ [A]: { plugins: {} }, [B]: 'down' });
    const d = at(s, req('/e/hook/x'));
    assert.equal(d.reason, 'not_plugin_scoped');
    assert.equal(d.allow && d.upstream, A);
  });
  it('dry run allows what it would deny and says why', () => {
    const s = fleet({ [A]: { plugins: { 'a/x': { g: 0.5 } } } });
    const d = at(s, dispatch('a/x'), 0, { ...cfg, dryRun: true });
    assert.equal(d.allow, true);
    assert.equal(d.reason, 'dry_run');
    assert.equal(d.allow && d.wouldDeny?.reason, 'plugin_starting');
  });
});

describe('decide: properties over random fleets and requests', () => {
  const pods = ['10.0.0.1:5002', '10.0.0.2:5002', '10.0.0.3:5002', '10.0.0.4:5002'];
  const plugins = ['a/p1', 'a/p2', 'b/p3', 'p4'];
  const series = fc.oneof(
    fc.constant<PluginSeries | undefined>(undefined),
    fc.record({ g: fc.constantFrom(0, 0.5, 1), f: fc.integer({ min: 0, max: 20 }) }),
  );
  const podSpec = fc.oneof(
    fc.constant<'down'>('down'),
    fc.record({
      start: fc.constantFrom(T0 - 5_000, T0 - 120_000, OLD),
      plugins: fc.tuple(series, series, series, series),
    }),
  );
  const fleetArb = fc.tuple(podSpec, podSpec, podSpec, podSpec).map((specs) => {
    const obj: Parameters<typeof fleet>[0] = {};
    specs.forEach((s, i) => {
      if (s === 'down') obj[pods[i]!] = 'down';
      else {
        const ps: Record<string, PluginSeries> = {};
        s.plugins.forEach((p, j) => {
          if (p !== undefined) ps[plugins[j]!] = p;
        });
        obj[pods[i]!] = { start: s.start, plugins: ps };
      }
    });
    return fleet(obj);
  });
  const headerValue = fc.oneof(fc.constantFrom(...plugins, 'zz/unknown'), fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 400 }));
  const requestArb = fc.record({
    path: fc.oneof(
      fc.constantFrom('/plugin/t/dispatch/llm/invoke', '/v2/invoke/dispatch/tool/invoke', '/v2/invoke/extract', '/e/h/x', '/plugin/t/management/list', '/'),
      fc.string({ maxLength: 300 }),
    ),
    pid: headerValue,
    uid: fc.oneof(headerValue, fc.constantFrom('a/p1:1.0.0@' + 'f'.repeat(64))),
    ctx: fc.dictionary(fc.constantFrom('plugin_gate', 'plugin_gate_source', 'other'), fc.constantFrom('bypass', 'x-plugin-id', 'unique-id', 'none', '')),
  });
  const cfgArb = fc.record({
    unknownPlugin: fc.constantFrom<'allow' | 'deny'>('allow', 'deny'),
    retryAfterMs: fc.integer({ min: 1_000, max: 120_000 }),
    failedRetryAfterMs: fc.integer({ min: 1_000, max: 120_000 }),
    dryRun: fc.boolean(),
  });

  it('an allow with an upstream always names a live pod; plugin_ready names one where the plugin is ready', () => {
    fc.assert(
      fc.property(fleetArb, requestArb, cfgArb, fc.nat(), fc.integer({ min: 0, max: 20_000 }), (snap, r, c, seq, dt) => {
        const gr = req(r.path, { 'x-plugin-id': r.pid, 'x-plugin-unique-identifier': r.uid }, r.ctx);
        const now = T0 + dt;
        const d = decide(gr, snap, c, now, seq);
        if (d.allow && d.upstream !== undefined) {
          const pod = snap.pods.get(d.upstream);
          assert.ok(pod !== undefined && pod.state === 'live' && pod.freshUntil >= now, 'upstream is a live, fresh pod');
          if (d.reason === 'plugin_ready') assert.equal(pod.plugins.get(d.pluginId!)?.state, 'ready');
        }
        if (!d.allow) {
          assert.ok(d.httpStatus === 503 || d.httpStatus === 400);
          JSON.parse(d.body);
        }
        if (c.dryRun) assert.equal(d.allow, true);
      }),
      { numRuns: 3000 },
    );
  });

  it('what is memoised per snapshot never changes an answer, whatever the time of the later requests', () => {
    // The memo is keyed by the snapshot's identity: a copy starts with none, so it decides from scratch.
    const fresh = (s: FleetSnapshot): FleetSnapshot => ({ ...s });
    const ids = [...plugins, 'zz/unknown'];
    fc.assert(
      fc.property(fleetArb, cfgArb, fc.array(fc.tuple(fc.constantFrom(...ids), fc.integer({ min: 0, max: 20_000 }), fc.nat()), { minLength: 1, maxLength: 12 }), (snap, c, asks) => {
        for (const [id, dt, seq] of asks) {
          const now = T0 + dt;
          const r = dispatch(id);
          assert.deepEqual(decide(r, snap, c, now, seq), decide(r, fresh(snap), c, now, seq));
          // maybeQueued, by its definition: a fresh start-up pod that does not report the plugin.
          const walk = snap.startupPods.some((p) => p.freshUntil >= now && (p.plugins.get(id)?.state ?? 'absent') === 'absent');
          assert.equal(maybeQueued(snap, id, now), walk);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('no input crashes the decision', () => {
    fc.assert(
      fc.property(fleetArb, fc.string({ unit: 'binary', maxLength: 2000 }), fc.dictionary(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 500 })), fc.nat(), (snap, path, headers, seq) => {
        decide(req(path, headers, headers), snap, cfg, T0, seq);
      }),
      { numRuns: 2000 },
    );
  });
});
