#!/usr/bin/env node
/**
 * Runs a simulated daemon fleet on loopback, for trying a gate config without Dify:
 *
 *   node dist/src/sim/main.js [--pods 3] [--scenario demo|basic] [--time-scale 0.05]
 *                             [--ready-check] [--base-port 0]
 *
 * First line on stdout: `targets=127.0.0.1:p1,127.0.0.1:p2,...`; then one line
 * per state change. SIGINT/SIGTERM close every pod and exit.
 */
import { parseArgs } from 'node:util';
import { SimFleet, type SimFleetOptions } from './fleet.js';
import type { SimEvent } from './daemon.js';
import { demoScenario } from './scenario.js';

const USAGE =
  'usage: main.js [--pods N] [--scenario demo|basic] [--time-scale X] [--ready-check] [--base-port P]';

/** A small fleet that settles in seconds at scale 1: handy for a first look. */
const BASIC_PLUGINS: SimFleetOptions['plugins'] = [
  { id: 'langgenius/openai', version: '0.2.1', launchMs: 3_000 },
  { id: 'langgenius/anthropic', version: '0.1.8', launchMs: 5_000 },
  { id: 'langgenius/tavily', version: '0.0.5', launchMs: 8_000 },
];

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function numberArg(name: string, raw: string | undefined, fallback: number, integer: boolean): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) {
    fail(`--${name}: ${JSON.stringify(raw)} is not a ${integer ? 'non-negative integer' : 'non-negative number'}`);
  }
  return v;
}

function describe(e: SimEvent, startedAtMs: number): string {
  const t = ((Date.now() - startedAtMs) / 1000).toFixed(2);
  return `+${t}s ${e.pod} ${e.kind}${e.pluginId !== undefined ? ` ${e.pluginId}` : ''}${e.detail !== undefined ? ` (${e.detail})` : ''}`;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        pods: { type: 'string' },
        scenario: { type: 'string' },
        'time-scale': { type: 'string' },
        'ready-check': { type: 'boolean' },
        'base-port': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const scenario = values.scenario ?? 'demo';
  if (scenario !== 'demo' && scenario !== 'basic') fail(`--scenario: ${JSON.stringify(scenario)} is not demo or basic`);
  const timeScale = numberArg('time-scale', values['time-scale'], scenario === 'demo' ? 0.05 : 1, false);
  const basePort = numberArg('base-port', values['base-port'], 0, true);
  const demo = demoScenario(timeScale);
  const pods = numberArg('pods', values.pods, 3, true);
  if (pods < 1) fail('--pods: at least 1');

  const startedAtMs = Date.now();
  const pending: string[] = [];
  let announced = false;
  const onEvent = (e: SimEvent): void => {
    const line = describe(e, startedAtMs);
    if (announced) process.stdout.write(`${line}\n`);
    else pending.push(line);
  };
  const base = scenario === 'demo' ? demo.fleet : { plugins: BASIC_PLUGINS };
  const fleet = new SimFleet({
    ...base,
    pods,
    timeScale,
    readyCheck: values['ready-check'] === true,
    basePort,
    onEvent,
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: closing sim fleet\n`);
    // Bounded: a stuck close must not keep the terminal hostage.
    setTimeout(() => process.exit(1), 5000).unref();
    fleet.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  try {
    await fleet.start();
  } catch (err) {
    process.stderr.write(`sim fleet failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  process.stdout.write(`targets=${fleet.targets}\n`);
  announced = true;
  for (const line of pending) process.stdout.write(`${line}\n`);
}

void main();
