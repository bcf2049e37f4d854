/**
 * Plugins past max-plugins, through the running gate: counted per pod in
 * /status and logged once per pod, not once per poll. Two loopback "daemons"
 * serve fixed /metrics/ pages: the first (its address need not sort first)
 * reports many stopped plugins, the second runs one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGate } from '../src/app/app.js';
import { configFor } from '../src/config/config.js';
import { createLogger } from '../src/observe/logger.js';
import { MemoryLog } from './support/e2e.js';
import { neverPolls, TEST_FLAGS } from './support/gate.js';
import { ManualScheduler } from './support/manual-scheduler.js';
import { startServer, text } from './status/servers.js';

function exposition(plugins: Record<string, number>): string {
  const lines = ['# TYPE plugin_runtime_status gauge'];
  for (const [id, g] of Object.entries(plugins)) lines.push(`plugin_runtime_status{plugin_id="${id}",runtime_type="local"} ${g}`);
  lines.push('# TYPE process_start_time_seconds gauge', `process_start_time_seconds ${(Date.UTC(2026, 0, 1) - 3_600_000) / 1000}`);
  return lines.join('\n') + '\n';
}

describe('max-plugins in the running gate', () => {
  it('a pod whose plugins pass the cap is shown in /status and logged once, however often it is polled', async () => {
    const noisy: Record<string, number> = {};
    for (let i = 0; i < 30; i++) noisy[`noise/p${i}`] = 0;
    const a = await startServer({ '/metrics/': text(200, exposition(noisy)) });
    const b = await startServer({ '/metrics/': text(200, exposition({ 'langgenius/openai': 1 })) });
    const log = new MemoryLog();
    const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
    const config = configFor({ ...TEST_FLAGS, targets: `${a.address},${b.address}`, sources: 'metrics', 'max-plugins': '10' });
    const gate = await startGate(config, { scheduler: sched, pollScheduler: neverPolls(sched), logger: createLogger('info', [], log) });
    try {
      for (let i = 0; i < 5; i++) await gate.poller.pollNow();
      const snap = gate.snapshot();
      assert.deepEqual(snap.plugins.get('langgenius/openai')?.readyPods, [b.address]);
      // The reader keeps ten of pod a's thirty series (a per-pod bound); of the
      // eleven plugins left, the running one and nine stopped ones are indexed.
      assert.equal(snap.pods.get(a.address)?.droppedSeries, 20);
      assert.deepEqual([...snap.droppedPlugins], [[a.address, 1]]);
      const status = (await fetch(`http://127.0.0.1:${gate.adminPort}/status`).then((r) => r.json())) as {
        pods: { address: string; dropped_plugins: number; dropped_series: number }[];
        counts: { dropped_plugins: number };
      };
      assert.equal(status.pods.find((p) => p.address === a.address)?.dropped_plugins, 1);
      assert.equal(status.pods.find((p) => p.address === a.address)?.dropped_series, 20);
      assert.equal(status.pods.find((p) => p.address === b.address)?.dropped_plugins, 0);
      assert.equal(status.pods.find((p) => p.address === b.address)?.dropped_series, 0);
      assert.equal(status.counts.dropped_plugins, 1);
      const warnings = log.records().filter((r) => typeof r['msg'] === 'string' && r['msg'].startsWith('plugins past max-plugins'));
      assert.equal(warnings.length, 1, 'one line, not one per poll');
      assert.equal(warnings[0]!['pod'], a.address);
      assert.equal(warnings[0]!['dropped_series'], 20);
    } finally {
      await gate.close();
      await a.close();
      await b.close();
    }
  });
});
