import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimFleet, type SimFleetOptions } from './fleet.js';
import { uniqueIdentifierFor } from './lifecycle.js';
import { demoScenario, DEMO_PLUGINS } from './scenario.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { httpCall, parseExposition, sampleValue } from '../../test/support/sim-http.js';

async function withFleet(
  opts: Omit<SimFleetOptions, 'scheduler'>,
  fn: (f: SimFleet, s: ManualScheduler) => Promise<void>,
): Promise<void> {
  const s = new ManualScheduler(Date.UTC(2026, 0, 1));
  const f = new SimFleet({ ...opts, scheduler: s });
  await f.start();
  try {
    await fn(f, s);
  } finally {
    await f.close();
  }
}

const phaseOn = (f: SimFleet, pod: number, id: string) => f.pod(pod).snapshot().plugins.find((p) => p.id === id)?.phase;

test('targets list every pod; a per-pod override makes a plugin ready on one pod only; dispatch lands where it runs', async () => {
  await withFleet(
    {
      pods: 3,
      plugins: [{ id: 'langgenius/jina', launchMs: 60_000 }],
      podPlugins: [undefined, { 'langgenius/jina': { launchMs: 1_000 } }],
    },
    async (f, s) => {
      assert.match(f.targets, /^127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
      assert.deepEqual(
        f.pods.map((p) => p.name),
        ['pod-1', 'pod-2', 'pod-3'],
      );
      assert.equal(new Set(f.targets.split(',')).size, 3);
      s.advance(1_000);
      assert.deepEqual([0, 1, 2].map((i) => phaseOn(f, i, 'langgenius/jina')), ['launching', 'running', 'launching']);
      for (const pod of f.pods) {
        const r = await httpCall(`${pod.url}/plugin/t/dispatch/rerank/invoke`, {
          method: 'POST',
          headers: { 'x-plugin-id': 'langgenius/jina' },
        });
        assert.equal(r.status, pod.name === 'pod-2' ? 200 : 404);
        assert.equal(r.headers['x-sim-pod'], pod.name);
      }
      assert.deepEqual(
        [...f.hitsFor('langgenius/jina')],
        [
          ['pod-1', 0],
          ['pod-2', 1],
          ['pod-3', 0],
        ],
      );
    },
  );
});

test('installAtRuntime: the first pod launches now, the others after the 30 s scan (× timeScale)', async () => {
  await withFleet({ pods: 3, plugins: [], timeScale: 0.5 }, async (f, s) => {
    const uid = f.installAtRuntime({ id: 'langgenius/wikipedia', launchMs: 2_000 }, 1);
    assert.equal(uid, uniqueIdentifierFor('langgenius/wikipedia'));
    assert.equal(phaseOn(f, 1, 'langgenius/wikipedia'), 'launching');
    assert.equal(phaseOn(f, 0, 'langgenius/wikipedia'), undefined);
    s.advance(14_999);
    assert.equal(phaseOn(f, 1, 'langgenius/wikipedia'), 'running');
    assert.equal(phaseOn(f, 0, 'langgenius/wikipedia'), undefined);
    s.advance(1);
    assert.equal(phaseOn(f, 0, 'langgenius/wikipedia'), 'launching');
    assert.equal(phaseOn(f, 2, 'langgenius/wikipedia'), 'launching');
    const m = parseExposition((await httpCall(`${f.pod('pod-1').url}/metrics/`)).body);
    assert.equal(sampleValue(m, 'plugin_runtime_status', { plugin_id: 'langgenius/wikipedia' }), 0.5);
    f.uninstall('langgenius/wikipedia');
    assert.equal(f.pods.every((p) => p.snapshot().plugins.length === 0), true);
  });
  assert.throws(() => new SimFleet({ pods: 0, plugins: [] }), { code: 'config_invalid' });
  assert.throws(
    () => new SimFleet({ pods: 2, plugins: [], runtimeInstalls: [{ atMs: 0, spec: { id: 'a/b', launchMs: 1 }, firstPodIndex: 2 }] }),
    { code: 'config_invalid' },
  );
});

test('the demo scenario plays out as its description says', async () => {
  const demo = demoScenario(0.05);
  assert.equal(demo.fleet.pods, 3);
  assert.ok(DEMO_PLUGINS.length >= 12);
  await withFleet({ ...demo.fleet, readyCheck: true }, async (f, s) => {
    // While the fast pod has it and the others are still launching, traffic for it has one place to go.
    const fast = demo.fastOnOnePod;
    let sawOnlyFast = false;
    const step = 5_000 * demo.timeScale;
    for (let t = 0; t < demo.settledByMs * demo.timeScale; t += step) {
      s.advance(step);
      const phases = f.pods.map((_, i) => phaseOn(f, i, fast.pluginId));
      if (phases.every((p, i) => (i === fast.podIndex ? p === 'running' : p !== 'running'))) sawOnlyFast = true;
    }
    assert.equal(sawOnlyFast, true, `${fast.pluginId} was running on pod index ${fast.podIndex} alone for a while`);
    for (const pod of f.pods) {
      const plugins = pod.snapshot().plugins;
      const byId = new Map(plugins.map((p) => [p.id, p]));
      assert.equal(byId.get(demo.alwaysFails)?.phase, 'gave_up', pod.name);
      assert.equal(byId.get(demo.alwaysFails)?.failedLaunches, 15);
      assert.equal(byId.get(demo.failsThenRuns)?.phase, 'running');
      assert.ok((byId.get(demo.failsThenRuns)?.failedLaunches ?? 0) > 0);
      assert.equal(byId.get(demo.runtimeInstalled)?.phase, 'running');
      const others = plugins.filter((p) => p.id !== demo.alwaysFails);
      assert.equal(others.every((p) => p.phase === 'running'), true, pod.name);
      assert.equal(plugins.length, DEMO_PLUGINS.length + 1);
      const ready = await httpCall(`${pod.url}/ready/check`);
      assert.equal(ready.status, 200);
    }
  });
});
