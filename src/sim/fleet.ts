/**
 * A fleet of simulated daemon pods sharing one installed-plugin list, as
 * replicas sharing one database and plugin storage do: each pod launches every
 * plugin itself, so the same plugin becomes ready at different times on
 * different pods.
 */
import { DAEMON_SCAN_INTERVAL_MS } from '../core/daemon.js';
import { GateError } from '../core/errors.js';
import type { PluginId } from '../core/plugin-id.js';
import { SimDaemon, type SimDaemonOptions, type SimEvent } from './daemon.js';
import { checkSpec, uniqueIdentifierFor, type PluginSpec } from './lifecycle.js';
import { systemScheduler, type Scheduler, type TimerHandle } from '../core/clock.js';

/** Fields of a plugin's spec that may differ per pod (a slower disk, a broken venv on one node). */
export type PluginOverride = Partial<Pick<PluginSpec, 'launchMs' | 'failures'>>;

/** A plugin installed through one pod's management API while the fleet runs. */
export interface RuntimeInstall {
  /** When, in daemon ms after `start()` (multiplied by `timeScale`). */
  readonly atMs: number;
  readonly spec: PluginSpec;
  /** 0-based index of the pod that serves the install call. */
  readonly firstPodIndex: number;
}

export interface SimFleetOptions {
  /** Number of pods, named pod-1 … pod-n. */
  readonly pods: number;
  /** Installed on every pod at start, in launch order. */
  readonly plugins: readonly PluginSpec[];
  /** Default `systemScheduler`; share a manual one with the gate under test. */
  readonly scheduler?: Scheduler;
  /** Default 1. */
  readonly timeScale?: number;
  /** Serve `/ready/check` on every pod; default false. */
  readonly readyCheck?: boolean;
  readonly launchConcurrency?: number;
  readonly retryLimit?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Pod i listens on basePort + i; 0 (default) for ephemeral ports. */
  readonly basePort?: number;
  /** Per-pod overrides, by 0-based pod index, then by plugin id. */
  readonly podPlugins?: ReadonlyArray<Readonly<Record<PluginId, PluginOverride>> | undefined>;
  /** Run-time installs scheduled from `start()`. */
  readonly runtimeInstalls?: readonly RuntimeInstall[];
  readonly version?: string;
  readonly onEvent?: (event: SimEvent) => void;
}

/** Called with the fleet's pods after each change of membership (a pod added or removed). */
export type FleetChangeListener = (pods: readonly SimDaemon[]) => void;

export class SimFleet {
  /** Replaced, never mutated, on each change: a reference taken earlier stays as it was. */
  private members: readonly SimDaemon[];
  /** Every pod's timers and every scenario wait run on it. */
  readonly scheduler: Scheduler;
  private readonly timeScale: number;
  private readonly overrides: SimFleetOptions['podPlugins'];
  private readonly runtimeInstalls: readonly RuntimeInstall[];
  private readonly timers = new Set<TimerHandle>();
  private closed = false;
  /** Options every pod shares, for pods added later (`addPod`). */
  private readonly shared: Omit<SimDaemonOptions, 'name' | 'port' | 'plugins'>;
  /** The shared plugin storage: installed at start, installed at run time, minus uninstalled. */
  private installed: PluginSpec[];
  private created: number;
  private readonly changeListeners: FleetChangeListener[] = [];

  constructor(opts: SimFleetOptions) {
    if (!Number.isInteger(opts.pods) || opts.pods < 1) throw new GateError('config_invalid', 'sim fleet: pods must be >= 1');
    const basePort = opts.basePort ?? 0;
    if (!Number.isInteger(basePort) || basePort < 0 || basePort + opts.pods - 1 > 65535) {
      throw new GateError('config_invalid', 'sim fleet: basePort + pods must stay within 0..65535');
    }
    for (const spec of opts.plugins) checkSpec(spec);
    for (const r of opts.runtimeInstalls ?? []) {
      checkSpec(r.spec);
      this.checkPodIndex(r.firstPodIndex, opts.pods);
    }
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.timeScale = opts.timeScale ?? 1;
    this.overrides = opts.podPlugins;
    this.runtimeInstalls = opts.runtimeInstalls ?? [];
    this.shared = {
      scheduler: this.scheduler,
      timeScale: this.timeScale,
      readyCheck: opts.readyCheck ?? false,
      ...(opts.host !== undefined && { host: opts.host }),
      ...(opts.launchConcurrency !== undefined && { launchConcurrency: opts.launchConcurrency }),
      ...(opts.retryLimit !== undefined && { retryLimit: opts.retryLimit }),
      ...(opts.version !== undefined && { version: opts.version }),
      ...(opts.onEvent !== undefined && { onEvent: opts.onEvent }),
    };
    this.installed = [...opts.plugins];
    const pods: SimDaemon[] = [];
    for (let i = 0; i < opts.pods; i++) {
      pods.push(
        new SimDaemon({
          ...this.shared,
          name: `pod-${i + 1}`,
          port: basePort === 0 ? 0 : basePort + i,
          plugins: opts.plugins.map((spec) => this.specFor(i, spec)),
        }),
      );
    }
    this.members = pods;
    this.created = pods.length;
  }

