/**
 * pod-loss: what a fleet change costs in requests, through the gate (with and
 * without its keep-alive connection-loss detection) and through blind round
 * robin. In one process: a SimFleet on real timers, the gate (`startGate`,
 * default poll interval) discovering the fleet with a DNS-like lag on removals,
 * a Kubernetes-like kubelet probing /health/check (what a plain gateway
 * balances over), and steady gRPC Checks whose allowed requests are really
 * sent to the chosen pod.
 */
import { configFor } from '../src/config/config.js';
import { startGate, type RunningGate } from '../src/app/app.js';
import { createLogger } from '../src/observe/logger.js';
import { FleetDiscovery, Kubelet, SimFleet, crashPod, rollingUpdate, type PluginSpec, type RolloutEvent } from '../src/sim/index.js';
import { Traffic, lossFigures, type Exit, type LossFigures } from '../src/demo/traffic.js';
import type { BenchContext } from './context.js';
import { sleep } from './lib/proc.js';
import { sig } from './lib/report.js';

interface Plan {
  readonly pods: number;
  readonly plugins: number;
  readonly launchMs: readonly [number, number];
  readonly rate: number;
  readonly pollInterval: string;
  readonly pollMs: number;
  readonly removalLagMs: number;
  readonly crashDownMs: number;
  /** Traffic before the change and after the fleet has settled again, ms. */
  readonly marginMs: number;
}

const FULL: Plan = { pods: 3, plugins: 6, launchMs: [500, 1500], rate: 200, pollInterval: '2s', pollMs: 2000, removalLagMs: 5000, crashDownMs: 3000, marginMs: 1000 };
const QUICK: Plan = { pods: 2, plugins: 2, launchMs: [100, 200], rate: 100, pollInterval: '500ms', pollMs: 500, removalLagMs: 1500, crashDownMs: 800, marginMs: 300 };

type Scenario = 'rolling' | 'crash';

interface Run {
  /** Per exit of the gate's windows: ms of it this process did not run. */
  readonly gateStalls: readonly number[];
  readonly gate: LossFigures;
  readonly blind: LossFigures;
  readonly denied: number;
  readonly exits: number;
}

export async function benchPodLoss(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const plan = ctx.quick ? QUICK : FULL;
  const jitterBound = plan.pollMs * 1.1;
  report.section('pod-loss', 'requests a fleet change costs: misrouted, sent to a dead pod, dead-pod window', [
    `fleet: ${plan.pods} sim pods × ${plan.plugins} plugins on real timers, ${plan.launchMs[0]}–${plan.launchMs[1]} ms launches, 2 at a time, settled before each run;`,
    `gate: poll-interval ${plan.pollInterval} ± 10 %, discovery drops a deleted pod ${plan.removalLagMs} ms after it leaves (DNS-like lag); in this process;`,
    `load: ${plan.rate} gRPC Checks/s over all plugins; every allowed request is sent to the chosen pod; the same request goes where blind round robin`,
    '  over the Ready endpoints (kubelet probing /health/check every 1 s, 3 failures to unready) would send it;',
    'rolling: maxSurge 1 / maxUnavailable 0, Ready = /health/check 200 (as today); crash: pod-2 killed, back cold at the same address after ' +
      `${plan.crashDownMs} ms;`,
    'misrouted = a 404 "plugin runtime not found"; dead pod = connection refused or reset; dead-pod window = pod exit → last request routed to',
    '  that pod (before it came back), from the exit event taken as the kill is issued to the gate answer naming the pod;',
    '  time this process did not run at all (event-loop gaps over 20 ms: a busy machine) is counted in the window and named beside it.',
  ]);
  for (const scenario of ['rolling', 'crash'] as const) {
    let blind: Run | undefined;
    for (const keepAlive of [true, false]) {
      const mode = keepAlive ? 'keep-alive' : 'interval only';
      const run = await runOnce(plan, scenario, keepAlive);
      blind ??= run;
      const win = run.gate.windowsMs.length === 0 ? 0 : Math.max(...run.gate.windowsMs);
      const each = run.gate.windowsMs.map((w, i) => `${sig(w)}${(run.gateStalls[i] ?? 0) >= 1 ? ` (${sig(run.gateStalls[i] ?? 0)} of it this process did not run)` : ''}`).join(', ');
      report.figure('pod-loss', `${scenario}, gate ${mode}: misrouted`, String(run.gate.misrouted), 'requests', `of ${run.gate.sent} routed; ${run.denied} denied while plugins started`);
      report.figure('pod-loss', `${scenario}, gate ${mode}: to a dead pod`, String(run.gate.toDeadPod), 'requests');
      report.figure('pod-loss', `${scenario}, gate ${mode}: dead-pod window`, sig(win), 'ms', `max over ${run.exits} exits (each: ${each} ms)`);
      if (run.gate.misrouted > 0) report.problem('pod-loss', `${scenario}, ${mode}: the gate misrouted ${run.gate.misrouted} requests`);
      // The gate cannot react while its process is not running at all: the bound is checked on the
      // window minus that time (both are printed).
      const running = run.gate.windowsMs.length === 0 ? 0 : Math.max(...run.gate.windowsMs.map((w, i) => w - (run.gateStalls[i] ?? 0)));
      report.figure('pod-loss', `${scenario}, gate ${mode}: dead-pod window, process running`, sig(running), 'ms', 'the window minus the time this process did not run');
      const bound = keepAlive ? 100 : jitterBound + 100;
      const boundText = keepAlive ? '100 ms' : `one poll interval × 1.1 + 100 ms = ${sig(bound)} ms`;
      report.figure('pod-loss', `${scenario}, gate ${mode}: window bound`, running <= bound ? 'meets' : 'EXCEEDS', '', `goal ≤ ${boundText}, on the window while the process ran`);
      if (running > bound) report.problem('pod-loss', `${scenario}, ${mode}: dead-pod window ${sig(running)} ms (process running) exceeds ${boundText}`);
    }
    if (blind !== undefined) {
      const b = blind.blind;
      const win = b.windowsMs.length === 0 ? 0 : Math.max(...b.windowsMs);
      report.figure('pod-loss', `${scenario}, blind round robin: misrouted`, String(b.misrouted), 'requests', `of ${b.sent} sent`);
      report.figure('pod-loss', `${scenario}, blind round robin: to a dead pod`, String(b.toDeadPod), 'requests');
      report.figure('pod-loss', `${scenario}, blind round robin: dead-pod window`, sig(win), 'ms');
    }
  }
}

