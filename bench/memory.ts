/**
 * memory: what a gate tracking a large fleet holds, and whether many random
 * and hostile Checks make it grow. The gate runs in its own process
 * (dist/bench/memory-gate.js, --expose-gc, so every reading follows a full GC)
 * against a bench fleet of many pods × many plugins in another process.
 */
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { check, checkClient, encodeCheckRequest } from './lib/envoy.js';
import { adminText, DIST, startBenchFleet, waitReady } from './lib/gate.js';
import { hostileRequest, HOSTILE_KINDS, prng } from './lib/hostile.js';
import { cpuSeconds, pinned, pinning, rss, sleep, spawnChild, type Child } from './lib/proc.js';
import { mb, median, sig } from './lib/report.js';

interface Mem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  pods: number;
  live: number;
  plugins: number;
  pluginEntries: number;
  version: number;
}

async function ask(child: Child, line: string, reply: string, timeoutMs: number): Promise<string> {
  const wait = child.nextLine(new RegExp(`^${reply} (.*)$`), timeoutMs);
  child.cp.stdin!.write(`${line}\n`);
  return (await wait)[1]!;
}

async function memOf(child: Child): Promise<Mem> {
  return JSON.parse(await ask(child, 'mem', 'mem', 30_000)) as Mem;
}

function line(m: Mem): string {
  return `RSS ${mb(m.rss)} MiB, heap used ${mb(m.heapUsed)} MiB (total ${mb(m.heapTotal)}), external ${mb(m.external)} MiB`;
}

