/**
 * max-plugins bounds the plugin index without letting one pod starve another.
 * The attack: one pod reporting 2,500 plugin series, whose address sorts first,
 * beside a healthy pod. A plugin ready only on the healthy pod came back
 * unknown_plugin_allowed (half its traffic to a pod that does not run it), or
 * with unknown-plugin: deny "not reported by any of 2 live pods".
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decide, type DecideConfig } from '../decide/decide.js';
import type { GateRequest } from '../decide/types.js';
import { statusDocument } from '../admin/status.js';
import { metrics, newTracker, okReport, OLD, T0, type PluginSeries } from '../../test/support/fleet.js';

const A = '10.0.0.1:5002'; // sorts first: the noisy pod
const B = '10.0.0.2:5002';
const cfg: DecideConfig = { unknownPlugin: 'deny', retryAfterMs: 5_000, failedRetryAfterMs: 60_000, dryRun: false };

function dispatch(plugin: string): GateRequest {
  const h = new Map([['x-plugin-id', plugin]]);
  return { method: 'POST', path: '/plugin/t/dispatch/llm/invoke', header: (n) => h.get(n), contextExtensions: new Map(), requestId: undefined };
}

function many(n: number, series: PluginSeries, prefix = 'noise'): Record<string, PluginSeries> {
  const out: Record<string, PluginSeries> = {};
  for (let i = 0; i < n; i++) out[`${prefix}/p${String(i).padStart(5, '0')}`] = series;
  return out;
}

describe('max-plugins: per-pod fairness', () => {
  for (const [what, series] of [
    ['stopped (absent) series', { g: 0 }],
    ['running series', { g: 1 }],
  ] as const) {
    it(`a pod with 2,500 ${what} cannot hide a plugin ready only on another pod`, () => {
      const { tracker } = newTracker([A, B], { maxPlugins: 2000 });
      tracker.ingest(okReport(A, T0, metrics(many(2500, series), OLD)));
      tracker.ingest(okReport(B, T0, metrics({ 'langgenius/openai': { g: 1 }, 'langgenius/tavily': { g: 0.5 } }, OLD)));
      const snap = tracker.snapshot();
      assert.ok(snap.plugins.size <= 2000, `index bounded: ${snap.plugins.size}`);
      assert.deepEqual(snap.plugins.get('langgenius/openai')?.readyPods, [B]);
      assert.deepEqual(snap.plugins.get('langgenius/tavily')?.startingPods, [B]);
      for (let seq = 0; seq < 4; seq++) {
        const d = decide(dispatch('langgenius/openai'), snap, cfg, T0, seq);
        assert.equal(d.allow && d.reason === 'plugin_ready' && d.upstream, B, `every request goes to the pod that runs it (${JSON.stringify(d)})`);
      }
      const starting = decide(dispatch('langgenius/tavily'), snap, cfg, T0, 0);
      assert.equal(starting.reason, 'plugin_starting');
      // What did not fit is counted against the pod that reported it, and shown in /status.
      const droppedA = snap.droppedPlugins.get(A) ?? 0;
      assert.ok(droppedA >= 500, `pod A's excess counted: ${droppedA}`);
      assert.equal(snap.droppedPlugins.has(B), false);
      const doc = statusDocument(snap, T0, false) as { pods: { address: string; dropped_plugins: number }[]; counts: { dropped_plugins: number } };
      assert.equal(doc.pods.find((p) => p.address === A)?.dropped_plugins, droppedA);
      assert.equal(doc.pods.find((p) => p.address === B)?.dropped_plugins, 0);
      assert.equal(doc.counts.dropped_plugins, droppedA);
    });
  }

  it('plugins running somewhere are never dropped in favour of absent ones, whatever the address order', () => {
    const { tracker } = newTracker([A, B], { maxPlugins: 10 });
    // A (first) reports 20 stopped plugins; B runs 8. All 8 running ones must be indexed.
    tracker.ingest(okReport(A, T0, metrics(many(20, { g: 0 }), OLD)));
    tracker.ingest(okReport(B, T0, metrics(many(8, { g: 1 }, 'real'), OLD)));
    const snap = tracker.snapshot();
    assert.equal(snap.plugins.size, 10);
    for (let i = 0; i < 8; i++) assert.deepEqual(snap.plugins.get(`real/p${String(i).padStart(5, '0')}`)?.readyPods, [B]);
    assert.equal(snap.droppedPlugins.get(A), 18);
    assert.equal(snap.droppedPlugins.has(B), false);
  });

  it('when running plugins alone pass the cap, the pods take turns', () => {
    const { tracker } = newTracker([A, B], { maxPlugins: 10 });
    tracker.ingest(okReport(A, T0, metrics(many(50, { g: 1 }, 'a'), OLD)));
    tracker.ingest(okReport(B, T0, metrics(many(6, { g: 1 }, 'b'), OLD)));
    const snap = tracker.snapshot();
    const fromB = [...snap.plugins.keys()].filter((id) => id.startsWith('b/')).length;
    assert.equal(snap.plugins.size, 10);
    assert.equal(fromB, 5, 'half the cap each');
    assert.equal(snap.droppedPlugins.get(A), 45);
    assert.equal(snap.droppedPlugins.get(B), 1);
  });

  it('a plugin both pods run is indexed once and routed to both; no cap, nothing dropped', () => {
    const { tracker } = newTracker([A, B], { maxPlugins: 3 });
    tracker.ingest(okReport(A, T0, metrics({ 'x/shared': { g: 1 }, 'x/a': { g: 1 } }, OLD)));
    tracker.ingest(okReport(B, T0, metrics({ 'x/shared': { g: 1 }, 'x/b': { g: 1 } }, OLD)));
    const snap = tracker.snapshot();
    assert.deepEqual(snap.plugins.get('x/shared')?.readyPods, [A, B]);
    assert.equal(snap.droppedPlugins.size, 0);
  });
});
