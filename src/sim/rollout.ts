/**
 * The fleet changes operators meet every day, played on a running SimFleet:
 * a Deployment's rolling update, and a pod that crashes.
 *
 * ## API
 *
 * ```ts
 * const kubelet = new Kubelet(fleet, { ready, periodMs, failureThreshold }); // readiness of every pod
 * const update = rollingUpdate(fleet, kubelet, { minReadyMs, terminationDelayMs, removalDelayMs, onEvent });
 * await update.done;                                   // every old pod replaced, every step in update.events
 * const crash = crashPod(fleet, fleet.pods[1], { downMs, onEvent });
 * await crash.done;                                    // the pod is back, cold, at the same address
 * kubelet.endpoints();                                 // what kube-proxy / a plain gateway balances over now
 * kubelet.stop();
 * ```
 *
 * **rollingUpdate** is maxSurge 1 / maxUnavailable 0. For each pod of the fleet
 * as it was when the update began, in order:
 *   1. `surge`: one new pod joins the fleet, cold (its process starts now and
 *      launches every plugin; it is discovered at once, as a headless Service
 *      with publishNotReadyAddresses lists it);
 *   2. `ready`: the kubelet finds it Ready, and it stays so for `minReadyMs`;
 *   3. `terminating`: one old pod is marked for deletion (no longer a Ready
 *      endpoint; an EndpointSlice says `terminating: true`); its process exits
 *      `terminationDelayMs` later (`exit`: connections closed, the port refuses),
 *      and it leaves the fleet `removalDelayMs` after that (`removed`: its
 *      Kubernetes object is gone, so discovery drops it);
 * and the next surge begins as soon as the old pod is terminating.
 *
 * **crashPod** kills a pod without warning (`exit`: the process dies, the port
 * refuses), and after `downMs` the kubelet's restart brings it `back` at the
 * same address as a new process, cold. It never leaves the fleet.
 *
 * **Readiness is injectable.** `Kubelet`'s `ready(pod, signal)` decides when a
 * pod counts as Ready, which is what lets a rolling update move on and what a
 * plain gateway balances over. The default, `healthCheckReady`, is what
 * Kubernetes does with the daemon today: a readinessProbe on `/health/check`,
 * which answers 200 as soon as the HTTP server is up, before any plugin runs.
 * Pass another predicate (one asking a readiness sidecar, say) to run the same
 * update under another readiness policy and compare the figures.
 *
 * Time: every wait is on the fleet's scheduler (system or manual); `ready`
 * itself may do real I/O. Every step is reported to `onEvent` as it happens,
 * with the scheduler time, and kept in `events`.
 */
import { delay, type Scheduler, type TimerHandle } from '../core/clock.js';
import { GateError } from '../core/errors.js';
import type { SimDaemon } from './daemon.js';
import type { SimFleet } from './fleet.js';

export type RolloutEventKind = 'surge' | 'ready' | 'terminating' | 'exit' | 'removed' | 'back';

export interface RolloutEvent {
  readonly kind: RolloutEventKind;
  /** Scheduler time. */
  readonly at: number;
  readonly pod: SimDaemon;
  /** The pod's `IP:port` (kept here: it stays what the pod had, even once the pod is gone). */
  readonly address: string;
}

/** When a pod counts as Ready. Must not throw (a throw counts as not Ready); honour `signal` on long I/O. */
export type Readiness = (pod: SimDaemon, signal: AbortSignal) => Promise<boolean>;

/**
 * The daemon's readiness as Kubernetes sees it today: `GET /health/check`
 * answers 200 within the probe timeout (kubelet `timeoutSeconds`, 1 s).
 */
