#!/usr/bin/env node
/**
 * The gate, in a process of its own started with --expose-gc, for the memory
 * benchmark. It answers commands on stdin, one per line, with one line on
 * stdout each:
 *
 *   mem                → `mem {…}`: process.memoryUsage() after a full GC, plus snapshot size
 *   hostile N SEED     → runs N hostile Checks in-process (CheckRequest bytes →
 *                        GateRequest → GateService.check → response bytes), then `hostile {ms}`
 *   quit               → closes the gate and exits
 *
 *   node --expose-gc dist/bench/memory-gate.js <targets>
 *
 * First line after start: `mem-baseline {…}` (before the gate starts), then
 * `ports {grpc, admin}` once it listens.
 */
import { createInterface } from 'node:readline';
import { configFor } from '../src/config/config.js';
import { startGate, type RunningGate } from '../src/app/app.js';
import { createLogger } from '../src/observe/logger.js';
import { decodeCheckRequest } from '../src/front/grpc/request.js';
import { createResponseRenderer } from '../src/front/grpc/response.js';
import { encodeCheckRequest } from './lib/envoy.js';
import { hostileRequest, prng } from './lib/hostile.js';

const gc = (globalThis as { gc?: () => void }).gc;

function mem(gate: RunningGate | undefined): string {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  const snap = gate?.snapshot();
  let pluginEntries = 0;
  if (snap) for (const p of snap.pods.values()) pluginEntries += p.plugins.size;
  return JSON.stringify({
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    pods: snap?.pods.size ?? 0,
    live: snap?.livePods.length ?? 0,
    plugins: snap?.plugins.size ?? 0,
    pluginEntries,
    version: snap?.version ?? 0,
  });
}

async function main(): Promise<void> {
  const targets = process.argv[2];
  if (targets === undefined) throw new Error('usage: memory-gate.js <targets>');
  if (gc === undefined) throw new Error('run with node --expose-gc');
  process.stdout.write(`mem-baseline ${mem(undefined)}\n`);
  const config = configFor({
    targets,
    'grpc-listen': '127.0.0.1:0',
    'http-listen': 'off',
    'admin-listen': '127.0.0.1:0',
    'log-level': 'silent',
    'decision-log': 'none',
    drain: '0ms',
  });
  const gate = await startGate(config, { logger: createLogger('silent') });
  process.stdout.write(`ports ${JSON.stringify({ grpc: gate.grpcPort, admin: gate.adminPort })}\n`);
  const render = createResponseRenderer({ routeHeader: undefined });
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1000).unref();

  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, a, b] = line.trim().split(/\s+/);
    if (cmd === 'mem') process.stdout.write(`mem ${mem(gate)}\n`);
    else if (cmd === 'hostile') {
      const n = Number(a);
      const r = prng(Number(b));
      let sink = 0;
      let busy = 0;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        // Encoded with Envoy's protos outside the timed part: the gate's share starts at the bytes.
        const bytes = encodeCheckRequest(hostileRequest(r, { maxValue: 200_000 }));
        const s = performance.now();
        const { decision, decisionId } = gate.service.check(decodeCheckRequest(bytes), 'grpc');
        sink += render(decision, decisionId).length;
        busy += performance.now() - s;
        // Let polls and their snapshots interleave, as they would in service.
        if (i % 500 === 499) await new Promise((res) => setImmediate(res));
      }
      process.stdout.write(`hostile ${JSON.stringify({ ms: performance.now() - t0, checkMs: busy, sink })}\n`);
    } else if (cmd === 'quit') break;
  }
  await gate.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
