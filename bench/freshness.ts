/**
 * freshness: how long after a plugin's state changes on a daemon the gate's
 * snapshot shows it. A SimFleet on real timers launches plugins (each launch
 * ends in `ready`, or in `gave_up` for plugins that never start); the gate,
 * polling with its defaults, records when each (pod, plugin) change reaches
 * its snapshot. Gate and fleet share this process (both are mostly idle).
 */
import { configFor } from '../src/config/config.js';
import { startGate } from '../src/app/app.js';
import { createLogger } from '../src/observe/logger.js';
import { SimFleet, type PluginSpec, type SimEvent } from '../src/sim/index.js';
import type { BenchContext } from './context.js';
import { sleep } from './lib/proc.js';
import { percentile, sig } from './lib/report.js';

interface Plan {
  readonly pods: number;
  readonly plugins: number;
  readonly launchMs: readonly [number, number];
  readonly failEvery: number;
  readonly pollInterval: string;
  readonly pollMs: number;
  readonly jitter: number;
  readonly runMs: number;
}

const FULL: Plan = { pods: 5, plugins: 48, launchMs: [300, 1500], failEvery: 12, pollInterval: '2s', pollMs: 2000, jitter: 10, runMs: 24_000 };
const QUICK: Plan = { pods: 2, plugins: 12, launchMs: [100, 300], failEvery: 6, pollInterval: '200ms', pollMs: 200, jitter: 10, runMs: 2_500 };

export async function benchFreshness(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const plan = ctx.quick ? QUICK : FULL;
  const bound = plan.pollMs * (1 + plan.jitter / 100);
  report.section('freshness', 'plugin state change on a daemon → visible in the gate snapshot', [
    `fleet: ${plan.pods} sim pods × ${plan.plugins} plugins on real timers, 2 launches at a time, ${plan.launchMs[0]}–${plan.launchMs[1]} ms each;`,
    `every ${plan.failEvery}th plugin never starts: with a retry limit of 3 (daemon and gate) it gives up after 3 launches, the daemon's no-wait retries;`,
    `gate: poll-interval ${plan.pollInterval} ± ${plan.jitter} %, sources metrics + health-check, in this process;`,
    'measured: sim event time (ready / gave_up) → first snapshot whose (pod, plugin) state is ready / failed.',
  ]);

  const events: { at: number; pod: string; plugin: string; to: 'ready' | 'failed' }[] = [];
  const specs: PluginSpec[] = [];
  for (let j = 0; j < plan.plugins; j++) {
    const frac = (j * 0.618033988749895) % 1;
    const fails = j % plan.failEvery === plan.failEvery - 1;
    specs.push({
      id: `fresh-${j % 5}/plugin-${j}`,
      launchMs: Math.round(plan.launchMs[0] + frac * (plan.launchMs[1] - plan.launchMs[0])),
      ...(fails ? { failures: 'always' as const } : {}),
    });
  }
  const onEvent = (e: SimEvent): void => {
    if (e.pluginId === undefined) return;
    if (e.kind === 'ready') events.push({ at: performance.now(), pod: e.pod, plugin: e.pluginId, to: 'ready' });
    else if (e.kind === 'gave_up') events.push({ at: performance.now(), pod: e.pod, plugin: e.pluginId, to: 'failed' });
  };
  // A retry limit of 3 with the daemon's no-wait first retries: a failing plugin gives up within its own launches.
  const fleet = new SimFleet({ pods: plan.pods, plugins: specs, onEvent, retryLimit: 3 });
  await fleet.start();
  const nameOf = new Map(fleet.pods.map((p) => [p.address, p.name]));
  const seen = new Map<string, number>();
  let gate: Awaited<ReturnType<typeof startGate>> | undefined;
  try {
    const config = configFor({
      targets: fleet.targets,
      'grpc-listen': '127.0.0.1:0',
      'http-listen': 'off',
      'admin-listen': '127.0.0.1:0',
      'poll-interval': plan.pollInterval,
      'poll-jitter': String(plan.jitter),
      'daemon-retry-limit': '3',
      'log-level': 'silent',
      'decision-log': 'none',
      drain: '0ms',
    });
    const t0 = performance.now();
    gate = await startGate(config, { logger: createLogger('silent') });
    gate.tracker.onSnapshot((_snap, changes) => {
      const t = performance.now();
      for (const c of changes) {
        if (c.kind !== 'plugin' || (c.to !== 'ready' && c.to !== 'failed')) continue;
        const key = `${nameOf.get(c.pod)}|${c.plugin}|${c.to}`;
        if (!seen.has(key)) seen.set(key, t);
      }
    });
    await gate.whenReady();
    const readyAt = performance.now();
    // Only changes after the gate's first complete round count: earlier ones waited for the gate to start.
    await sleep(plan.runMs);
    // Let the last changes reach the gate.
    await sleep(bound + 500);
    const lags: number[] = [];
    let missed = 0;
    for (const e of events) {
      if (e.at < readyAt) continue;
      const t = seen.get(`${e.pod}|${e.plugin}|${e.to}`);
      if (t === undefined || t < e.at) {
        missed++;
        continue;
      }
      lags.push(t - e.at);
    }
    lags.sort((a, b) => a - b);
    report.note(`${events.length} state changes on the pods, ${lags.length} after the gate was ready (${sig((readyAt - t0) / 1000)} s after start) and matched, ${missed} unmatched`);
    if (lags.length === 0) {
      report.problem('freshness', 'no state change was observed: nothing to report');
      return;
    }
    const p50 = percentile(lags, 0.5);
    const p95 = percentile(lags, 0.95);
    const max = lags[lags.length - 1]!;
    report.figure('freshness', `median (poll ${plan.pollInterval})`, sig(p50), 'ms', `${lags.length} transitions; expected ≈ half a poll interval`);
    report.figure('freshness', `p95 (poll ${plan.pollInterval})`, sig(p95), 'ms');
    report.figure('freshness', `max (poll ${plan.pollInterval})`, sig(max), 'ms');
    // Bound: a change just after a read waits for the next read, at most interval × (1 + jitter) after
    // the previous read ended, plus that read's own time (a loopback read takes a few ms; 100 ms allowed).
    const limit = bound + 100;
    const verdict = max <= limit ? 'meets' : 'EXCEEDS';
    report.figure('freshness', 'bound check', verdict, '', `bound = poll interval × (1 + jitter) + read time = ${sig(bound)} + ≤100 ms = ${sig(limit)} ms; max seen ${sig(max)} ms`);
    if (max > limit) report.problem('freshness', `max freshness ${sig(max)} ms exceeds the ${sig(limit)} ms bound`);
    if (missed > 0) report.note(`${missed} changes never reached the snapshot as that state (e.g. a plugin that changed again within one poll)`);
  } finally {
    await gate?.close();
    await fleet.close();
  }
}
