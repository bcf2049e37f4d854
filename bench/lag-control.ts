#!/usr/bin/env node
/**
 * An idle Node process that only measures its own event-loop delay, placed on
 * the same core as the process under test: what it sees is the machine's share
 * of a lag figure (other processes holding the core), not the gate's.
 *
 *   stats → `stats {lagP50, lagP99, lagMax}` since the last `stats`; quit → exits
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

const RESOLUTION_MS = 10;
const lag = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
lag.enable();
const over = (v: number): number => Math.max(0, v / 1e6 - RESOLUTION_MS);
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'stats') {
    process.stdout.write(`stats ${JSON.stringify({ lagP50: over(lag.percentile(50)), lagP99: over(lag.percentile(99)), lagMax: over(lag.max) })}\n`);
    lag.reset();
  } else if (line.trim() === 'quit') break;
}
process.exit(0);