async function runOnce(plan: Plan, scenario: Scenario, keepAlive: boolean): Promise<Run> {
  const specs: PluginSpec[] = [];
  for (let j = 0; j < plan.plugins; j++) {
    const frac = (j * 0.618033988749895) % 1;
    specs.push({ id: `loss-${j % 3}/plugin-${j}`, launchMs: Math.round(plan.launchMs[0] + frac * (plan.launchMs[1] - plan.launchMs[0])) });
  }
  const ids = specs.map((s) => s.id);
  const fleet = new SimFleet({ pods: plan.pods, plugins: specs });
  let gate: RunningGate | undefined;
  let kubelet: Kubelet | undefined;
  let traffic: Traffic | undefined;
  const discovery = new FleetDiscovery(fleet, { removalLagMs: plan.removalLagMs });
  try {
    await fleet.start();
    await until('the fleet settles', () => fleet.pods.every((p) => p.snapshot().plugins.every((x) => x.phase === 'running')), 60_000);
    kubelet = new Kubelet(fleet, { periodMs: 1_000, failureThreshold: 3 });
    const config = configFor({
      targets: fleet.targets,
      'grpc-listen': '127.0.0.1:0',
      'http-listen': 'off',
      'admin-listen': '127.0.0.1:0',
      'poll-interval': plan.pollInterval,
      'log-level': 'silent',
      'decision-log': 'none',
      drain: '0ms',
    });
    gate = await startGate(config, { logger: createLogger('silent'), discovery, pollOnClose: keepAlive });
    const g = gate;
    // Settled: every pod of the fleet live in the gate with every plugin ready, and nothing else live
    // (an exited pod the gate has not noticed yet would still count as a ready pod otherwise).
    const everywhere = (): boolean => {
      const snap = g.snapshot();
      const current = new Set(fleet.pods.map((p) => p.address));
      const readyHere = (address: string): boolean => {
        const v = snap.pods.get(address);
        return v?.state === 'live' && ids.every((id) => v.plugins.get(id)?.state === 'ready');
      };
      return [...current].every(readyHere) && snap.livePods.every((v) => current.has(v.address));
    };
    await until('the gate sees every plugin on every pod', everywhere, 30_000);
    const k = kubelet;
    traffic = new Traffic({ grpcPort: gate.grpcPort, plugins: ids, rate: plan.rate, blindTargets: () => k.endpoints().map((p) => p.address) });
    const exits: Exit[] = [];
    const onEvent = (e: RolloutEvent): void => {
      const now = performance.now();
      if (e.kind === 'exit') exits.push({ address: e.address, at: now });
      if (e.kind === 'back') {
        const x = exits.findLast((y) => y.address === e.address);
        if (x !== undefined) x.backAt = now;
      }
    };
    traffic.start();
    await sleep(plan.marginMs);
    const change = scenario === 'rolling' ? rollingUpdate(fleet, kubelet, { onEvent }) : crashPod(fleet, fleet.pods[1]!, { downMs: plan.crashDownMs, onEvent });
    await change.done;
    if (change.error !== undefined) throw change.error;
    // Until the fleet serves every plugin everywhere again, then a little more.
    await until('every plugin ready on every pod again', everywhere, 60_000);
    await sleep(plan.marginMs);
    await traffic.stop();
    const records = traffic.records;
    const byGate = lossFigures(records, exits, 'gate');
    const t = traffic;
    return {
      gateStalls: exits.map((e, i) => t.stalledWithin(e.at, e.at + (byGate.windowsMs[i] ?? 0))),
      gate: byGate,
      blind: lossFigures(records, exits, 'blind'),
      denied: records.filter((r) => !r.allowed).length,
      exits: exits.length,
    };
  } finally {
    await traffic?.stop();
    traffic?.close();
    kubelet?.stop();
    await gate?.close();
    await discovery.stop();
    await fleet.close();
  }
}

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}