export async function benchMemory(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const pods = ctx.quick ? 5 : 50;
  const plugins = ctx.quick ? 50 : 500;
  const inProcBatches = ctx.quick ? 2 : 5;
  const inProcN = ctx.quick ? 2_000 : 12_000;
  const wireBatches = ctx.quick ? 2 : 3;
  const wireN = ctx.quick ? 200 : 1_500;
  const settleMs = ctx.quick ? 1_500 : 7_000;
  report.section('memory', `a gate tracking ${pods} pods × ${plugins} plugins, then hostile Checks`, [
    `fleet: dist/bench/fleet-main.js --pods ${pods} --plugins ${plugins} (all launching at once, 0.5–3 s; every 25th never starts) in its own process;`,
    `gate: dist/bench/memory-gate.js (startGate, default polling, decision log off) under node --expose-gc ${pinning.available ? 'on core 1' : ''}; every reading after a full GC;`,
    `hostile Checks: ${HOSTILE_KINDS.join(', ')} (seeded, uniformly mixed);`,
    `${inProcBatches} batches × ${inProcN} in-process (message → check → response; header values up to 200k characters),`,
    `then ${wireBatches} × ${wireN} over gRPC (grpc-js client, 32 in flight; values up to 100k characters, so every message stays under the 1 MiB cap).`,
    'The fleet is younger than startup-grace, so random plugin ids are denied plugin_starting: each one is a new entry of the snapshot\'s deny memo (at most 4096 per snapshot, dropped with it).',
  ]);

  const fleet = await startBenchFleet(['--pods', String(pods), '--plugins', String(plugins), '--launch-ms', '500-3000', '--concurrency', String(plugins), '--fail-every', '25']);
  const [cmd, args] = pinned(pinning.server, process.execPath, ['--expose-gc', join(DIST, 'bench/memory-gate.js'), fleet.targets]);
  const gate = spawnChild(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let client: ReturnType<typeof checkClient> | undefined;
  try {
    const base = JSON.parse((await gate.waitLine(/^mem-baseline (.*)$/, 15_000))[1]!) as Mem;
    const ports = JSON.parse((await gate.waitLine(/^ports (.*)$/, 15_000))[1]!) as { grpc: number; admin: number };
    await waitReady(ports.admin, 60_000);
    // Let every launch finish and a few poll rounds pass; measure the CPU polling costs meanwhile.
    await sleep(Math.max(0, settleMs - 4_000));
    const cpu0 = cpuSeconds(gate.pid);
    const t0 = performance.now();
    await sleep(Math.min(settleMs, 4_000));
    const pollCpu = (cpuSeconds(gate.pid) - cpu0) / ((performance.now() - t0) / 1000);
    const tracked = await memOf(gate);

    report.figure('memory', 'process before the gate starts', mb(base.rss), 'MiB RSS', `heap used ${mb(base.heapUsed)} MiB (modules loaded, nothing started)`);
    report.figure('memory', `tracking ${pods}x${plugins}`, mb(tracked.rss), 'MiB RSS', `${line(tracked)}; ${tracked.live}/${tracked.pods} pods live, ${tracked.plugins} plugins, ${tracked.pluginEntries} pod×plugin entries, snapshot v${tracked.version}`);
    report.figure('memory', `tracking ${pods}x${plugins} heap growth`, mb(tracked.heapUsed - base.heapUsed), 'MiB', `heap used over the pre-start baseline: the snapshot, ${pods} poll loops, metrics registry`);
    report.figure('memory', `background CPU polling ${pods}x${plugins}`, sig(pollCpu * 100), '% of a core', `${pods} pods read every 2 s ± 10 %, each report rebuilding the snapshot; no Checks`);
    if (tracked.live !== pods) report.problem('memory', `only ${tracked.live} of ${pods} pods live after settling`);

    // What a Prometheus scrape of the admin port costs with this many plugins.
    const scrapes: number[] = [];
    let scrapeBytes = 0;
    for (let i = 0; i < (ctx.quick ? 1 : 5); i++) {
      const s = performance.now();
      scrapeBytes = Buffer.byteLength(await adminText(ports.admin, '/metrics'));
      scrapes.push(performance.now() - s);
    }
    report.figure('memory', `admin /metrics scrape ${pods}x${plugins}`, sig(median(scrapes)), 'ms', `${sig(scrapeBytes / 1024)} KiB, median of ${scrapes.length}, over loopback`);

    // In-process hostile Checks.
    const heaps: number[] = [];
    let checkMs = 0;
    let checks = 0;
    for (let b = 1; b <= inProcBatches; b++) {
      const r = JSON.parse(await ask(gate, `hostile ${inProcN} ${b}`, 'hostile', 120_000)) as { ms: number; checkMs: number };
      checkMs += r.checkMs;
      checks += inProcN;
      heaps.push((await memOf(gate)).heapUsed);
    }
    const afterInProc = await memOf(gate);
    report.figure('memory', 'heap after each in-process batch', heaps.map((h) => mb(h)).join(', '), 'MiB', `${inProcBatches} × ${inProcN} hostile Checks`);
    report.figure('memory', 'hostile Check cost in-process', sig((checkMs / checks) * 1000), 'µs/check', 'mean; decode not included; map + decide + render');
    const growthLate = heaps.length >= 3 ? heaps[heaps.length - 1]! - heaps[1]! : heaps[heaps.length - 1]! - heaps[0]!;
    report.figure(
      'memory',
      'in-process heap growth after batch 2',
      sig(growthLate / 2 ** 20),
      'MiB',
      `from batch 2 to batch ${heaps.length} (the deny memo is per snapshot, at most 4096 entries, dropped with its snapshot); RSS now ${mb(afterInProc.rss)} MiB`,
    );

    // Over the wire.
    client = checkClient(ports.grpc, { 'grpc.max_send_message_length': 8 << 20, 'grpc.max_receive_message_length': 8 << 20 });
    const wireHeaps: number[] = [];
    const codes = new Map<string, number>();
    const r = prng(4242);
    let bytes = 0;
    for (let b = 1; b <= wireBatches; b++) {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < wireN) {
          next++;
          const msg = hostileRequest(r, { maxValue: 100_000 });
          bytes += encodeCheckRequest(msg).length;
          const { err, res } = await check(client!, msg, 10_000);
          const key = err !== null ? `error ${err.code}` : `status ${res?.status?.code}`;
          codes.set(key, (codes.get(key) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
      wireHeaps.push((await memOf(gate)).heapUsed);
    }
    const afterWire = await memOf(gate);
    const hwm = rss(gate.pid).hwm;
    report.figure('memory', 'heap after each gRPC batch', wireHeaps.map((h) => mb(h)).join(', '), 'MiB', `${wireBatches} × ${wireN} hostile Checks, ${mb(bytes)} MiB of requests; answers: ${[...codes].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
    report.figure('memory', 'after all hostile Checks', mb(afterWire.rss), 'MiB RSS', `${line(afterWire)}; RSS high-water mark ${mb(hwm)} MiB`);
    const totalGrowth = afterWire.heapUsed - tracked.heapUsed;
    const wireGrowth = wireHeaps[wireHeaps.length - 1]! - wireHeaps[0]!;
    report.figure('memory', 'heap growth over all hostile Checks', sig(totalGrowth / 2 ** 20), 'MiB', `tracked → after ${checks + wireBatches * wireN} Checks; over the gRPC batches alone ${sig(wireGrowth / 2 ** 20)} MiB`);
    // Bounded: once the caches are full, more batches add (almost) nothing.
    const bounded = Math.abs(growthLate) < 2 * 2 ** 20 && Math.abs(wireGrowth) < 2 * 2 ** 20;
    report.figure('memory', 'bounded', bounded ? 'yes' : 'NO', '', 'rule: heap after the later batches within 2 MiB of the earlier ones, in-process and over gRPC');
    if (!bounded) report.problem('memory', `heap kept growing: +${sig(growthLate / 2 ** 20)} MiB in-process after batch 2, +${sig(wireGrowth / 2 ** 20)} MiB over gRPC`);
    gate.cp.stdin!.write('quit\n');
    await Promise.race([gate.exited, sleep(5000)]);
  } finally {
    client?.close();
    await gate.stop();
    await fleet.child.stop();
  }
}
