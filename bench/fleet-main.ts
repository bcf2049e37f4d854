#!/usr/bin/env node
/**
 * A simulated daemon fleet of any size, for the benchmarks that need more
 * pods or plugins than the sim CLI's scenarios:
 *
 *   node dist/bench/fleet-main.js --pods 50 --plugins 500 [--launch-ms 200-2000]
 *        [--concurrency 2] [--fail-every 0]
 *
 * Plugin j is `bench-<j % 13>/plugin-<j>`, launching in a time spread evenly over
 * the --launch-ms range; with --fail-every k every k-th plugin never starts.
 * First stdout line: `targets=…`. SIGTERM/SIGINT close every pod and exit.
 */
import { parseArgs } from 'node:util';
import { SimFleet, type PluginSpec } from '../src/sim/index.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '3' },
    plugins: { type: 'string', default: '10' },
    'launch-ms': { type: 'string', default: '200-2000' },
    concurrency: { type: 'string', default: '2' },
    'fail-every': { type: 'string', default: '0' },
  },
  strict: true,
});

const pods = Number(values.pods);
const plugins = Number(values.plugins);
const [lo, hi] = String(values['launch-ms']).split('-').map(Number) as [number, number];
const concurrency = Number(values.concurrency);
const failEvery = Number(values['fail-every']);

const specs: PluginSpec[] = [];
for (let j = 0; j < plugins; j++) {
  // A deterministic spread (golden-ratio sequence) over [lo, hi].
  const frac = (j * 0.618033988749895) % 1;
  specs.push({
    id: `bench-${j % 13}/plugin-${j}`,
    version: '0.0.1',
    launchMs: Math.round(lo + frac * (hi - lo)),
    ...(failEvery > 0 && j % failEvery === failEvery - 1 ? { failures: 'always' as const } : {}),
  });
}

const fleet = new SimFleet({ pods, plugins: specs, launchConcurrency: concurrency });
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(1), 5000).unref();
  fleet.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The runner owns this process: if it dies (even by SIGKILL), so do we.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000).unref();

fleet.start().then(
  () => process.stdout.write(`targets=${fleet.targets}\n`),
  (err: unknown) => {
    process.stderr.write(`fleet failed to start: ${String(err)}\n`);
    process.exit(1);
  },
);
