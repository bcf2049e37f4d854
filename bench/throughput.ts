/**
 * throughput: the gate's Check ceiling against the floor a Check server cannot
 * beat on this stack, a grpc-js server loading Envoy's official protos and
 * answering a bare OK, at a small fleet (3 pods × 30 plugins) and a large one
 * (1,000 × 300). Runs alternate gate / floor so that the machine's load moves
 * both alike; the ratio is the median gate rate over the median floor rate.
 *
 * oversized-body: Check latency at a steady rate while one pod of the fleet
 * serves a 7 MB /metrics/ body that the gate reads (max-status-bytes raised
 * to 16 MiB, so it is parsed on every poll), against the same run without it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { check, checkClient, CHECK_PATH, dispatchCheckRequest, encodeCheckRequest, grpcFrame, metadataOf } from './lib/envoy.js';
import { DIST, startGateCli, waitReady, type GateChild } from './lib/gate.js';
import { h2loadVersion } from './lib/h2load.js';
import { pinned, pinning, sleep, spawnChild, type Child } from './lib/proc.js';
import { median, sig } from './lib/report.js';
import { loadStep, type StepResult } from './lib/wire.js';

const PLUGIN = 'bench-0/plugin-0';
const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers', 'user-agent: envoy/1.33 h2load'];

async function startFleet(pods: number, plugins: number, extra: readonly string[] = []): Promise<{ child: Child; targets: string }> {
  const [cmd, args] = pinned(pinning.load, process.execPath, [join(DIST, 'bench/scale-fleet-main.js'), '--pods', String(pods), '--plugins', String(plugins), '--cold-ms', '300', ...extra]);
  const child = spawnChild(cmd, args);
  const targets = (await child.waitLine(/^targets=(.+)$/, 60_000))[1]!;
  await child.waitLine(/^settled$/, 60_000).catch(() => undefined);
  return { child, targets };
}

/** Waits until the gate routes PLUGIN (plugin_ready), so every measured Check is the allow path. */
async function untilReady(gate: GateChild): Promise<void> {
  await waitReady(gate.adminPort, 60_000);
  const client = checkClient(gate.grpcPort);
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { err, res } = await check(client, dispatchCheckRequest({ pluginId: PLUGIN }));
      if (err === null && metadataOf(res).reason === 'plugin_ready') return;
      if (Date.now() > deadline) throw new Error(`no plugin_ready for ${PLUGIN} within 60 s`);
      await sleep(250);
    }
  } finally {
    client.close();
  }
}

async function startFloor(): Promise<{ child: Child; port: number }> {
  const [cmd, args] = pinned(pinning.server, process.execPath, [join(DIST, 'bench/baseline-main.js'), 'noop']);
  const child = spawnChild(cmd, args);
  return { child, port: Number((await child.waitLine(/^port=(\d+)$/, 10_000))[1]) };
}

function payload(ctx: BenchContext): string {
  const dataFile = join(ctx.tmp, 'throughput-check.grpc');
  writeFileSync(dataFile, grpcFrame(encodeCheckRequest(dispatchCheckRequest({ pluginId: PLUGIN }))));
  return dataFile;
}

