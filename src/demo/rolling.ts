/**
 * `npm run demo -- --scenario rolling`: a Deployment's rolling update of a
 * settled fleet (maxSurge 1, maxUnavailable 0, readiness on /health/check as
 * Kubernetes does today), with real gRPC Checks through the gate and the same
 * requests sent where blind round robin over the Ready endpoints would send
 * them. The new pods come up cold: the health check passes within a second,
 * their plugins take minutes (compressed by --time-scale), and each old pod
 * exits as soon as its replacement counts as Ready.
 */
import { startGate } from '../app/app.js';
import { createLogger } from '../observe/logger.js';
import { FleetDiscovery } from '../sim/discovery.js';
import { SimFleet } from '../sim/fleet.js';
import { Kubelet, rollingUpdate, type RolloutEvent } from '../sim/rollout.js';
import { DEMO_PLUGINS } from '../sim/scenario.js';
import { configFor, type Config } from '../config/config.js';
import { Traffic, lossFigures, type Exit, type TrafficRecord } from './traffic.js';

export interface RollingDemoArgs {
  /** Daemon time per real time of the new pods' start-up. */
  readonly timeScale: number;
  readonly rate: number;
  readonly durationS: number | undefined;
  readonly tty: boolean;
}

/** The old pods start at this scale, so they are settled within seconds: the story begins with a healthy fleet. */
const WARM_SCALE = 0.001;
/** How late discovery drops a deleted pod (a DNS TTL plus the re-resolve interval), real ms. */
const DISCOVERY_LAG_MS = 5_000;

