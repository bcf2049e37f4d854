#!/usr/bin/env node
/**
 * The gate with its default polling, in a process of its own, for the
 * polling-scale benchmark. Commands on stdin, one line each:
 *
 *   stats   → `stats {…}`: CPU time, RSS, heap and event-loop delay since the
 *             last `stats` (or start), plus what the snapshot holds; resets the window
 *   profile MS FILE → writes a CPU profile of the next MS milliseconds to FILE
 *   quit    → closes the gate and exits
 *
 *   node dist/bench/scale-gate.js <targets> <log file> [--option value …]
 *
 * First line once listening: `ready-to-poll {…}`. Logs go to the file, at the
 * default level: state-change lines are part of what a cold start costs.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createWriteStream, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { createInterface } from 'node:readline';
import { configFor } from '../src/config/config.js';
import { startGate } from '../src/app/app.js';
import { createLogger } from '../src/observe/logger.js';
import { BoundedLogSink } from '../src/observe/log-sink.js';

/** Event-loop delay sampling step: coarse enough to cost nothing, fine enough to see a 5 ms stall. */
const LAG_RESOLUTION_MS = 10;

async function main(): Promise<void> {
  const [targets, logFile, ...rest] = process.argv.slice(2);
  if (targets === undefined || logFile === undefined) throw new Error('usage: scale-gate.js <targets> <log file> [--option value …]');
  const extra: Record<string, string> = {};
  for (let i = 0; i + 1 < rest.length; i += 2) extra[rest[i]!.replace(/^--/, '')] = rest[i + 1]!;
  const config = configFor({
    targets,
    'grpc-listen': '127.0.0.1:0',
    'http-listen': 'off',
    'admin-listen': '127.0.0.1:0',
    'decision-log': 'none',
    drain: '0ms',
    ...extra,
  });
  const lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  lag.enable();
  let cpu = process.cpuUsage();
  let t0 = performance.now();
  let rssPeak = 0;
  const peak = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  }, 200);
  peak.unref();
  // Logs go to a file, as to a log collector that keeps up: a pipe to the benchmark runner (synchronous
  // on Linux) would stall the gate whenever the runner, sharing a core with the fleet, falls behind.
  const logStream = createWriteStream(logFile);
  const logger = createLogger(config.logLevel, config.redactHeaders, new BoundedLogSink(logStream, config.logBufferBytes));
  const gate = await startGate(config, { logger });
  process.stdout.write(`ready-to-poll ${JSON.stringify({ grpc: gate.grpcPort, admin: gate.adminPort })}\n`);
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1000).unref();

  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = line.trim();
    if (cmd === 'stats') {
      const used = process.cpuUsage(cpu);
      const wallMs = performance.now() - t0;
      const m = process.memoryUsage();
      const snap = gate.snapshot();
      let ready = 0;
      let entries = 0;
      for (const p of snap.pods.values()) {
        entries += p.plugins.size;
        for (const s of p.plugins.values()) if (s.state === 'ready') ready++;
      }
      // The histogram is in ns and includes the sampling step itself.
      const over = (v: number): number => Math.max(0, v / 1e6 - LAG_RESOLUTION_MS);
      const out = {
        wallMs,
        cpuMs: (used.user + used.system) / 1000,
        rss: m.rss,
        rssPeak: Math.max(rssPeak, m.rss),
        heapUsed: m.heapUsed,
        lagP50: over(lag.percentile(50)),
        lagP99: over(lag.percentile(99)),
        lagMax: over(lag.max),
        lagSamples: lag.count,
        pods: snap.pods.size,
        live: snap.livePods.length,
        startup: snap.startupPods.length,
        plugins: snap.plugins.size,
        entries,
        ready,
        version: snap.version,
      };
      lag.reset();
      rssPeak = 0;
      cpu = process.cpuUsage();
      t0 = performance.now();
      process.stdout.write(`stats ${JSON.stringify(out)}\n`);
    } else if (cmd.startsWith('profile ')) {
      // `profile <ms> <file>`: a CPU profile of the next <ms> (for looking into a figure, not for the report).
      const [, msText, file] = cmd.split(' ');
      const session = new Session();
      session.connect();
      const post = (method: string, params?: object): Promise<unknown> =>
        new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
      await post('Profiler.enable');
      await post('Profiler.start');
      await new Promise((r) => setTimeout(r, Number(msText)));
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      writeFileSync(file!, JSON.stringify(profile));
      session.disconnect();
      process.stdout.write(`profiled ${file}\n`);
    } else if (cmd === 'quit') break;
  }
  await gate.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
