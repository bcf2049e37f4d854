/**
 * kubernetes: a rolling update seen through Kubernetes discovery. The gate
 * watches EndpointSlices on the API-server stand-in (test/support/kube-api.ts:
 * real TLS, bearer token, list JSON, newline-delimited watch events) while
 * real gRPC Checks stream through it. The update is the simulator's
 * (src/sim/rollout.ts, maxSurge 1 / maxUnavailable 0, readiness on
 * /health/check): each step is written to the stand-in as the EndpointSlice
 * controller would write it — a new pod's endpoint, an old pod's endpoint
 * turning terminating (its daemon still answers: the grace period), and that
 * endpoint gone once the pod is.
 *
 * Every Check is stamped when sent and when answered, and counted against
 * what the gate had seen by then (its snapshot listener runs inside the
 * swap): the goal is 0 Checks routed to a pod sent after the gate saw it
 * terminating, and so 0 routed to a pod after its exit. It also prints how
 * long the gate took from the API write to its own view (the watch's path).
 * Real time on a shared machine: the latency figures move with load, the
 * counts do not depend on it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { configFor } from '../src/config/config.js';
import { startGate, type RunningGate } from '../src/app/app.js';
import { createLogger } from '../src/observe/logger.js';
import type { SimDaemon } from '../src/sim/daemon.js';
import { SimFleet } from '../src/sim/fleet.js';
import { Kubelet, rollingUpdate } from '../src/sim/rollout.js';
import { EnvoyAuthClient, dispatchCheck } from '../test/support/envoy-client.js';
import { KubeApiStandIn, type StandInSlice } from '../test/support/kube-api.js';
import type { BenchContext } from './context.js';

const SERVICE = 'plugin-daemon';
const PLUGIN = 'langgenius/openai';

export interface TerminatingResult {
  readonly checks: number;
  /** Checks sent after the gate saw the pod terminating that still named it. */
  readonly toTerminatingAfterSeen: number;
  /** Checks answered after the pod's process exited that named it. */
  readonly toExitedPod: number;
  /** Checks allowed to any pod while it was terminating but before the gate had seen it (the watch's latency). */
  readonly toTerminatingBeforeSeen: number;
  /** API write of `terminating: true` → the gate's snapshot showing it, ms per pod. */
  readonly seenAfterMs: readonly number[];
  readonly denied: number;
}

export interface TerminatingPlan {
  readonly replicas: number;
  /** How long an old pod keeps answering once terminating (its preStop / grace), ms. */
  readonly graceMs: number;
  /** Deployment minReadySeconds: how long a new pod is Ready before an old one goes, ms. */
  readonly minReadyMs: number;
  /** Checks in flight at once. */
  readonly concurrency: number;
}

export const FULL: TerminatingPlan = { replicas: 3, graceMs: 1_000, minReadyMs: 500, concurrency: 8 };
export const QUICK: TerminatingPlan = { replicas: 2, graceMs: 300, minReadyMs: 300, concurrency: 4 };

function portOf(d: SimDaemon): number {
  return Number(d.address.split(':').pop());
}

