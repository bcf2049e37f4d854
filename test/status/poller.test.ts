import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../src/core/clock.js';
import { GateError } from '../../src/core/errors.js';
import { StatusHttp } from '../../src/status/http.js';
import { Poller } from '../../src/status/poller.js';
import { readPod } from '../../src/status/reader.js';
import type { PodReport } from '../../src/status/types.js';
import { daemonExposition } from './daemon-exposition.js';
import { hang, json, startServer, text } from './servers.js';

/** Waits until `cond` holds, checking every 10 ms; fails after `ms` so the test cannot hang. */
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms}ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Poller with real pod reads', () => {
  it('a pod that hangs every request does not hold back a healthy pod; stop() ends everything', async () => {
    const healthy = await startServer({
      '/metrics/': text(200, daemonExposition([{ id: 'a/x', status: 1 }])),
      '/health/check': json(200, { status: 'ok', version: '0.5.7' }),
    });
    const stuck = await startServer({ '/metrics/': hang, '/health/check': hang });
    let stuckOpen = 0;
    stuck.server.on('connection', (s) => {
      stuckOpen++;
      s.on('close', () => stuckOpen--);
    });
    const http = new StatusHttp({ timeoutMs: 30_000 });
    const reports: PodReport[] = [];
    const errors: GateError[] = [];
    const poller = new Poller({
      // A long timeout: the stuck pod's read stays open for the whole test unless stop() aborts it.
      read: (pod, signal) => readPod(pod, ['metrics', 'health-check'], { http, clock: systemClock, timeoutMs: 30_000, maxBytes: 1 << 20, maxPlugins: 10, signal }),
      onReport: (r) => reports.push(r),
      onError: (e) => errors.push(e),
      intervalMs: 20,
      jitterPercent: 0,
    });
    try {
      poller.setTargets([healthy.address, stuck.address]);
      const fromHealthy = () => reports.filter((r) => r.pod === healthy.address);
      await waitFor(() => fromHealthy().length >= 4, 10_000, 'four reports from the healthy pod');
      assert.equal(reports.filter((r) => r.pod === stuck.address).length, 0);
      assert.ok(fromHealthy().every((r) => r.metrics?.ok === true && r.health?.ok === true));
      const first = fromHealthy()[0]?.metrics;
      assert.ok(first?.ok === true);
      assert.equal(first.data.runtimeStatus.get('a/x'), 1);
      assert.equal(stuck.hits.get('/metrics/'), 1, 'one read in flight for the stuck pod, never a pile-up');
      assert.equal(poller.isSettled(), false);
    } finally {
      await poller.stop();
    }
    const after = reports.length;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(reports.length, after, 'no report after stop()');
    assert.deepEqual(errors, []);
    // The stuck pod's sockets were closed by the abort.
    await waitFor(() => stuckOpen === 0, 5000, 'stuck pod sockets closed');
    await http.close();
    await healthy.close();
    await stuck.close();
  });
});
