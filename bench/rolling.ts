/**
 * rolling: the simulator's rolling-update scenario (src/sim/rollout.ts:
 * maxSurge 1, maxUnavailable 0, each new pod discovered at once) run twice,
 * with the kubelet's Ready condition injected — `/health/check` (what
 * Kubernetes does with the daemon today), then `GET /readyz` of a
 * `plugin-gate probe` started on each new pod — with steady traffic for every
 * plugin through two fronts: a plain Service (round robin over the kubelet's
 * endpoints, what dify-api gets without a gate) and the gate (its real
 * decision over its real view; an allow is then sent to the pod it names).
 * Every request is really sent to a simulated daemon over loopback HTTP and
 * counted by the daemon's answer: served (200), misrouted (404 "plugin runtime
 * not found") or held (the gate denied it while the plugin was starting).
 *
 * Daemons, gate, probes and kubelet share one manual scheduler moved one
 * second per step: launch times and probe periods are exact; which step an
 * in-flight HTTP probe lands in may vary, so counts may differ by a request
 * or two between runs.
 */
import { configFor } from '../src/config/config.js';
import { startGate, type RunningGate } from '../src/app/app.js';
import type { GateRequest } from '../src/decide/types.js';
import { createLogger } from '../src/observe/logger.js';
import { probeConfigFor } from '../src/probe/config.js';
import { startProbe, type RunningProbe } from '../src/probe/probe.js';
import { FleetDiscovery, Kubelet, SimFleet, healthCheckReady, rollingUpdate, type PluginSpec, type Readiness, type SimDaemon } from '../src/sim/index.js';
import { ManualScheduler } from '../test/support/manual-scheduler.js';
import { neverPolls } from '../test/support/gate.js';
import type { BenchContext } from './context.js';

export type ReadinessRule = 'health-check' | 'probe';
export type Front = 'service' | 'gate';

export interface RollingPlan {
  readonly replicas: number;
  readonly plugins: readonly PluginSpec[];
  /** Daemon ms the old pods run before the update (every plugin settled). */
  readonly settleMs: number;
  /** Most daemon ms an update may take before the run is cut off (reported). */
  readonly limitMs: number;
}

export interface Tally {
  served: number;
  misrouted: number;
  held: number;
  /** Requests that got no answer from a pod (a refused or reset connection). */
  failed: number;
  /** Of the misrouted and held: those sent while an old pod still ran the plugin. */
  misroutedWhileOldRan: number;
  heldWhileOldRan: number;
}

export interface RollingResult {
  readonly readiness: ReadinessRule;
  readonly fronts: Record<Front, Tally>;
  /** Daemon ms from the first new pod to the last old pod's termination. */
  readonly rolloutMs: number;
  /** Daemon ms from the first new pod until every new pod ran every plugin. */
  readonly settledMs: number;
  /** Daemon ms during which some plugin ran on no Ready pod. */
  readonly gapMs: number;
  readonly cutOff: boolean;
}

const STEP_MS = 1_000;
const POLL_EVERY_MS = 2_000;
const KUBELET_PERIOD_MS = 5_000;

export const FULL_PLAN: RollingPlan = {
  replicas: 3,
  plugins: [
    { id: 'langgenius/openai', launchMs: 80_000 },
    { id: 'langgenius/anthropic', launchMs: 95_000 },
    { id: 'langgenius/tavily', launchMs: 45_000 },
    { id: 'langgenius/ollama', launchMs: 60_000 },
    { id: 'langgenius/jina', launchMs: 120_000 },
    { id: 'langgenius/deepseek', launchMs: 90_000 },
  ],
  settleMs: 600_000,
  limitMs: 3_600_000,
};

export const QUICK_PLAN: RollingPlan = {
  replicas: 2,
  plugins: [
    { id: 'langgenius/openai', launchMs: 20_000 },
    { id: 'langgenius/tavily', launchMs: 10_000 },
    { id: 'langgenius/jina', launchMs: 30_000 },
  ],
  settleMs: 120_000,
  limitMs: 1_200_000,
};

