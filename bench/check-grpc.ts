/**
 * check-grpc: the gate's gRPC ext_authz face end to end on loopback. The gate
 * runs as `node dist/src/cli/main.js` against `node dist/src/sim/main.js --pods
 * 3 --scenario basic`; h2load sends the same Envoy CheckRequest for a ready
 * plugin as gRPC unary POSTs, at constant rates and then closed loop. Floors:
 * a grpc-js server and a bare node:http2 server answering a canned allow.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { check, checkClient, CHECK_PATH, dispatchCheckRequest, encodeCheckRequest, grpcFrame, metadataOf } from './lib/envoy.js';
import { DIST, startGateCli, startSimCli, waitReady } from './lib/gate.js';
import { h2loadVersion } from './lib/h2load.js';
import { pinned, pinning, sleep, spawnChild, type Child } from './lib/proc.js';
import { sig } from './lib/report.js';
import { loadStep, validateExact, type Step, type StepResult } from './lib/wire.js';

const PLUGIN = 'langgenius/openai';
/** Envoy with 8 worker threads keeps one HTTP/2 connection per worker to the ext_authz cluster. */
const CONNS = 8;
const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers', 'user-agent: envoy/1.33 h2load'];

async function startBaseline(kind: 'grpc-js' | 'http2'): Promise<{ child: Child; port: number }> {
  const [cmd, args] = pinned(pinning.server, process.execPath, [join(DIST, 'bench/baseline-main.js'), kind]);
  const child = spawnChild(cmd, args);
  const m = await child.waitLine(/^port=(\d+)$/, 10_000);
  return { child, port: Number(m[1]) };
}

