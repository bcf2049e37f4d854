import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FleetChange } from '../fleet/tracker.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { MemoryLog } from '../../test/support/e2e.js';
import { createLogger } from './logger.js';
import { StateChangeLog } from './state-log.js';

function churn(n: number, to: 'ready' | 'absent' = 'ready'): FleetChange[] {
  return Array.from({ length: n }, (_, i) => ({ kind: 'plugin' as const, pod: '10.0.0.1:5002', plugin: `churn/p${i}`, from: 'absent' as const, to, why: 'running' }));
}

describe('StateChangeLog', () => {
  it('writes at most state-log-rate plugin lines a second, counts the rest by state, and always writes pod changes', () => {
    const sched = new ManualScheduler();
    const log = new MemoryLog();
    const states = new StateChangeLog(createLogger('info', [], log), 100, sched);
    // The reproduction: 4,011 plugin changes at once, plus a pod going unreachable.
    states.write([...churn(4_000), ...churn(11, 'absent'), { kind: 'pod', pod: '10.0.0.2:5002', from: 'live', to: 'unreachable', error: undefined }]);
    const lines = log.records();
    assert.equal(lines.filter((l) => l['msg'] === 'plugin state changed').length, 100);
    assert.equal(lines.filter((l) => l['msg'] === 'pod state changed').length, 1);
    assert.deepEqual(states.takeSuppressed(), { total: 3_911, byState: { ready: 3_900, absent: 11 } });
    assert.deepEqual(states.takeSuppressed(), { total: 0, byState: {} }, 'reset after each summary');
    sched.advance(500);
    states.write(churn(100));
    assert.equal(log.records().filter((l) => l['msg'] === 'plugin state changed').length, 150, 'half a second refills half the budget');
  });

  it('rate 0 writes every line', () => {
    const log = new MemoryLog();
    const states = new StateChangeLog(createLogger('info', [], log), 0, new ManualScheduler());
    states.write(churn(500));
    assert.equal(log.records().length, 500);
    assert.equal(states.takeSuppressed().total, 0);
  });
});
