/**
 * A pod churning plugin ids on every poll, through the running gate: plugin
 * state lines stay within state-log-rate, the rest are counted in
 * plugin_gate_state_log_suppressed_total and summarised once a second.
 * Before, 2,000 ids per poll wrote 4,011 lines (828 KB) in 7 s.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGate } from '../src/app/app.js';
import { configFor } from '../src/config/config.js';
import { createLogger } from '../src/observe/logger.js';
import { MemoryLog } from './support/e2e.js';
import { neverPolls, TEST_FLAGS } from './support/gate.js';
import { ManualScheduler } from './support/manual-scheduler.js';
import { startServer } from './status/servers.js';

const START_S = (Date.UTC(2026, 0, 1) - 3_600_000) / 1000;

describe('plugin state change log under churn', () => {
  it('stays within state-log-rate, and counts and summarises the rest', async () => {
    let round = 0;
    // Every read reports 1,000 plugin ids nobody reported the read before.
    const pod = await startServer({
      '/metrics/': (_req, res) => {
        round++;
        const lines = ['# TYPE plugin_runtime_status gauge'];
        for (let i = 0; i < 1_000; i++) lines.push(`plugin_runtime_status{plugin_id="churn/r${round}-p${i}",runtime_type="local"} 1`);
        lines.push(`process_start_time_seconds ${START_S}`);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(lines.join('\n') + '\n');
      },
    });
    const log = new MemoryLog();
    const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
    const config = configFor({ ...TEST_FLAGS, targets: pod.address, sources: 'metrics', 'state-log-rate': '50' });
    const gate = await startGate(config, { scheduler: sched, pollScheduler: neverPolls(sched), logger: createLogger('info', [], log) });
    try {
      for (let i = 0; i < 7; i++) {
        await gate.poller.pollNow();
        sched.advance(1_000); // one poll a second; the app's once-a-second summary runs on the same clock
      }
      const records = log.records();
      const lines = records.filter((r) => r['msg'] === 'plugin state changed').length;
      const summaries = records.filter((r) => typeof r['msg'] === 'string' && r['msg'].startsWith('state log rate limit'));
      const suppressed = summaries.reduce((n, r) => n + Number(r['suppressed']), 0);
      assert.ok(round >= 7, `polled ${round} times`);
      assert.ok(lines <= 50 * 8, `at most the rate per second plus one burst: ${lines}`);
      assert.ok(summaries.length >= 6 && summaries.length <= 8, `one summary a second: ${summaries.length}`);
      assert.equal(lines + suppressed, round * 1_000, 'every change either written or counted');
      const page = await gate.metrics.text();
      assert.match(page, new RegExp(`^plugin_gate_state_log_suppressed_total ${suppressed}$`, 'm'));
    } finally {
      await gate.close();
      await pod.close();
    }
  });
});