export async function benchThroughput(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const sizes: [number, number][] = ctx.quick ? [[3, 30]] : [[3, 30], [1000, 300]];
  const rounds = ctx.quick ? 1 : 3;
  const durationS = ctx.quick ? 1 : 4;
  report.section('throughput', 'Check ceiling: the gate against a no-op Check server (official protos, bare OK)', [
    `fleets: dist/bench/scale-fleet-main.js, ${sizes.map(([p, n]) => `${p} pods × ${n} plugins`).join(' and ')}, settled; gate: the CLI with default options${pinning.available ? ', on core 1' : ''};`,
    `floor: dist/bench/baseline-main.js noop (grpc-js, Envoy's official protos, answers { status: { code: 0 } })${pinning.available ? ', on core 1' : ''};`,
    `load: h2load closed loop, 8 connections × 16 streams, one realistic CheckRequest (~15 headers) for ${PLUGIN} (a plugin_ready allow);`,
    `${rounds} × (gate ${durationS} s, floor ${durationS} s), alternating, 1 s warm-up each; ratio = median gate req/s ÷ median floor req/s. Goal ≥ 0.9.`,
  ]);
  if (h2loadVersion() === undefined) {
    report.problem('throughput', 'h2load not installed (apt-get install nghttp2-client): skipped');
    return;
  }
  const dataFile = payload(ctx);
  const step = { name: '', rate: undefined, clients: 8, streams: 16 };
  for (const [pods, plugins] of sizes) {
    const tag = `${pods}x${plugins}`;
    const fleet = await startFleet(pods, plugins);
    let gate: GateChild | undefined;
    let floor: { child: Child; port: number } | undefined;
    try {
      gate = await startGateCli(fleet.targets);
      await untilReady(gate);
      floor = await startFloor();
      const gateTarget = { bench: 'throughput', pid: gate.child.pid, url: `http://127.0.0.1:${gate.grpcPort}${CHECK_PATH}`, headers: GRPC_HEADERS, dataFile, admin: { port: gate.adminPort, key: 'grpc/plugin_ready' } };
      const floorTarget = { bench: 'throughput', pid: floor.child.pid, url: `http://127.0.0.1:${floor.port}${CHECK_PATH}`, headers: GRPC_HEADERS, dataFile };
      const g: StepResult[] = [];
      const f: StepResult[] = [];
      for (let r = 1; r <= rounds; r++) {
        g.push(await loadStep(ctx, gateTarget, { ...step, name: `gate ${tag} round ${r}` }, durationS, 1));
        f.push(await loadStep(ctx, floorTarget, { ...step, name: `no-op floor ${tag} round ${r}` }, durationS, 1));
      }
      const gm = median(g.map((x) => x.h2.reqPerSec));
      const fm = median(f.map((x) => x.h2.reqPerSec));
      const pairs = g.map((x, i) => sig(x.h2.reqPerSec / f[i]!.h2.reqPerSec, 3)).join(', ');
      report.figure('throughput', `ratio ${tag}`, sig(gm / fm, 3), '× the no-op', `gate ${sig(gm, 4)} req/s, floor ${sig(fm, 4)} req/s (medians); per round ${pairs}; goal ≥ 0.9`);
    } finally {
      await floor?.child.stop();
      await gate?.child.stop();
      await fleet.child.stop();
    }
  }
}

export async function benchOversizedBody(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const rate = 1000;
  const durationS = ctx.quick ? 2 : 8;
  const padMb = ctx.quick ? 2 : 7;
  report.section('oversized-body', `Check latency while one pod serves a ${padMb} MB /metrics/ body`, [
    `fleet: dist/bench/scale-fleet-main.js --pods 3 --plugins 30, settled; with --pad-first-pod, pod 1 adds ${padMb} MB of other series to every answer;`,
    `gate: the CLI with max-status-bytes 16 MiB (the default, 1 MiB, refuses such a body unread), so the body is read and parsed on every poll of that pod${pinning.available ? '; gate on core 1' : ''};`,
    `load: h2load open loop at ${rate} req/s over 8 connections, ${durationS} s after 1 s warm-up, for ${PLUGIN}; baseline = the same without padding.`,
  ]);
  if (h2loadVersion() === undefined) {
    report.problem('oversized-body', 'h2load not installed (apt-get install nghttp2-client): skipped');
    return;
  }
  const dataFile = payload(ctx);
  const results: Record<string, StepResult> = {};
  for (const [label, pad] of [['baseline', 0], ['oversized', padMb * 1024 * 1024]] as const) {
    const fleet = await startFleet(3, 30, ['--pad-first-pod', String(pad)]);
    let gate: GateChild | undefined;
    try {
      gate = await startGateCli(fleet.targets, ['--max-status-bytes', String(16 * 1024 * 1024)]);
      await untilReady(gate);
      const target = { bench: 'oversized-body', pid: gate.child.pid, url: `http://127.0.0.1:${gate.grpcPort}${CHECK_PATH}`, headers: GRPC_HEADERS, dataFile, admin: { port: gate.adminPort, key: 'grpc/plugin_ready' } };
      results[label] = await loadStep(ctx, target, { name: `${label} open ${rate / 1000}k/s`, rate, clients: 8, streams: 100 }, durationS, 1);
    } finally {
      await gate?.child.stop();
      await fleet.child.stop();
    }
  }
  const b = results['baseline']!.h2.latencyUs;
  const o = results['oversized']!.h2.latencyUs;
  report.figure('oversized-body', 'Check p99 with a pod serving the body', sig(o.p99 / 1000), 'ms', `max ${sig(o.max / 1000)} ms; baseline p99 ${sig(b.p99 / 1000)} ms, max ${sig(b.max / 1000)} ms`);
}