export async function benchCheckGrpc(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const durationS = ctx.quick ? 2 : 5;
  const warmupS = 1;
  const rates = ctx.quick ? [2000] : [2000, 5000, 10000];
  report.section('check-grpc', 'gRPC ext_authz Check end to end (loopback)', [
    `gate: node dist/src/cli/main.js (decision-log none) ${pinning.available ? 'on core 1' : 'unpinned'}; fleet: dist/src/sim/main.js --pods 3 --scenario basic; load: h2load ${pinning.available ? 'on core 0' : ''}`,
    `request: one Envoy CheckRequest (official protos, ~15 headers, addresses, time) for ${PLUGIN}, ready on the fleet: a plugin_ready allow;`,
    `open loop: --rps at ${rates.join(', ')} req/s over ${CONNS} connections (an 8-worker Envoy), ${warmupS} s warm-up + ${durationS} s measured;`,
    'closed loop: 8 connections × 16 streams as fast as answers come; latency percentiles from the per-request log (--log-file);',
    'server CPU from /proc/<pid>/stat over the run (warm-up included), RSS sampled every 200 ms.',
  ]);
  const version = h2loadVersion();
  if (version === undefined) {
    report.problem('check-grpc', 'h2load not installed (apt-get install nghttp2-client): skipped');
    return;
  }

  const steps = (who: string): Step[] => [
    ...rates.map((r) => ({ name: `${who} open ${r / 1000}k/s`, rate: r, clients: CONNS, streams: 100 })),
    { name: `${who} closed loop`, rate: undefined, clients: CONNS, streams: 16 },
  ];
  const results = new Map<string, StepResult>();
  const fleet = await startSimCli(['--pods', '3', '--scenario', 'basic']);
  let gate: Awaited<ReturnType<typeof startGateCli>> | undefined;
  const client = { current: undefined as ReturnType<typeof checkClient> | undefined };
  try {
    gate = await startGateCli(fleet.targets);
    await waitReady(gate.adminPort, 15_000);
    // The basic scenario's openai is ready ~3 s after the fleet starts: wait for a real allow.
    client.current = checkClient(gate.grpcPort);
    const req = dispatchCheckRequest({ pluginId: PLUGIN });
    const deadline = Date.now() + 20_000;
    let sample: ReturnType<typeof metadataOf> | undefined;
    for (;;) {
      const { err, res } = await check(client.current, req);
      if (err === null) {
        sample = metadataOf(res);
        if (sample.reason === 'plugin_ready' && res.ok_response !== undefined && res.ok_response !== null) break;
      }
      if (Date.now() > deadline) throw new Error(`no plugin_ready answer for ${PLUGIN} within 20 s (last: ${err?.message ?? JSON.stringify(sample)})`);
      await sleep(200);
    }
    const targets = fleet.targets.split(',');
    report.note(`sample Check (grpc-js client, decoded): status ${sample.code}, reason ${sample.reason}, upstream_host ${sample.upstream} (${targets.includes(sample.upstream ?? '') ? 'a fleet pod' : 'NOT a fleet pod'})`);
    if (!targets.includes(sample.upstream ?? '')) report.problem('check-grpc', `sample allow routed to ${sample.upstream}, not a fleet pod`);
    client.current.close();
    client.current = undefined;

    const body = encodeCheckRequest(req);
    const dataFile = join(ctx.tmp, 'check-request.grpc');
    writeFileSync(dataFile, grpcFrame(body));
    report.note(`payload: ${body.length}-byte CheckRequest in a 5-byte gRPC frame`);
    const target = {
      bench: 'check-grpc',
      pid: gate.child.pid,
      url: `http://127.0.0.1:${gate.grpcPort}${CHECK_PATH}`,
      headers: GRPC_HEADERS,
      dataFile,
      admin: { port: gate.adminPort, key: 'grpc/plugin_ready' },
    };
    await validateExact(ctx, target, 2000);

    for (const s of steps('gate')) results.set(s.name, await loadStep(ctx, target, s, durationS, warmupS));
  } finally {
    client.current?.close();
    await gate?.child.stop();
    await fleet.child.stop();
  }

  // Floors: what the same load costs when nothing is decided.
  for (const kind of ctx.quick ? [] : (['grpc-js', 'http2'] as const)) {
    const base = await startBaseline(kind);
    try {
      const dataFile = join(ctx.tmp, 'check-request.grpc');
      const target = { bench: 'check-grpc', pid: base.child.pid, url: `http://127.0.0.1:${base.port}${CHECK_PATH}`, headers: GRPC_HEADERS, dataFile };
      const label = kind === 'grpc-js' ? 'floor grpc-js' : 'floor node:http2';
      const mine = kind === 'grpc-js' ? steps(label) : steps(label).slice(-1);
      for (const s of mine) results.set(s.name, await loadStep(ctx, target, s, durationS, warmupS));
    } finally {
      await base.child.stop();
    }
  }
  comparison(ctx, results, steps);
}

/** Gate next to the floors, step by step: what deciding adds to a Check on the wire. */
function comparison(ctx: BenchContext, results: Map<string, StepResult>, steps: (who: string) => Step[]): void {
  const { report } = ctx;
  const rows = steps('gate').map((s) => s.name.slice('gate '.length));
  const who = ['gate', 'floor grpc-js', 'floor node:http2'];
  report.line('   comparison (p50 / p99 ms, CPU µs per request):');
  report.line(`     ${'step'.padEnd(14)}${who.map((w) => w.padEnd(40)).join('')}`);
  for (const row of rows) {
    const cells = who.map((w) => {
      const r = results.get(`${w} ${row}`);
      if (r === undefined) return '—'.padEnd(40);
      const extra = row === 'closed loop' ? `, ${sig(r.h2.reqPerSec, 3)} req/s` : '';
      return `${sig(r.h2.latencyUs.p50 / 1000)} / ${sig(r.h2.latencyUs.p99 / 1000)}, ${sig(r.cpuUsPerReq)} µs${extra}`.padEnd(40);
    });
    report.line(`     ${row.padEnd(14)}${cells.join('')}`);
  }
}