export async function runRollingDemo(args: RollingDemoArgs): Promise<void> {
  const out = (s: string): void => void process.stdout.write(s);
  const fleet = new SimFleet({ pods: 3, plugins: DEMO_PLUGINS, timeScale: WARM_SCALE });
  await fleet.start();
  const plugins = DEMO_PLUGINS.map((p) => p.id);
  const runs = DEMO_PLUGINS.filter((p) => p.failures !== 'always').map((p) => p.id);
  const discovery = new FleetDiscovery(fleet, { removalLagMs: DISCOVERY_LAG_MS });
  const kubelet = new Kubelet(fleet, { periodMs: 1_000, failureThreshold: 3 });
  const gate = await startGate(gateConfig(fleet.targets, args.timeScale), { logger: createLogger('silent'), discovery });
  const traffic = new Traffic({ grpcPort: gate.grpcPort, plugins, rate: args.rate, blindTargets: () => kubelet.endpoints().map((p) => p.address) });
  const log: string[] = [];
  const exits: Exit[] = [];
  const t0 = performance.now();
  const stamp = (): string => `${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
  // A terminal redraws the view with the latest steps; a log gets every step as it happens.
  const note = (line: string): void => {
    log.push(line);
    if (!args.tty) out(line + '\n');
  };
  try {
    out('warming up: three pods start their plugins (compressed), the gate reads them...\n');
    // Every plugin that can run is ready on every pod of the fleet, and no other pod is live in the gate
    // (an old pod that exited and is not noticed yet would otherwise pass for a ready one).
    const settled = (): boolean => {
      const snap = gate.snapshot();
      const current = new Set(fleet.pods.map((p) => p.address));
      const ready = fleet.pods.every((p) => {
        const v = snap.pods.get(p.address);
        return v?.state === 'live' && runs.every((id) => v.plugins.get(id)?.state === 'ready');
      });
      return ready && snap.livePods.every((v) => current.has(v.address));
    };
    await until(settled, 120_000);
    traffic.start();
    await sleep(2_000);
    const onEvent = (e: RolloutEvent): void => {
      if (e.kind === 'exit') exits.push({ address: e.address, at: performance.now() });
      const what: Record<RolloutEvent['kind'], string> = {
        surge: 'joins, cold (its plugins start launching)',
        ready: 'is Ready: /health/check answers 200',
        terminating: 'is terminating',
        exit: 'exits (its connections close, its port refuses)',
        removed: `is deleted (DNS drops it within ${DISCOVERY_LAG_MS / 1000} s)`,
        back: 'is back',
      };
      note(`${stamp()}  ${e.pod.name} (${e.address}) ${what[e.kind]}`);
    };
    note(`${stamp()}  rolling update begins: maxSurge 1, maxUnavailable 0`);
    // The pod object is deleted about a second after its container exits.
    const update = rollingUpdate(fleet, kubelet, { onEvent, newPodTimeScale: args.timeScale, removalDelayMs: 1_000 });
    let updating = true;
    void update.done.then(() => {
      updating = false;
      note(`${stamp()}  rolling update done: every old pod replaced`);
    });
    const cap = performance.now() + (args.durationS ?? 600) * 1000;
    let lastDraw = 0;
    let settledAt: number | undefined;
    for (;;) {
      const now = performance.now();
      if (!updating && settledAt === undefined && settled()) {
        settledAt = now;
        note(`${stamp()}  every plugin that can run is ready on every new pod`);
      }
      if ((settledAt !== undefined && now - settledAt > 3_000) || now > cap) break;
      if (now - lastDraw >= (args.tty ? 500 : 5_000)) {
        lastDraw = now;
        out(view(args.tty, fleet, kubelet, gate.snapshot(), traffic.records, log));
      }
      await sleep(100);
    }
    await traffic.stop();
    if (update.error !== undefined) note(`rolling update stopped: ${update.error.message}`);
    out(view(args.tty, fleet, kubelet, gate.snapshot(), traffic.records, log));
    out('\n' + summary(traffic.records, exits, (performance.now() - t0) / 1000) + '\n');
  } finally {
    await traffic.stop();
    traffic.close();
    kubelet.stop();
    await gate.close();
    await discovery.stop();
    await fleet.close();
  }
}

function view(
  tty: boolean,
  fleet: SimFleet,
  kubelet: Kubelet,
  snap: ReturnType<Awaited<ReturnType<typeof startGate>>['snapshot']>,
  records: readonly TrafficRecord[],
  log: readonly string[],
): string {
  const lines: string[] = ['plugin-gate demo — rolling update (maxSurge 1, maxUnavailable 0, readiness: /health/check)', ''];
  lines.push(`${'pod'.padEnd(8)}${'address'.padEnd(18)}${'Kubernetes'.padEnd(14)}${'gate'.padEnd(14)}plugins ready (gate view)`);
  const shown = new Set<string>();
  for (const pod of fleet.pods) {
    shown.add(pod.address);
    const v = snap.pods.get(pod.address);
    const ready = v === undefined ? 0 : [...v.plugins.values()].filter((p) => p.state === 'ready').length;
    const k8s = kubelet.endpoints().includes(pod) ? 'Ready' : kubelet.isReady(pod) ? 'terminating' : 'not ready';
    lines.push(`${pod.name.padEnd(8)}${pod.address.padEnd(18)}${k8s.padEnd(14)}${(v?.state ?? '?').padEnd(14)}${ready} of ${v?.plugins.size ?? 0}`);
  }
  for (const v of snap.pods.values()) if (!shown.has(v.address)) lines.push(`${'(old)'.padEnd(8)}${v.address.padEnd(18)}${'gone'.padEnd(14)}${v.state}`);
  const gate = tally(records, 'gate');
  const blind = tally(records, 'blind');
  lines.push('');
  lines.push(`through the gate:   ${gate.served} served, ${gate.notRunning} got "plugin runtime not found", ${gate.dead} sent to an exited pod, ${gate.denied} denied (503 + Retry-After)`);
  lines.push(`blind round robin:  ${blind.served} served, ${blind.notRunning} got "plugin runtime not found", ${blind.dead} sent to an exited pod`);
  if (tty) lines.push('', ...log.slice(-10));
  const text = lines.join('\n') + '\n';
  return tty ? '\x1b[H\x1b[2J' + text : text + '\n';
}

function tally(records: readonly TrafficRecord[], who: 'gate' | 'blind'): { served: number; notRunning: number; dead: number; denied: number } {
  const t = { served: 0, notRunning: 0, dead: 0, denied: 0 };
  for (const r of records) {
    const landed = who === 'gate' ? r.landed : r.blindLanded;
    if (who === 'gate' && !r.allowed) t.denied++;
    if (landed === 'served') t.served++;
    else if (landed === 'not_running') t.notRunning++;
    else if (landed === 'dead') t.dead++;
  }
  return t;
}

function summary(records: readonly TrafficRecord[], exits: readonly Exit[], elapsedS: number): string {
  const g = lossFigures(records, exits, 'gate');
  const b = lossFigures(records, exits, 'blind');
  const gt = tally(records, 'gate');
  const bt = tally(records, 'blind');
  const pct = (a: number, n: number): string => (n === 0 ? '0%' : `${((100 * a) / n).toFixed(1)}%`);
  const win = (w: readonly number[]): string => (w.length === 0 ? 'no exit' : `${Math.max(...w).toFixed(0)} ms at most (${w.map((x) => x.toFixed(0)).join(', ')} ms)`);
  return [
    `summary after ${elapsedS.toFixed(0)} s, ${records.length} requests through a rolling update of 3 pods`,
    `  with plugin-gate:   ${g.sent} routed: ${gt.served} served, ${g.misrouted} got "plugin runtime not found", ${g.toDeadPod} sent to an exited pod;`,
    `                      ${gt.denied} denied with 503 + Retry-After while the plugin was starting everywhere;`,
    `                      dead-pod window (pod exit → last request routed to it): ${win(g.windowsMs)}`,
    `  blind round robin:  ${b.sent} sent: ${bt.served} served, ${b.misrouted} (${pct(b.misrouted, b.sent)}) got 404 "plugin runtime not found" on a pod Ready by /health/check`,
    `                      but still launching its plugins, ${b.toDeadPod} (${pct(b.toDeadPod, b.sent)}) went to a pod that had exited`,
  ].join('\n');
}

/**
 * The gate with its default polling (2 s): a pod's exit is seen on its
 * connections, not on the next poll. The start-up bounds follow the new pods'
 * compressed time, as in the cold-start demo.
 */
function gateConfig(targets: string, ts: number): Config {
  const sec = (s: number): string => `${Math.max(1, Math.round(s * 1000))}ms`;
  return configFor({
    targets,
    'grpc-listen': '127.0.0.1:0',
    'http-listen': 'off',
    'admin-listen': '127.0.0.1:0',
    'startup-grace': sec(Math.max(1, 60 * ts)),
    'startup-max': sec(Math.max(5, 1200 * ts)),
    'retry-after': '2s',
    'log-level': 'silent',
    'decision-log': 'none',
    drain: '0ms',
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`demo: the fleet did not settle within ${ms / 1000} s`);
    await sleep(50);
  }
}
