/**
 * The rolling-update comparison of bench/rolling.ts, asserted on its behaviour
 * (daemon time is a manual clock, requests are real HTTP to simulated daemons):
 * with new pods Ready from `plugin-gate probe`, no request is misrouted or held
 * while an old pod still runs the plugin; Ready on /health/check, both happen.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { QUICK_PLAN, runRollingUpdate } from '../bench/rolling.js';

describe('rolling update of the daemon pods', () => {
  it('Ready from plugin-gate probe: nothing misrouted or held, through a plain Service or the gate', async () => {
    const r = await runRollingUpdate('probe', QUICK_PLAN);
    assert.equal(r.cutOff, false);
    for (const front of ['service', 'gate'] as const) {
      const t = r.fronts[front];
      assert.equal(t.misrouted, 0, front);
      assert.equal(t.held, 0, front);
      assert.ok(t.served > 0, front);
    }
    assert.equal(r.gapMs, 0, 'every plugin ran on some Ready pod throughout');
  });

  it('Ready on /health/check: the Service misroutes and the gate holds while new pods launch', async () => {
    const r = await runRollingUpdate('health-check', QUICK_PLAN);
    assert.ok(r.fronts.service.misrouted > 0);
    assert.equal(r.fronts.gate.misrouted, 0, 'the gate never sends a request where its plugin does not run');
    assert.ok(r.fronts.gate.held > 0, 'once the old pods are gone, the gate can only hold');
    assert.ok(r.rolloutMs < r.settledMs, 'the rollout finished before the plugins ran');
  });
});