/** One slice per pod: the simulated pods share 127.0.0.1 and differ by port, and a slice's port is per slice. */
function sliceOf(name: string, d: SimDaemon, terminating: boolean): StandInSlice {
  return {
    name: `${SERVICE}-${name}`,
    service: SERVICE,
    endpoints: [{ ip: '127.0.0.1', pod: name, ready: !terminating, serving: true, terminating }],
    ports: [{ name: 'http', port: portOf(d) }],
  };
}

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function runTerminating(plan: TerminatingPlan, tmp: string): Promise<TerminatingResult> {
  const api = await KubeApiStandIn.start({ tokens: ['bench-token'], services: [`dify/${SERVICE}`] });
  const dir = mkdtempSync(join(tmp, 'kube-'));
  writeFileSync(join(dir, 'token'), 'bench-token');
  writeFileSync(join(dir, 'ca.crt'), api.ca.certPem);
  writeFileSync(
    join(dir, 'kubeconfig'),
    `current-context: b\nclusters: [{name: c, cluster: {server: "${api.url}", certificate-authority: ca.crt}}]\n` +
      `users: [{name: u, user: {tokenFile: token}}]\ncontexts: [{name: b, context: {cluster: c, user: u, namespace: dify}}]\n`,
  );
  const fleet = new SimFleet({ pods: plan.replicas, plugins: [{ id: PLUGIN, launchMs: 100 }] });
  let kubelet: Kubelet | undefined;
  let gate: RunningGate | undefined;
  let client: EnvoyAuthClient | undefined;
  try {
    await fleet.start();
    for (const pod of fleet.pods) api.setSlice(sliceOf(pod.name, pod, false));
    gate = await startGate(
      configFor({
        'grpc-listen': '127.0.0.1:0',
        'http-listen': 'off',
        'admin-listen': '127.0.0.1:0',
        'log-level': 'silent',
        'decision-log': 'none',
        'poll-interval': '200ms',
        'stale-after': '2s',
        'startup-grace': '0ms',
        drain: '0ms',
        discovery: 'kubernetes',
        kubeconfig: join(dir, 'kubeconfig'),
        'kubernetes-service': SERVICE,
        'kubernetes-port': 'http',
      }),
      { logger: createLogger('silent') },
    );
    const g = gate;
    const readyOn = (address: string): boolean => g.snapshot().plugins.get(PLUGIN)?.readyPods.includes(address) === true;
    await until('the fleet ready in the gate', () => fleet.pods.every((d) => readyOn(d.address)));

    // What the gate has seen, stamped inside the snapshot swap.
    const seenTerminating = new Map<string, number>();
    g.tracker.onSnapshot((snap) => {
      for (const p of snap.pods.values()) if (p.state === 'terminating' && !seenTerminating.has(p.address)) seenTerminating.set(p.address, performance.now());
    });
    const terminatingFrom = new Map<string, number>();
    const exitedAt = new Map<string, number>();

    client = new EnvoyAuthClient(g.grpcPort);
    const c = client;
    const answers: { sentAt: number; doneAt: number; upstream: string | undefined }[] = [];
    let running = true;
    const worker = async (): Promise<void> => {
      while (running) {
        const sentAt = performance.now();
        const out = await c.check(dispatchCheck(PLUGIN));
        answers.push({ sentAt, doneAt: performance.now(), upstream: out.metadata['upstream_host'] });
      }
    };
    const workers = Array.from({ length: plan.concurrency }, () => worker());
    try {
      // The sim's rolling update (src/sim/rollout.ts), its steps written to the API as the
      // EndpointSlice controller would: surge → a new endpoint, terminating → the endpoint's
      // condition, removed → the endpoint gone. The process exit in between is the sim's own.
      kubelet = new Kubelet(fleet, { periodMs: 100 });
      const update = rollingUpdate(fleet, kubelet, {
        minReadyMs: plan.minReadyMs,
        terminationDelayMs: plan.graceMs,
        onEvent: (e) => {
          if (e.kind === 'surge') api.setSlice(sliceOf(e.pod.name, e.pod, false));
          else if (e.kind === 'terminating') {
            terminatingFrom.set(e.address, performance.now());
            api.setSlice(sliceOf(e.pod.name, e.pod, true));
          } else if (e.kind === 'exit') exitedAt.set(e.address, performance.now());
          else if (e.kind === 'removed') api.deleteSlice(`${SERVICE}-${e.pod.name}`);
        },
      });
      await update.done;
      if (update.error !== undefined) throw update.error;
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      running = false;
      await Promise.all(workers);
    }

    let toTerminatingAfterSeen = 0;
    let toTerminatingBeforeSeen = 0;
    let toExitedPod = 0;
    let denied = 0;
    for (const a of answers) {
      if (a.upstream === undefined) {
        denied++;
        continue;
      }
      const seen = seenTerminating.get(a.upstream);
      const from = terminatingFrom.get(a.upstream);
      const exited = exitedAt.get(a.upstream);
      if (seen !== undefined && a.sentAt > seen) toTerminatingAfterSeen++;
      else if (from !== undefined && a.sentAt > from) toTerminatingBeforeSeen++;
      if (exited !== undefined && a.doneAt > exited) toExitedPod++;
    }
    const seenAfterMs = [...terminatingFrom].map(([address, t]) => (seenTerminating.get(address) ?? NaN) - t);
    return { checks: answers.length, toTerminatingAfterSeen, toExitedPod, toTerminatingBeforeSeen, seenAfterMs, denied };
  } finally {
    kubelet?.stop();
    client?.close();
    await gate?.close();
    await fleet.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchKubernetes(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const plan = ctx.quick ? QUICK : FULL;
  report.section('kubernetes', 'rolling update through EndpointSlice discovery: Checks to terminating and exited pods', [
    `${plan.replicas} SimDaemons, each in its own EndpointSlice on the API-server stand-in (TLS, bearer token, list + watch);`,
    'the gate (kubernetes discovery, polls every 200 ms) answers real gRPC Checks, ' + `${plan.concurrency} in flight;`,
    `the simulator's rolling update (maxSurge 1, Ready on /health/check, minReady ${plan.minReadyMs} ms): each old endpoint turns terminating, ${plan.graceMs} ms later its process exits and its endpoint is deleted;`,
    'each Check is stamped when sent and answered against the moment the gate\'s snapshot first showed the pod terminating.',
  ]);
  const r = await runTerminating(plan, ctx.tmp);
  report.figure('kubernetes', 'Checks routed to a pod sent after the gate saw it terminating', String(r.toTerminatingAfterSeen), '', `goal 0; of ${r.checks} Checks`);
  report.figure('kubernetes', 'Checks routed to a pod answered after its process exited', String(r.toExitedPod), '', 'goal 0');
  report.figure('kubernetes', 'Checks routed to a terminating pod before the gate saw it', String(r.toTerminatingBeforeSeen), '', 'sent in the watch\'s own latency');
  const ms = r.seenAfterMs.map((x) => x.toFixed(1)).join(', ');
  report.figure('kubernetes', 'API write of terminating → the gate\'s view', ms, 'ms per pod', 'real time, loopback watch; moves with machine load');
  if (r.denied > 0) report.note(`${r.denied} Checks denied (none expected: a ready pod was there throughout)`);
}