  /** The fleet's pods now, in the order they were created (pods removed by `removePod` are gone). */
  get pods(): readonly SimDaemon[] {
    return this.members;
  }

  /**
   * A new pod joins (a Deployment's surge, a scale-up): pod-(n+1) on an
   * ephemeral port, with every plugin of the shared storage, cold — its
   * process starts now and launches them all. Resolves once it listens.
   * `timeScale` overrides the fleet's for this pod (a demo warms its first pods
   * up fast and lets new ones start at a watchable pace).
   */
  async addPod(opts: { readonly timeScale?: number } = {}): Promise<SimDaemon> {
    if (this.closed) throw new GateError('internal', 'sim fleet is closed');
    const index = this.created++;
    const pod = new SimDaemon({
      ...this.shared,
      ...(opts.timeScale !== undefined && { timeScale: opts.timeScale }),
      name: `pod-${index + 1}`,
      port: 0,
      plugins: this.installed.map((spec) => this.specFor(index, spec)),
    });
    await pod.start();
    if (this.closed) {
      await pod.close();
      throw new GateError('internal', 'sim fleet closed while a pod was being added');
    }
    this.members = [...this.members, pod];
    this.changed();
    return pod;
  }

  /** The pod leaves the fleet (its Kubernetes object is gone); its process exits if it has not already. */
  async removePod(pod: SimDaemon): Promise<void> {
    if (this.members.includes(pod)) {
      this.members = this.members.filter((p) => p !== pod);
      this.changed();
    }
    await pod.close();
  }

  /** Calls `listener` after every membership change; returns a function that unsubscribes. */
  onChange(listener: FleetChangeListener): () => void {
    this.changeListeners.push(listener);
    return () => {
      const i = this.changeListeners.indexOf(listener);
      if (i >= 0) this.changeListeners.splice(i, 1);
    };
  }

  private changed(): void {
    for (const l of [...this.changeListeners]) {
      try {
        l(this.members);
      } catch {
        // An observer's bug must not break the fleet.
      }
    }
  }

  /** `host:port,host:port,…` in pod order: a gate's static target list. */
  get targets(): string {
    return this.pods.map((p) => p.address).join(',');
  }

  async start(): Promise<void> {
    try {
      await Promise.all(this.pods.map((p) => p.start()));
    } catch (err) {
      await this.close();
      throw GateError.from(err);
    }
    for (const r of this.runtimeInstalls) {
      this.later(r.atMs * this.timeScale, () => this.installAtRuntime(r.spec, r.firstPodIndex));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) this.scheduler.clearTimeout(t);
    this.timers.clear();
    await Promise.all(this.pods.map((p) => p.close()));
  }

  /**
   * An install through pod `firstPodIndex`'s management API: it launches there
   * now; the other pods find it on their next 30 s scan (× timeScale).
   * Returns the unique identifier.
   */
  installAtRuntime(spec: PluginSpec, firstPodIndex = 0): string {
    checkSpec(spec);
    this.checkPodIndex(firstPodIndex, this.pods.length);
    this.installed.push(spec);
    this.pods[firstPodIndex]?.install(this.specFor(firstPodIndex, spec));
    this.later(DAEMON_SCAN_INTERVAL_MS * this.timeScale, () => {
      this.pods.forEach((pod, i) => {
        if (i !== firstPodIndex) pod.install(this.specFor(i, spec));
      });
    });
    return uniqueIdentifierFor(spec.id, spec.version);
  }

  /** Uninstalls on every pod at once (shared storage). */
  uninstall(idOrUniqueId: string): void {
    this.installed = this.installed.filter((s) => s.id !== idOrUniqueId && uniqueIdentifierFor(s.id, s.version) !== idOrUniqueId);
    for (const pod of this.pods) pod.uninstall(idOrUniqueId);
  }

  /** Pod by name (`pod-2`) or 0-based index. */
  pod(which: string | number): SimDaemon {
    const found = typeof which === 'number' ? this.pods[which] : this.pods.find((p) => p.name === which);
    if (found === undefined) throw new GateError('internal', `sim fleet has no pod ${String(which)}`);
    return found;
  }

  /** Dispatch hits per pod name for one plugin: where traffic for it landed. */
  hitsFor(pluginId: PluginId): Map<string, number> {
    const out = new Map<string, number>();
    for (const p of this.pods) out.set(p.name, p.stats.hits.get(pluginId) ?? 0);
    return out;
  }

  private specFor(podIndex: number, spec: PluginSpec): PluginSpec {
    const o = this.overrides?.[podIndex]?.[spec.id];
    return o === undefined ? spec : { ...spec, ...o };
  }

  private checkPodIndex(i: number, pods: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= pods) {
      throw new GateError('config_invalid', `sim fleet: pod index ${i} is outside 0..${pods - 1}`);
    }
  }

  private later(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = this.scheduler.setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(t);
  }
}
