/**
 * Smoke test of the benchmark runner: the cheap benchmarks run to the end in
 * quick mode and print every figure line they claim. Figures themselves are
 * never asserted (they depend on the machine); behaviour checks the
 * benchmarks make along the way (a decision of the expected kind, an
 * exposition that parses) are.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const RUN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'run.js');

function run(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [RUN, ...args], { timeout: timeoutMs, killSignal: 'SIGTERM', maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
      resolve({ code, stdout, stderr });
    });
  });
}

const NUM = '[0-9][0-9.]*';

describe('bench runner', () => {
  it('lists the benchmarks and rejects unknown names', async () => {
    const list = await run(['--list'], 10_000);
    assert.equal(list.code, 0);
    for (const name of ['decide', 'check-grpc', 'check-http', 'freshness', 'memory', 'parse', 'scale', 'throughput', 'oversized-body', 'pod-loss']) {
      assert.match(list.stdout, new RegExp(`^${name} `, 'm'));
    }
    const bad = await run(['no-such-bench'], 10_000);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown benchmark: no-such-bench/);
  });

  it('runs decide, parse and freshness in quick mode and prints their figures', async () => {
    const { code, stdout, stderr } = await run(['--quick', 'decide', 'parse', 'freshness'], 60_000);
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
    // The header names the machine and the method.
    assert.match(stdout, /^machine: \d+ cores/m);
    assert.match(stdout, /^node v\d+/m);
    const figures = [
      `\\[decide\\] plugin_ready 10x200: ${NUM} ns/op`,
      `\\[decide\\] plugin_ready \\(v2 unique id\\) 10x200: ${NUM} ns/op`,
      `\\[decide\\] plugin_starting 10x200: ${NUM} ns/op`,
      `\\[decide\\] not_plugin_scoped 10x200: ${NUM} ns/op`,
      `\\[decide\\] invalid_plugin_id 10x200: ${NUM} ns/op`,
      `\\[decide\\] GateService.check plugin_ready 10x200: ${NUM} ns/op`,
      `\\[decide\\] tracker.ingest 10x200: ${NUM} ms/report`,
      `\\[parse\\] 2000 plugins: ${NUM} ms/parse\\s+\\(${NUM} MB/s`,
      `\\[freshness\\] median \\(poll 200ms\\): ${NUM} ms`,
      `\\[freshness\\] p95 \\(poll 200ms\\): ${NUM} ms`,
      `\\[freshness\\] max \\(poll 200ms\\): ${NUM} ms`,
      `\\[freshness\\] bound check: (meets|EXCEEDS)`,
    ];
    for (const f of figures) assert.match(stdout, new RegExp(`^  ${f}`, 'm'), `missing figure line /${f}/`);
    // Every scenario got the decision it is named after, and the exposition parsed in full.
    assert.doesNotMatch(stdout, /^\s+! .*(expected|did not parse|benchmark failed)/m);
    assert.match(stdout, /^== summary$/m);
    assert.match(stdout, /all benchmarks ran/);
  });
  it('runs pod-loss in quick mode: every figure line for both scenarios, and the gate misroutes nothing', async () => {
    const { code, stdout, stderr } = await run(['--quick', 'pod-loss'], 120_000);
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
    for (const scenario of ['rolling', 'crash']) {
      for (const who of ['gate keep-alive', 'gate interval only', 'blind round robin']) {
        for (const what of ['misrouted', 'to a dead pod']) {
          assert.match(stdout, new RegExp(`^  \\[pod-loss\\] ${scenario}, ${who}: ${what}: \\d+ requests`, 'm'), `${scenario} ${who} ${what}`);
        }
        assert.match(stdout, new RegExp(`^  \\[pod-loss\\] ${scenario}, ${who}: dead-pod window: ${NUM} ms`, 'm'), `${scenario} ${who} window`);
      }
      // Behaviour, not speed: routed by the gate, no request met a pod where its plugin was not running.
      assert.match(stdout, new RegExp(`^  \\[pod-loss\\] ${scenario}, gate keep-alive: misrouted: 0 requests`, 'm'));
      assert.match(stdout, new RegExp(`^  \\[pod-loss\\] ${scenario}, gate interval only: misrouted: 0 requests`, 'm'));
    }
    assert.match(stdout, /all benchmarks ran/);
  });

  it('runs kubernetes in quick mode: no Check to a pod once the gate saw it terminating', async () => {
    const { code, stdout, stderr } = await run(['--quick', 'kubernetes'], 120_000);
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
    // Counts, not timings: a Check sent after the gate's view changed is causally after it, whatever the load.
    assert.match(stdout, /^  \[kubernetes\] Checks routed to a pod sent after the gate saw it terminating: 0 /m);
    // Printed, not asserted: it also depends on the watch delivering within the 300 ms grace.
    assert.match(stdout, new RegExp(`^  \\[kubernetes\\] Checks routed to a pod answered after its process exited: ${NUM} `, 'm'));
    assert.match(stdout, new RegExp(`^  \\[kubernetes\\] API write of terminating → the gate's view: ${NUM}, ${NUM} ms per pod`, 'm'));
  });
});
