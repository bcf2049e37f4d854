/**
 * rolling: a Deployment rolling update of the daemon pods (maxSurge 1,
 * maxUnavailable 0), run twice — new pods Ready on `/health/check`, and Ready
 * from `plugin-gate probe` — with steady traffic for every plugin through two
 * fronts: a plain Service (round robin over Ready pods, what dify-api gets
 * without a gate) and the gate (its real decision over its real view; an allow
 * is then sent to the pod it names). Every request is really sent to a
 * simulated daemon over loopback HTTP and counted by the daemon's answer:
 * served (200), misrouted (404 "plugin runtime not found") or held (the gate
 * denied it while the plugin was starting).
 *
 * Daemon time, the gate's and the probes' clocks are one manual scheduler
 * moved one second per step, so the counts do not depend on the machine; the
 * kubelet checks readiness every 5 s, the gate and the probes poll every 2 s.
 */
import { configFor } from '../src/config/config.js';
import { startGate, type RunningGate } from '../src/app/app.js';
import type { Discovery, DiscoveryListener } from '../src/discovery/types.js';
import type { GateRequest } from '../src/decide/types.js';
import { createLogger } from '../src/observe/logger.js';
import { probeConfigFor } from '../src/probe/config.js';
import { startProbe, type RunningProbe } from '../src/probe/probe.js';
import { SimDaemon, type PluginSpec } from '../src/sim/index.js';
import { ManualScheduler } from '../test/support/manual-scheduler.js';
import { neverPolls } from '../test/support/gate.js';
import type { BenchContext } from './context.js';

export type Readiness = 'health-check' | 'probe';
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
  readonly readiness: Readiness;
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

/** The set of daemon pods the gate discovers: what a headless Service with publishNotReadyAddresses lists. */
class PodList implements Discovery {
  private listener: DiscoveryListener | undefined;
  private current: string[] = [];
  start(onChange: DiscoveryListener): void {
    this.listener = onChange;
    onChange(this.current, undefined);
  }
  stop(): Promise<void> {
    this.listener = undefined;
    return Promise.resolve();
  }
  set(addresses: readonly string[]): void {
    this.current = [...addresses].sort();
    this.listener?.(this.current, undefined);
  }
}

interface Pod {
  readonly daemon: SimDaemon;
  readonly old: boolean;
  ready: boolean;
  terminated: boolean;
  probe: RunningProbe | undefined;
}

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