function dispatchRequest(pluginId: string): GateRequest {
  return {
    method: 'POST',
    path: '/plugin/tenant-1/dispatch/llm/invoke',
    header: (n) => (n === 'x-plugin-id' ? pluginId : undefined),
    contextExtensions: new Map(),
    requestId: undefined,
  };
}

async function send(address: string, pluginId: string): Promise<'served' | 'misrouted' | 'failed'> {
  try {
    const res = await fetch(`http://${address}/plugin/tenant-1/dispatch/llm/invoke`, {
      method: 'POST',
      headers: { 'x-plugin-id': pluginId, 'content-type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(5_000),
    });
    const body = await res.text();
    if (res.status === 200) return 'served';
    if (res.status === 404 && body.includes('plugin runtime not found')) return 'misrouted';
    return 'failed';
  } catch {
    return 'failed';
  }
}

const emptyTally = (): Tally => ({ served: 0, misrouted: 0, held: 0, failed: 0, misroutedWhileOldRan: 0, heldWhileOldRan: 0 });

/** `GET /readyz` of a `plugin-gate probe` on each pod, started the first time the kubelet asks about the pod. */
class ProbeReadiness {
  private readonly probes = new Map<SimDaemon, Promise<RunningProbe>>();
  constructor(private readonly sched: ManualScheduler) {}

  readonly ready: Readiness = async (pod, signal) => {
    let p = this.probes.get(pod);
    if (p === undefined) {
      p = startProbe(probeConfigFor({ target: pod.address, listen: '127.0.0.1:0', 'log-level': 'silent' }), {
        scheduler: this.sched,
        logger: createLogger('silent'),
        pollScheduler: neverPolls(this.sched),
      }).then(async (probe) => {
        await probe.pollNow();
        return probe;
      });
      this.probes.set(pod, p);
    }
    const probe = await p;
    try {
      const res = await fetch(`http://127.0.0.1:${probe.port}/readyz`, { signal: AbortSignal.any([signal, AbortSignal.timeout(1_000)]) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  };

  /** The probes poll their daemon every 2 s, as the sidecar does. */
  async poll(live: readonly SimDaemon[]): Promise<void> {
    await Promise.all([...this.probes].filter(([pod]) => live.includes(pod)).map(async ([, p]) => (await p).pollNow()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.probes.values()].map(async (p) => (await p).close()));
  }
}

const runsOn = (pod: SimDaemon, id: string): boolean => pod.snapshot().plugins.some((s) => s.id === id && s.phase === 'running');

/** One rolling update with one readiness rule; every pod, gate and probe is closed before it returns. */
export async function runRollingUpdate(readiness: ReadinessRule, plan: RollingPlan): Promise<RollingResult> {
  const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
  const fleet = new SimFleet({ pods: plan.replicas, plugins: plan.plugins, scheduler: sched });
  const probes = new ProbeReadiness(sched);
  let gate: RunningGate | undefined;
  let kubelet: Kubelet | undefined;
  const fronts: Record<Front, Tally> = { service: emptyTally(), gate: emptyTally() };
  try {
    await fleet.start();
    sched.advance(plan.settleMs);
    const old = [...fleet.pods];
    gate = await startGate(
      configFor({ targets: fleet.targets, 'grpc-listen': '127.0.0.1:0', 'http-listen': 'off', 'admin-listen': '127.0.0.1:0', 'log-level': 'silent', 'decision-log': 'none', drain: '0ms' }),
      { scheduler: sched, logger: createLogger('silent'), pollScheduler: neverPolls(sched), discovery: new FleetDiscovery(fleet, { scheduler: sched }) },
    );
    await gate.poller.pollNow();

    kubelet = new Kubelet(fleet, { ready: readiness === 'probe' ? probes.ready : healthCheckReady(), periodMs: KUBELET_PERIOD_MS, failureThreshold: 1 });
    const start = sched.now();
    const update = rollingUpdate(fleet, kubelet);
    let updated = false;
    void update.done.then(() => {
      updated = true;
    });
    let settledAt: number | undefined;
    let gapMs = 0;
    let rr = 0;
    while (sched.now() - start < plan.limitMs) {
      sched.advance(STEP_MS);
      const t = sched.now() - start;
      if (t % POLL_EVERY_MS === 0) await Promise.all([gate.poller.pollNow(), probes.poll(fleet.pods)]);

      const endpoints = kubelet.endpoints();
      if (plan.plugins.some((spec) => !endpoints.some((p) => runsOn(p, spec.id)))) gapMs += STEP_MS;
      for (const spec of plan.plugins) {
        // An old pod still runs the plugin until its process exits.
        const oldRuns = old.some((p) => p.snapshot().listening && runsOn(p, spec.id));
        const target = endpoints[rr++ % Math.max(1, endpoints.length)];
        tally(fronts.service, target === undefined ? 'failed' : await send(target.address, spec.id), oldRuns);
        const d = gate.service.check(dispatchRequest(spec.id), 'http').decision;
        if (!d.allow) tally(fronts.gate, 'held', oldRuns);
        else tally(fronts.gate, d.upstream === undefined ? 'failed' : await send(d.upstream, spec.id), oldRuns);
      }
      if (updated && fleet.pods.every((p) => plan.plugins.every((spec) => runsOn(p, spec.id)))) {
        settledAt = t;
        break;
      }
    }
    const end = sched.now() - start;
    if (update.error !== undefined) throw update.error;
    const exits = update.events.filter((e) => e.kind === 'exit').map((e) => e.at - start);
    return { readiness, fronts, rolloutMs: exits.length > 0 ? Math.max(...exits) : end, settledMs: settledAt ?? end, gapMs, cutOff: settledAt === undefined };
  } finally {
    kubelet?.stop();
    await gate?.close();
    await probes.close();
    await fleet.close();
  }
}

function tally(t: Tally, outcome: 'served' | 'misrouted' | 'held' | 'failed', oldRan: boolean): void {
  t[outcome]++;
  if (oldRan && outcome === 'misrouted') t.misroutedWhileOldRan++;
  if (oldRan && outcome === 'held') t.heldWhileOldRan++;
}

export async function benchRolling(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const plan = ctx.quick ? QUICK_PLAN : FULL_PLAN;
  report.section('rolling', 'rolling update of the daemon pods: Ready on /health/check vs Ready from plugin-gate probe', [
    `${plan.replicas} daemon pods with ${plan.plugins.length} plugins (launches of ${Math.min(...plan.plugins.map((p) => p.launchMs)) / 1000}–${Math.max(...plan.plugins.map((p) => p.launchMs)) / 1000} s, two at a time), replaced by src/sim/rollout.ts: maxSurge 1, maxUnavailable 0;`,
    'the kubelet probes a new pod at once and every 5 s (failureThreshold 1); when one is Ready an old pod stops being an endpoint and exits;',
    'every second one request per plugin through a plain Service (round robin over the kubelet\'s endpoints) and through the gate (its decision, then the pod it names);',
    'daemon time is simulated (one manual clock for daemons, gate, probes and kubelet); every request is real HTTP to a simulated daemon;',
    'counted until every new pod runs every plugin; "no answer" = sent in the second its pod exited.',
  ]);
  for (const readiness of ['health-check', 'probe'] as const) {
    const r = await runRollingUpdate(readiness, plan);
    const label = readiness === 'health-check' ? 'Ready on /health/check' : 'Ready from plugin-gate probe';
    for (const front of ['service', 'gate'] as const) {
      const t = r.fronts[front];
      const total = t.served + t.misrouted + t.held + t.failed;
      report.figure(
        'rolling',
        `${label}, ${front === 'service' ? 'plain Service' : 'gate'}: served / misrouted / held`,
        `${t.served} / ${t.misrouted} / ${t.held}`,
        'requests',
        `of ${total}; while an old pod still ran the plugin: ${t.misroutedWhileOldRan} misrouted, ${t.heldWhileOldRan} held${t.failed > 0 ? `; ${t.failed} got no answer` : ''}`,
      );
    }
    report.figure('rolling', `${label}: rollout / settled`, `${Math.round(r.rolloutMs / 1000)} / ${Math.round(r.settledMs / 1000)}`, 's daemon time', `some plugin on no Ready pod for ${Math.round(r.gapMs / 1000)} s${r.cutOff ? '; cut off at the limit' : ''}`);
  }
}
