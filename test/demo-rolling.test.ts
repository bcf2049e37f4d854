/**
 * `npm run demo -- --scenario rolling` runs to its summary: a rolling update
 * of three pods (compressed hard here), with every allowed request really sent
 * to the pod the gate chose and every request also sent where blind round
 * robin would have sent it. Counts are not asserted beyond what is behaviour:
 * through the gate no request met a pod where its plugin was not running.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { packageRoot } from '../src/core/package-root.js';
import { runProcess } from './support/e2e.js';

describe('demo --scenario rolling', () => {
  it('replaces every pod, then prints both fronts side by side; the gate misroutes nothing', async () => {
    const main = join(packageRoot(), 'dist', 'src', 'demo', 'main.js');
    const res = await runProcess(process.execPath, [main, '--scenario', 'rolling', '--no-tty', '--time-scale', '0.003', '--rate', '50'], {
      timeoutMs: 120_000,
    });
    assert.equal(res.code, 0, `exit ${res.code}${res.timedOut ? ' (timed out)' : ''}\n${res.stdout.slice(-3000)}\n${res.stderr}`);
    const out = res.stdout;
    for (const step of ['pod-4', 'pod-5', 'pod-6']) assert.match(out, new RegExp(`${step} \\(127\\.0\\.0\\.1:\\d+\\) joins, cold`));
    for (const old of ['pod-1', 'pod-2', 'pod-3']) assert.match(out, new RegExp(`${old} \\(127\\.0\\.0\\.1:\\d+\\) exits`));
    assert.match(out, /rolling update done: every old pod replaced/);
    assert.match(out, /^summary after \d+ s, \d+ requests through a rolling update of 3 pods$/m);
    assert.match(out, /^ {2}with plugin-gate: {3}\d+ routed: \d+ served, 0 got "plugin runtime not found", \d+ sent to an exited pod;$/m);
    assert.match(out, /dead-pod window \(pod exit → last request routed to it\): \d+ ms at most/);
    assert.match(out, /^ {2}blind round robin: {2}\d+ sent: \d+ served, \d+ \([\d.]+%\) got 404/m);
  });

  it('rejects an unknown scenario with a usage line', async () => {
    const main = join(packageRoot(), 'dist', 'src', 'demo', 'main.js');
    const res = await runProcess(process.execPath, [main, '--scenario', 'surprise'], { timeoutMs: 20_000 });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--scenario is cold or rolling/);
  });
});
