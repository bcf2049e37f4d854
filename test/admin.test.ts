/** The admin listener against a simulated fleet: the page, the JSON status and the metrics. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, type Harness } from './support/gate.js';

describe('admin listener', () => {
  let h: Harness | undefined;
  after(async () => h?.close());

  it('serves the fleet as a page, as JSON and as metrics', async () => {
    h = await startHarness({
      pods: 2,
      plugins: [
        { id: 'a/one', launchMs: 1_000 },
        { id: 'a/bad', launchMs: 1_000, failures: 'always' },
      ],
    });
    await h.gate.whenReady();
    h.sched.advance(2_000);
    await h.poll();
    const base = `http://127.0.0.1:${h.gate.adminPort}`;

    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const html = await page.text();
    for (const p of h.fleet.pods) assert.ok(html.includes(p.address), `page lists ${p.address}`);
    assert.match(html, /<th class="plugin">a\/one<\/th><td class="ready"/);
    assert.match(html, /<th class="plugin">a\/bad<\/th><td class="starting"/);

    const status = (await (await fetch(`${base}/status`)).json()) as {
      ready: boolean;
      counts: { pods: number; live: number; plugins: number };
      plugins: { plugin_id: string; ready_pods: string[] }[];
    };
    assert.equal(status.ready, true);
    assert.deepEqual(status.counts, { pods: 2, live: 2, in_startup: 2, plugins: 2, dropped_plugins: 0, held: 0 } as typeof status.counts);
    assert.deepEqual(status.plugins.find((p) => p.plugin_id === 'a/one')?.ready_pods, h.fleet.pods.map((p) => p.address).sort());

    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /plugin_gate_plugin_pods\{plugin_id="a\/one",state="ready"\} 2/);
    assert.match(text, /plugin_gate_ready 1/);
    assert.match(text, /plugin_gate_pod_live\{pod="127\.0\.0\.1:\d+",state="live"\} 1/);

    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/status`, { method: 'POST' })).status, 405);
  });
});

describe('drain on shutdown', () => {
  it('answers not ready for the whole drain, on the gate clock, then closes', async () => {
    const h = await startHarness({ pods: 1, plugins: [{ id: 'a/one', launchMs: 0 }] }, { drain: '5s' });
    try {
      await h.gate.whenReady();
      const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${h.gate.adminPort}/readyz`)).status;
      assert.equal(await readyz(), 200);
      let stopped = false;
      const shutdown = h.gate.shutdown().then(() => (stopped = true));
      assert.equal(await readyz(), 503, 'draining is not ready');
      h.sched.advance(4_999);
      assert.equal(await readyz(), 503, 'still draining, still answering');
      assert.equal(stopped, false);
      h.sched.advance(1);
      await shutdown;
      assert.equal(stopped, true);
    } finally {
      await h.close();
    }
  });
});

describe('background failures', () => {
  it('are logged and counted by where they happened, and the gate keeps serving', async () => {
    const h = await startHarness({ pods: 1, plugins: [{ id: 'a/one', launchMs: 0 }] });
    try {
      await h.gate.whenReady();
      h.gate.tracker.onSnapshot(() => {
        throw new Error('a listener bug');
      });
      await h.poll();
      const text = await (await fetch(`http://127.0.0.1:${h.gate.adminPort}/metrics`)).text();
      const m = /^plugin_gate_background_errors_total\{source="tracker",code="internal"\} (\d+)$/m.exec(text);
      assert.ok(m !== null && Number(m[1]) >= 1, text.split('\n').filter((l) => l.includes('background')).join('\n'));
      assert.equal((await fetch(`http://127.0.0.1:${h.gate.adminPort}/readyz`)).status, 200);
    } finally {
      await h.close();
    }
  });
});
