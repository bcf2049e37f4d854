#!/usr/bin/env node
/**
 * Runs the benchmarks and prints their figures:
 *
 *   node dist/bench/run.js                 every benchmark, in order
 *   node dist/bench/run.js decide parse    only these
 *   node dist/bench/run.js --quick decide  short runs (smoke test; rough figures)
 *   node dist/bench/run.js --list
 *
 * Exit code 0 when every benchmark ran (figures are reported, never judged
 * here), 1 when one failed, 2 on bad usage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchContext } from './context.js';
import { benchDecide } from './decide.js';
import { benchCheckGrpc } from './check-grpc.js';
import { benchCheckHttp } from './check-http.js';
import { benchFreshness } from './freshness.js';
import { benchMemory } from './memory.js';
import { benchParse } from './parse.js';
import { benchPodLoss } from './pod-loss.js';
import { benchScale } from './scale.js';
import { benchOversizedBody, benchThroughput } from './throughput.js';
import { benchRolling } from './rolling.js';
import { benchHold } from './hold.js';
import { benchEnvoy } from './envoy-proxy.js';
import { benchKubernetes } from './kubernetes.js';
import { h2loadVersion } from './lib/h2load.js';
import { killAllNow, pinning } from './lib/proc.js';
import { Report } from './lib/report.js';

const BENCHES: Record<string, { what: string; run: (ctx: BenchContext) => Promise<void> }> = {
  decide: { what: 'the pure decision and the in-process check path (ns/op)', run: benchDecide },
  'check-grpc': { what: 'the gRPC ext_authz face end to end under h2load (req/s, latency, CPU, RSS)', run: benchCheckGrpc },
  'check-http': { what: 'the HTTP forward-auth face end to end under h2load --h1', run: benchCheckHttp },
  freshness: { what: 'plugin state change on a sim pod → the gate snapshot (ms)', run: benchFreshness },
  memory: { what: 'RSS and heap with a large fleet and after many hostile Checks', run: benchMemory },
  'pod-loss': { what: 'a rolling update and a crash: requests misrouted, sent to a dead pod, dead-pod window (with and without keep-alive detection)', run: benchPodLoss },
  parse: { what: 'parseExposition on a large daemon exposition (MB/s, ms/parse)', run: benchParse },
  rolling: { what: 'rolling update of the daemon pods, Ready on /health/check vs from plugin-gate probe (served / misrouted / held)', run: benchRolling },
  throughput: { what: 'Check ceiling against a no-op Check server at 3x30 and 1000x300 (ratio)', run: benchThroughput },
  'oversized-body': { what: 'Check p99 while a pod serves a 7 MB /metrics/ body, against the baseline', run: benchOversizedBody },
  scale: { what: 'polling 50 and 500 pods: gate CPU, RSS, event-loop lag (cold start and settled)', run: benchScale },
  envoy: { what: 'through a real Envoy to a sim pod: no ext_authz vs the gate over gRPC vs http_service, open loop 1k and 5k req/s; the latency the gate adds', run: benchEnvoy },
  kubernetes: { what: 'rolling update through EndpointSlice discovery: Checks to terminating and exited pods (goal 0)', run: benchKubernetes },
  hold: { what: 'hold-starting: a cold start replayed with holding off and on; not-held Check latency while thousands are held', run: benchHold },
};

const USAGE = `usage: node dist/bench/run.js [--quick] [--list] [${Object.keys(BENCHES).join('|')} ...]`;

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ options: { quick: { type: 'boolean' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.list === true) {
    for (const [name, b] of Object.entries(BENCHES)) process.stdout.write(`${name.padEnd(12)} ${b.what}\n`);
    return 0;
  }
  const unknown = positionals.filter((p) => !(p in BENCHES));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark: ${unknown.join(', ')}\n${USAGE}\n`);
    return 2;
  }
  const names = positionals.length > 0 ? positionals : Object.keys(BENCHES);
  const quick = values.quick === true;
  const report = new Report();
  const tmp = mkdtempSync(join(tmpdir(), 'plugin-gate-bench-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  report.line('plugin-gate benchmarks');
  report.line(`machine: ${availableParallelism()} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${process.platform} ${process.arch}`);
  report.line(`node ${process.version}; ${h2loadVersion() ?? 'h2load not installed (apt-get install nghttp2-client)'}`);
  report.line(
    pinning.available
      ? 'placement: wire benchmarks pin the gate to core 1 (taskset -c 1) and the load generator + fleet to core 0: one core for the gate'
      : 'placement: taskset unavailable or a single core: processes run unpinned',
  );
  report.line(`mode: ${quick ? 'quick (short runs, rough figures)' : 'full'}; benchmarks: ${names.join(', ')}`);
  report.line('figures are from this machine only; they are reported, not asserted');

  const t0 = performance.now();
  let failed = 0;
  for (const name of names) {
    const started = performance.now();
    try {
      await BENCHES[name]!.run({ report, quick, tmp });
      report.line(`   (${name} took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
    } catch (err) {
      failed++;
      report.problem(name, `benchmark failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    } finally {
      killAllNow();
    }
  }
  report.summary();
  report.line();
  report.line(`total ${((performance.now() - t0) / 1000).toFixed(1)} s; ${failed === 0 ? 'all benchmarks ran' : `${failed} benchmark(s) failed`}`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    killAllNow();
    // Lingering handles (grpc channels, keep-alive sockets) must not keep the runner alive.
    process.exit(code);
  },
  (err: unknown) => {
    killAllNow();
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
