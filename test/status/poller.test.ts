import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GateError } from '../../src/core/errors.js';
import { StatusHttp } from '../../src/status/http.js';
import { Poller } from '../../src/status/poller.js';
import { readPod } from '../../src/status/reader.js';
import type { PodReport } from '../../src/status/types.js';
import { daemonExposition } from './daemon-exposition.js';
import { hang, json, startServer, text } from './servers.js';
import { ManualScheduler, advanceUntil, settle } from '../support/manual-scheduler.js';


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
    // Poll waits run on manual time; the reads themselves are real loopback HTTP.
    const sched = new ManualScheduler(Date.now());
    const reports: PodReport[] = [];
    const errors: GateError[] = [];
    const poller = new Poller({
      // A long timeout: the stuck pod's read stays open for the whole test unless stop() aborts it.
      read: (pod, signal) => readPod(pod, ['metrics', 'health-check'], { http, clock: sched, timeoutMs: 30_000, maxBytes: 1 << 20, maxPlugins: 10, signal }),
      onReport: (r) => reports.push(r),
      onError: (e) => errors.push(e),
      intervalMs: 20,
      jitterPercent: 0,
      scheduler: sched,
    });
    try {
      poller.setTargets([healthy.address, stuck.address]);
      const fromHealthy = () => reports.filter((r) => r.pod === healthy.address);
      await advanceUntil(sched, 'four reports from the healthy pod', () => fromHealthy().length >= 4, 20);
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
    assert.equal(sched.pending(), 0, 'no poll timer left after stop()');
    sched.advance(60);
    await settle();
    assert.equal(reports.length, after, 'no report after stop()');
    assert.deepEqual(errors, []);
    // The stuck pod's sockets were closed by the abort.
    await advanceUntil(sched, 'stuck pod sockets closed', () => stuckOpen === 0, 20);
    await http.close();
    await healthy.close();
    await stuck.close();
  });
});