/** One rolling update with one readiness rule; every pod, gate and probe is closed before it returns. */
export async function runRollingUpdate(readiness: Readiness, plan: RollingPlan): Promise<RollingResult> {
  const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
  const logger = createLogger('silent');
  const pods: Pod[] = [];
  let gate: RunningGate | undefined;
  const fronts: Record<Front, Tally> = { service: emptyTally(), gate: emptyTally() };
  try {
    const newDaemon = async (name: string): Promise<SimDaemon> => {
      const d = new SimDaemon({ name, scheduler: sched, plugins: plan.plugins });
      await d.start();
      return d;
    };
    for (let i = 0; i < plan.replicas; i++) pods.push({ daemon: await newDaemon(`old-${i + 1}`), old: true, ready: true, terminated: false, probe: undefined });
    sched.advance(plan.settleMs);

    const discovery = new PodList();
    const live = (): Pod[] => pods.filter((p) => !p.terminated);
    discovery.set(live().map((p) => p.daemon.address));
    gate = await startGate(
      configFor({ targets: pods.map((p) => p.daemon.address).join(','), 'grpc-listen': '127.0.0.1:0', 'http-listen': 'off', 'admin-listen': '127.0.0.1:0', 'log-level': 'silent', 'decision-log': 'none', drain: '0ms' }),
      { scheduler: sched, logger, pollScheduler: neverPolls(sched), discovery },
    );
    await gate.poller.pollNow();

    const start = sched.now();
    let created = 0;
    let rolloutEnd: number | undefined;
    let settledAt: number | undefined;
    let gapMs = 0;
    let rr = 0;

    const createNext = async (): Promise<void> => {
      created++;
      const daemon = await newDaemon(`new-${created}`);
      const pod: Pod = { daemon, old: false, ready: false, terminated: false, probe: undefined };
      if (readiness === 'probe') {
        pod.probe = await startProbe(probeConfigFor({ target: daemon.address, listen: '127.0.0.1:0', 'log-level': 'silent' }), { scheduler: sched, logger, pollScheduler: neverPolls(sched) });
        await pod.probe.pollNow();
      }
      pods.push(pod);
      discovery.set(live().map((p) => p.daemon.address));
    };
    const isReady = async (pod: Pod): Promise<boolean> => {
      const url = pod.probe !== undefined ? `http://127.0.0.1:${pod.probe.port}/readyz` : `${pod.daemon.url}/health/check`;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    };
    const terminate = async (pod: Pod): Promise<void> => {
      // The endpoint is gone from the Service and from discovery at once; then the process stops.
      pod.terminated = true;
      pod.ready = false;
      discovery.set(live().map((p) => p.daemon.address));
      await pod.probe?.close();
      await pod.daemon.close();
    };
    const runsEverything = (pod: Pod): boolean => pod.daemon.snapshot().plugins.every((s) => s.phase === 'running');

    await createNext();
    while (sched.now() - start < plan.limitMs) {
      sched.advance(STEP_MS);
      const t = sched.now() - start;
      if (t % POLL_EVERY_MS === 0) await Promise.all([gate.poller.pollNow(), ...live().flatMap((p) => (p.probe === undefined ? [] : [p.probe.pollNow()]))]);

      // The kubelet and the Deployment controller.
      if (t % KUBELET_PERIOD_MS === 0) {
        for (const pod of live()) if (!pod.old && !pod.ready) pod.ready = await isReady(pod);
        const surplus = live().filter((p) => p.ready).length - plan.replicas;
        const oldLeft = live().filter((p) => p.old);
        if (surplus > 0 && oldLeft.length > 0) {
          await terminate(oldLeft[0]!);
          if (live().some((p) => p.old)) await createNext();
          else rolloutEnd ??= t;
        }
      }

      // One request per plugin through each front.
      const endpoints = live().filter((p) => p.ready);
      const runsOn = (p: Pod, id: string): boolean => p.daemon.snapshot().plugins.some((s) => s.id === id && s.phase === 'running');
      if (plan.plugins.some((spec) => !endpoints.some((p) => runsOn(p, spec.id)))) gapMs += STEP_MS;
      for (const spec of plan.plugins) {
        const oldRuns = live().some((p) => p.old && runsOn(p, spec.id));

        const target = endpoints[rr++ % Math.max(1, endpoints.length)];
        const viaService = target === undefined ? 'failed' : await send(target.daemon.address, spec.id);
        tally(fronts.service, viaService, oldRuns);

        const d = gate.service.check(dispatchRequest(spec.id), 'http').decision;
        if (!d.allow) tally(fronts.gate, 'held', oldRuns);
        else tally(fronts.gate, d.upstream === undefined ? 'failed' : await send(d.upstream, spec.id), oldRuns);
      }

      if (rolloutEnd !== undefined && settledAt === undefined && live().every(runsEverything)) settledAt = t;
      if (settledAt !== undefined) break;
    }
    const end = sched.now() - start;
    return { readiness, fronts, rolloutMs: rolloutEnd ?? end, settledMs: settledAt ?? end, gapMs, cutOff: settledAt === undefined };
  } finally {
    await gate?.close();
    await Promise.all(pods.map(async (p) => {
      await p.probe?.close();
      await p.daemon.close();
    }));
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
    `${plan.replicas} daemon pods with ${plan.plugins.length} plugins (launches of ${Math.min(...plan.plugins.map((p) => p.launchMs)) / 1000}–${Math.max(...plan.plugins.map((p) => p.launchMs)) / 1000} s, two at a time), replaced one by one: maxSurge 1, maxUnavailable 0;`,
    'the kubelet checks a new pod every 5 s; an old pod is terminated (endpoint and process gone at once) when a new one is Ready;',
    'every second one request per plugin through a plain Service (round robin over Ready pods) and through the gate (its decision, then the pod it names);',
    'daemon time is simulated (one manual clock for daemons, gate and probes); every request is real HTTP to a simulated daemon;',
    'counted until every new pod runs every plugin.',
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