export function healthCheckReady(timeoutMs = 1_000): Readiness {
  return async (pod, signal) => {
    try {
      const res = await fetch(`${pod.url}/health/check`, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  };
}

export interface KubeletOptions {
  /** Default `healthCheckReady()`. */
  readonly ready?: Readiness;
  /** readinessProbe `periodSeconds`, in scheduler ms; default 1000. */
  readonly periodMs?: number;
  /** readinessProbe `failureThreshold`: failed probes in a row before a Ready pod is not; default 3. */
  readonly failureThreshold?: number;
}

interface Probed {
  ready: boolean;
  failures: number;
  terminating: boolean;
  timer: TimerHandle | undefined;
  probing: boolean;
  waiters: (() => void)[];
}

/**
 * Probes every pod of the fleet (pods joining later too) every `periodMs`, and
 * keeps who is Ready. Pods present when it starts are taken as Ready (a
 * settled fleet before an update). `endpoints()` is what kube-proxy or a
 * gateway without the gate sends traffic to: Ready pods not terminating.
 */
export class Kubelet {
  private readonly ready: Readiness;
  private readonly periodMs: number;
  private readonly failureThreshold: number;
  private readonly scheduler: Scheduler;
  private readonly pods = new Map<SimDaemon, Probed>();
  private readonly abort = new AbortController();
  private readonly unsubscribe: () => void;
  private stopped = false;

  constructor(
    private readonly fleet: SimFleet,
    opts: KubeletOptions = {},
  ) {
    this.ready = opts.ready ?? healthCheckReady();
    this.periodMs = Math.max(1, opts.periodMs ?? 1_000);
    this.failureThreshold = Math.max(1, opts.failureThreshold ?? 3);
    this.scheduler = fleet.scheduler;
    for (const pod of fleet.pods) this.track(pod, true);
    this.unsubscribe = fleet.onChange((pods) => {
      for (const pod of pods) if (!this.pods.has(pod)) this.track(pod, false);
      for (const [pod, p] of this.pods) {
        if (pods.includes(pod)) continue;
        if (p.timer !== undefined) this.scheduler.clearTimeout(p.timer);
        this.pods.delete(pod);
      }
    });
  }

  isReady(pod: SimDaemon): boolean {
    return this.pods.get(pod)?.ready === true;
  }

  /** Ready pods that are not terminating, in fleet order. */
  endpoints(): SimDaemon[] {
    return this.fleet.pods.filter((pod) => {
      const p = this.pods.get(pod);
      return p !== undefined && p.ready && !p.terminating;
    });
  }

  /** The pod is being deleted: never an endpoint again. */
  terminate(pod: SimDaemon): void {
    const p = this.pods.get(pod);
    if (p !== undefined) p.terminating = true;
  }

  /** Resolves once the pod is Ready (at once if it is), or when the kubelet stops. */
  whenReady(pod: SimDaemon): Promise<void> {
    const p = this.pods.get(pod);
    if (p === undefined || p.ready || this.stopped) return Promise.resolve();
    return new Promise((resolve) => p.waiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    this.abort.abort();
    for (const p of this.pods.values()) {
      if (p.timer !== undefined) this.scheduler.clearTimeout(p.timer);
      p.timer = undefined;
      for (const w of p.waiters.splice(0)) w();
    }
  }

  private track(pod: SimDaemon, ready: boolean): void {
    const p: Probed = { ready, failures: 0, terminating: false, timer: undefined, probing: false, waiters: [] };
    this.pods.set(pod, p);
    // A new pod is probed at once (initialDelaySeconds 0), a known one after a period.
    if (ready) this.schedule(pod, p);
    else void this.probe(pod, p);
  }

  private schedule(pod: SimDaemon, p: Probed): void {
    if (this.stopped || this.pods.get(pod) !== p) return;
    p.timer = this.scheduler.setTimeout(() => {
      p.timer = undefined;
      void this.probe(pod, p);
    }, this.periodMs);
  }

  private async probe(pod: SimDaemon, p: Probed): Promise<void> {
    if (p.probing || this.stopped) return;
    p.probing = true;
    let ok = false;
    try {
      ok = await this.ready(pod, this.abort.signal);
    } catch {
      ok = false;
    }
    p.probing = false;
    if (this.stopped || this.pods.get(pod) !== p) return;
    if (ok) {
      p.failures = 0;
      if (!p.ready) {
        p.ready = true;
        for (const w of p.waiters.splice(0)) w();
      }
    } else if (++p.failures >= this.failureThreshold) {
      p.ready = false;
    }
    this.schedule(pod, p);
  }
}

export interface RollingUpdateOptions {
  /** Deployment `minReadySeconds`, in scheduler ms; default 0. */
  readonly minReadyMs?: number;
  /** From `terminating` to the process exiting (preStop, SIGTERM handling), scheduler ms; default 0. */
  readonly terminationDelayMs?: number;
  /** From the exit to the pod leaving the fleet (its object deleted), scheduler ms; default 0. */
  readonly removalDelayMs?: number;
  /** The new pods' time scale, if not the fleet's (see SimFleet.addPod). */
  readonly newPodTimeScale?: number;
  readonly onEvent?: (event: RolloutEvent) => void;
}

export interface Rollout {
  /** Every step so far, in order. */
  readonly events: readonly RolloutEvent[];
  /** Resolves when every step is done (never rejects: a failure ends the run early, in `error`). */
  readonly done: Promise<void>;
  /** Set when a step failed (the fleet was closed under it, a pod would not start). */
  readonly error: GateError | undefined;
}

class Recorder {
  readonly events: RolloutEvent[] = [];
  error: GateError | undefined;
  constructor(
    private readonly scheduler: Scheduler,
    private readonly onEvent: ((event: RolloutEvent) => void) | undefined,
  ) {}

  emit(kind: RolloutEventKind, pod: SimDaemon, address: string): void {
    const event: RolloutEvent = { kind, at: this.scheduler.now(), pod, address };
    this.events.push(event);
    try {
      this.onEvent?.(event);
    } catch {
      // An observer's bug must not stop the scenario.
    }
  }

  fail(err: unknown): void {
    this.error ??= GateError.from(err);
  }

  rollout(done: Promise<void>): Rollout {
    const rec = this;
    return {
      events: this.events,
      done,
      get error() {
        return rec.error;
      },
    };
  }
}

/** See the module comment: maxSurge 1 / maxUnavailable 0 over the fleet's pods as they are now. */
export function rollingUpdate(fleet: SimFleet, kubelet: Kubelet, opts: RollingUpdateOptions = {}): Rollout {
  const rec = new Recorder(fleet.scheduler, opts.onEvent);
  const old = [...fleet.pods];
  const exits: Promise<void>[] = [];
  const run = async (): Promise<void> => {
    for (const victim of old) {
      const fresh = await fleet.addPod(opts.newPodTimeScale === undefined ? {} : { timeScale: opts.newPodTimeScale });
      rec.emit('surge', fresh, fresh.address);
      await kubelet.whenReady(fresh);
      if (!kubelet.isReady(fresh)) throw new GateError('internal', `${fresh.name} never became Ready (the kubelet stopped)`);
      rec.emit('ready', fresh, fresh.address);
      if ((opts.minReadyMs ?? 0) > 0) await delay(fleet.scheduler, opts.minReadyMs ?? 0);
      exits.push(terminate(fleet, kubelet, victim, rec, opts).catch((err: unknown) => rec.fail(err)));
    }
  };
  const done = run()
    .catch((err: unknown) => rec.fail(err))
    .then(() => Promise.all(exits))
    .then(() => undefined);
  return rec.rollout(done);
}

async function terminate(fleet: SimFleet, kubelet: Kubelet, pod: SimDaemon, rec: Recorder, opts: RollingUpdateOptions): Promise<void> {
  const address = pod.address;
  kubelet.terminate(pod);
  rec.emit('terminating', pod, address);
  if ((opts.terminationDelayMs ?? 0) > 0) await delay(fleet.scheduler, opts.terminationDelayMs ?? 0);
  // Reported as the kill is issued: the sockets close within the same turn, so an
  // exit time taken here is never later than the real one.
  rec.emit('exit', pod, address);
  await pod.close();
  if ((opts.removalDelayMs ?? 0) > 0) await delay(fleet.scheduler, opts.removalDelayMs ?? 0);
  await fleet.removePod(pod);
  rec.emit('removed', pod, address);
}

export interface CrashOptions {
  /** How long the pod stays down before its new process starts, scheduler ms; default 0. */
  readonly downMs?: number;
  readonly onEvent?: (event: RolloutEvent) => void;
}

/** See the module comment: the pod's process dies now and comes back cold, at the same address, after `downMs`. */
export function crashPod(fleet: SimFleet, pod: SimDaemon, opts: CrashOptions = {}): Rollout {
  const rec = new Recorder(fleet.scheduler, opts.onEvent);
  const address = pod.address;
  rec.emit('exit', pod, address);
  const done = pod
    .restart({ downMs: opts.downMs ?? 0 })
    .then(() => {
      // restart() also returns when the fleet closes under it: only a listening pod is back.
      if (pod.snapshot().listening) rec.emit('back', pod, address);
    })
    .catch((err: unknown) => rec.fail(err));
  return rec.rollout(done);
}
