/**
 * The fleet tracker: the one writer of the fleet view. Discovery tells it which
 * pods exist, the poller hands it reports; after each change it builds a new
 * immutable snapshot and swaps it in. Readers only ever hold a snapshot.
 */
import type { Clock, Scheduler, TimerHandle } from '../core/clock.js';
import { GateError } from '../core/errors.js';
import type { PluginId } from '../core/plugin-id.js';
import type { Endpoint } from '../discovery/types.js';
import type { MetricsData, PodReport, ReadyData } from '../status/types.js';
import { pluginOnPod, pluginsOf, podInStartup, startupSignal, type PodData, type RuleConfig, type StartupSignal } from './rules.js';
import type { FleetSnapshot, PluginOnPod, PluginView, PodState, PodView } from './types.js';

export interface TrackerConfig extends RuleConfig {
  readonly unreachableAfter: number;
  readonly staleAfterMs: number;
  readonly removedRetentionMs: number;
  readonly maxPlugins: number;
}

interface PodRecord {
  readonly address: string;
  firstSeenAt: number;
  removedAt: number | undefined;
  /** From discovery that knows it (Kubernetes); replaced only when it changes by value. */
  endpoint: Endpoint | undefined;
  polls: number;
  consecutiveFailures: number;
  lastReportAt: number | undefined;
  lastSuccessAt: number | undefined;
  lastError: GateError | undefined;
  /**
   * Set when a poll got no answer and some source was refused at connect: nothing
   * listens, the daemon process is gone. Cleared by the next answer, which is then
   * a new process (see `newProcess`).
   */
  refusedAt: number | undefined;
  metrics: MetricsData | undefined;
  metricsAt: number | undefined;
  ready: ReadyData | undefined;
  readyAt: number | undefined;
  version: string | undefined;
  platform: string | undefined;
  /** The daemon's retry limit from its last /ready/check detail, for the current process. */
  learnedMaxRetries: number | undefined;
  /**
   * Set when the current process reported a start time in the gate's future (a
   * daemon clock ahead): that start time is unknown, and the process counts from
   * when the gate first saw it, so startup-max still bounds its start-up.
   */
  startAheadSeenAt: number | undefined;
  /** Per plugin with a series: its last (gauge, failures) and when they last changed. */
  series: Map<PluginId, { gauge: number | undefined; failed: number; since: number }>;
  signal: { polls: number; readyFresh: boolean; value: StartupSignal } | undefined;
  /**
   * The plugin map last computed, and the data it came from. A settled pod's
   * report usually carries the very same data (the metrics reader hands back
   * the same object when the plugin families are byte-identical): the map is
   * then kept without evaluating a rule, unless some plugin's state can change
   * with time alone (a retry that may stall).
   */
  derived: { readonly from: DerivedFrom; readonly plugins: ReadonlyMap<PluginId, PluginOnPod>; readonly validUntil: number } | undefined;
  /**
   * The last view and what it was built from. `validUntil`: the first time at
   * which a time-based state of the pod could change (stale, ready-check data
   * expiring, a start-up bound, a retry stalling); before it, and with no new
   * report, the view still holds and costs nothing to keep.
   */
  cached: { polls: number; readyFresh: boolean; removedAt: number | undefined; endpoint: Endpoint | undefined; validUntil: number; view: PodView } | undefined;
}

/** A transition worth a log line: pod state or plugin state on a pod changed. */
export type FleetChange =
  | { readonly kind: 'pod'; readonly pod: string; readonly name?: string | undefined; readonly from: PodState | 'new'; readonly to: PodState; readonly error: GateError | undefined }
  | { readonly kind: 'plugin'; readonly pod: string; readonly name?: string | undefined; readonly plugin: PluginId; readonly from: PluginOnPod['state']; readonly to: PluginOnPod['state']; readonly why: string };

export type SnapshotListener = (snap: FleetSnapshot, changes: readonly FleetChange[]) => void;

/**
 * How long a quiet report (see `quietFreshUntil`) may wait to be published. A settled
 * fleet answers with byte-identical plugin families: such a report moves only
 * the pod's freshness and last-heard times forward, and publishing each one at
 * once cost a snapshot build per report (500 pods every 6 s: ~80 builds a
 * second, each walking every pod). Waiting coalesces them into a few builds a
 * second. It is safe because the pod's current view stays fresh for at least
 * stale-after − (settled poll interval + poll timeout) more, and a deferred
 * publish never waits past half of what remains of it.
 */
export const QUIET_PUBLISH_MS = 250;

const EMPTY_PLUGINS: ReadonlyMap<PluginId, PluginOnPod> = new Map();

export class FleetTracker {
  private readonly pods = new Map<string, PodRecord>();
  private discovered = false;
  /** The first complete poll round has happened: from then on the snapshot stays complete. */
  private firstRoundDone = false;
  private discoveryError: GateError | undefined;
  private current: FleetSnapshot;
  private version = 0;
  private readonly listeners: SnapshotListener[] = [];
  /** The last plugin index and what it was built from. */
  private index: PluginIndex | undefined;
  /** Pod addresses in order; recomputed only when the set of records changes. */
  private order: string[] | undefined;
  /** Distinct plugin-on-pod values, shared between pods and builds (see `shared`). */
  private readonly values = new Map<string, PluginOnPod>();
  /** A record was deleted since the last build: the index may still list it. */
  private forgotten = false;
  /** Plugin sightings past max-plugins in the latest snapshot: counted, never indexed or labelled. */
  droppedPlugins = 0;
  /** The same, per pod (pods with none are absent): shown in /status. */
  droppedByPod: ReadonlyMap<string, number> = new Map();

  /** A deferred publish of quiet reports: when it is due, and its timer. */
  private pending: { due: number; timer: TimerHandle } | undefined;

  constructor(
    private readonly cfg: TrackerConfig,
    private readonly clock: Clock,
    /** Gets what a snapshot listener throws (background work never throws). */
    private readonly onListenerError: (error: GateError) => void = () => undefined,
    /** With a scheduler, quiet reports are published within QUIET_PUBLISH_MS instead of at once. */
    private readonly deferQuiet?: Scheduler,
  ) {
    this.current = this.build([]);
  }

  snapshot(): FleetSnapshot {
    return this.current;
  }

  onSnapshot(listener: SnapshotListener): void {
    this.listeners.push(listener);
  }

  /**
   * Discovery's current set. A pod that leaves is kept as `removed` for a while, then forgotten.
   * `endpoints` (Kubernetes) names the pods and marks the terminating ones, which stop being routed to at once.
   */
  setPods(addresses: readonly string[], error?: GateError, endpoints?: ReadonlyMap<string, Endpoint>): void {
    const now = this.clock.now();
    const keep = new Set(addresses);
    for (const a of addresses) {
      let rec = this.pods.get(a);
      if (rec === undefined || rec.removedAt !== undefined || differentPod(rec.endpoint, endpoints?.get(a))) {
        // New, or back again (the same IP reused, perhaps by another pod): start over, nothing old is trusted.
        rec = newRecord(a, now);
        this.pods.set(a, rec);
      }
      const ep = endpoints?.get(a);
      if (!sameEndpoint(rec.endpoint, ep)) rec.endpoint = ep;
    }
    for (const rec of this.pods.values()) {
      if (!keep.has(rec.address) && rec.removedAt === undefined) rec.removedAt = now;
    }
    this.order = undefined;
    // A lookup that failed outright has not discovered the fleet: the gate stays
    // not-ready until discovery has answered once (an empty answer counts).
    if (error === undefined || error.code === 'discovery_empty') this.discovered = true;
    this.discoveryError = error;
    this.swap();
  }

  ingest(report: PodReport): void {
    const rec = this.pods.get(report.pod);
    if (rec === undefined || rec.removedAt !== undefined) return; // a late answer from a pod already gone
    const quietUntil = this.deferQuiet !== undefined ? quietFreshUntil(rec, report) : undefined;
    rec.polls += 1;
    rec.lastReportAt = report.at;
    // A pod that refused connections and answers again runs a new daemon process,
    // even one that does not publish process_start_time_seconds.
    if (rec.refusedAt !== undefined && (report.metrics?.ok === true || report.ready?.ok === true || report.health?.ok === true)) {
      newProcess(rec, report.at);
    }
    let answered = false;
    let refused = false;
    let firstError: GateError | undefined;
    const note = (e: GateError): void => {
      firstError ??= e;
      if (e.code === 'status_refused') refused = true;
    };
    if (report.metrics !== undefined) {
      if (report.metrics.ok) {
        answered = true;
        const m = report.metrics.data;
        if (rec.metrics !== undefined && m.processStartMs !== rec.metrics.processStartMs) newProcess(rec, report.at);
        if (rec.metrics === undefined || m.processStartMs !== rec.metrics.processStartMs) {
          rec.startAheadSeenAt = m.processStartMs !== undefined && m.processStartMs > report.at ? report.at : undefined;
        }
        // The same object again: the reader found the plugin families unchanged, so is every series.
        if (m !== rec.metrics) trackSeries(rec.series, m, report.at);
        rec.metrics = m;
        rec.metricsAt = report.at;
      } else note(report.metrics.error);
    }
    if (report.ready !== undefined) {
      if (report.ready.ok) {
        answered = true;
        rec.ready = report.ready.data;
        rec.readyAt = report.at;
        rec.learnedMaxRetries = report.ready.data.detail?.maxRetries ?? rec.learnedMaxRetries;
      } else note(report.ready.error);
    }
    if (report.health !== undefined) {
      if (report.health.ok) {
        answered = true;
        rec.version = report.health.data.version ?? rec.version;
        rec.platform = report.health.data.platform ?? rec.platform;
      } else note(report.health.error);
    }
    if (answered) {
      rec.consecutiveFailures = 0;
      rec.lastSuccessAt = report.at;
    } else {
      rec.consecutiveFailures += 1;
      // Refused at connect: nothing listens at the address, the process has exited
      // (a timeout or a reset may be a passing hiccup, so those keep the counting rule).
      if (refused) rec.refusedAt ??= report.at;
    }
    // Keep the last error even after a partial success: /status shows why a source is failing.
    rec.lastError = firstError;
    if (quietUntil !== undefined) this.publishLater(quietUntil);
    else this.swap();
  }

  /**
   * Publishes within QUIET_PUBLISH_MS, and before half of what remains of the
   * pod's current freshness (`freshUntil`) has passed; at once when that is
   * (nearly) now. One timer serves every quiet report until it fires.
   */
  private publishLater(freshUntil: number): void {
    const sched = this.deferQuiet!;
    const now = sched.now();
    const due = Math.min(now + QUIET_PUBLISH_MS, now + (freshUntil - now) / 2);
    if (due - now < 1) {
      this.swap();
      return;
    }
    if (this.pending !== undefined) {
      if (this.pending.due <= due) return;
      sched.clearTimeout(this.pending.timer);
    }
    const timer = sched.setTimeout(() => {
      this.pending = undefined;
      this.swap();
    }, due - now);
    this.pending = { due, timer };
  }

  /** Re-evaluate time-based states (stale, start-up, retention) without a new report. */
  tick(): void {
    const now = this.clock.now();
    for (const [a, rec] of this.pods) {
      if (rec.removedAt !== undefined && now - rec.removedAt > this.cfg.removedRetentionMs) {
        this.pods.delete(a);
        this.order = undefined;
        this.forgotten = true;
      }
    }
    this.swap();
  }

  /**
   * Capped at max-plugins: plugins past the cap are counted per pod, not
   * indexed. Which plugins get in must not depend on which pod sorts first (one
   * pod reporting thousands of series once hid every other pod's plugins), so:
   * first every plugin ready, starting or failed on some live pod, then the
   * rest (absent, or only on pods that are not live); within each tier the pods
   * take turns, one plugin each per round.
   */
  private buildIndex(pods: ReadonlyMap<string, PodView>): Map<PluginId, PluginView> {
    const admitted = admitPlugins(pods, this.cfg.maxPlugins);
    const byPlugin = new Map<PluginId, { ready: string[]; starting: string[]; failed: string[] }>();
    for (const id of admitted) byPlugin.set(id, { ready: [], starting: [], failed: [] });
    let unindexed = 0;
    const droppedByPod = new Map<string, number>();
    for (const pod of pods.values()) {
      const isLive = pod.state === 'live';
      let dropped = 0;
      for (const [id, p] of pod.plugins) {
        const b = byPlugin.get(id);
        if (b === undefined) {
          dropped++;
          continue;
        }
        // Plugins on pods that are not live are listed (in /status) but never counted as anywhere.
        if (!isLive) continue;
        if (p.state === 'ready') b.ready.push(pod.address);
        else if (p.state === 'starting') b.starting.push(pod.address);
        else if (p.state === 'failed') b.failed.push(pod.address);
      }
      if (dropped > 0) droppedByPod.set(pod.address, dropped);
      unindexed += dropped;
    }
    this.droppedPlugins = unindexed;
    this.droppedByPod = droppedByPod;
    const out = new Map<PluginId, PluginView>();
    for (const [id, b] of byPlugin) {
      out.set(id, { id, readyPods: b.ready, startingPods: b.starting, failedPods: b.failed });
    }
    return out;
  }

  /**
   * The per-plugin index. It depends only on which pods are live and on their
   * plugin maps: kept whole when none of those changed since the last build,
   * patched for the few pods that did (a report changes one pod), and built
   * from scratch otherwise. Patching costs the changed pods' plugins, not the
   * fleet's: during a whole-fleet cold start every report changes its pod.
   */
  private indexFor(pods: ReadonlyMap<string, PodView>, touched: readonly string[]): ReadonlyMap<PluginId, PluginView> {
    const prev = this.index;
    if (prev !== undefined) {
      const changed: string[] = [];
      for (const address of touched) {
        const pod = pods.get(address)!;
        const b = prev.basis.get(address);
        if (b === undefined ? pod.plugins.size > 0 : b.plugins !== pod.plugins || b.live !== (pod.state === 'live')) changed.push(address);
      }
      // Records forgotten since the last build (removed-retention passed).
      if (prev.basis.size > 0 && this.forgotten) for (const address of prev.basis.keys()) if (!pods.has(address)) changed.push(address);
      this.forgotten = false;
      if (changed.length === 0) return prev.plugins;
      if (this.droppedPlugins === 0 && changed.length <= PATCH_MAX_PODS) {
        const patched = patchIndex(prev, changed, pods, this.cfg.maxPlugins);
        if (patched !== undefined) {
          this.index = patched;
          return patched.plugins;
        }
      }
    }
    const plugins = this.buildIndex(pods);
    this.index = indexOf(plugins, pods);
    return plugins;
  }

  /**
   * One object per distinct plugin-on-pod value: 500 pods running the same 200
   * plugins hold a handful of objects, not 100,000. Bounded; past the bound a
   * value is simply not shared.
   */
  private shared(p: PluginOnPod): PluginOnPod {
    const key = `${p.state}|${p.gauge}|${p.failedLaunches}|${p.restarts}|${p.why}`;
    const known = this.values.get(key);
    if (known !== undefined) return known;
    if (this.values.size < SHARED_VALUES) this.values.set(key, p);
    return p;
  }

  private swap(): void {
    // A full build publishes every deferred report too.
    if (this.pending !== undefined) {
      this.deferQuiet!.clearTimeout(this.pending.timer);
      this.pending = undefined;
    }
    const prev = this.current;
    const changes: FleetChange[] = [];
    this.current = this.build(changes, prev);
    for (const l of this.listeners) {
      try {
        l(this.current, changes);
      } catch (err) {
        // A listener (log, metrics) must never break the view; its failure is reported, once per throw.
        try {
          this.onListenerError(GateError.from(err));
        } catch {
          // nowhere left to report to
        }
      }
    }
  }

  private build(changes: FleetChange[], prev?: FleetSnapshot): FleetSnapshot {
    const now = this.clock.now();
    const cfg = this.cfg;
    const pods = new Map<string, PodView>();
    const live: PodView[] = [];
    const startup: PodView[] = [];
    let complete = this.discovered;
    /** Pods whose plugin map or liveness may differ from what the index reflects. */
    const touched: string[] = [];

    const addresses = (this.order ??= [...this.pods.keys()].sort());
    for (const address of addresses) {
      const rec = this.pods.get(address)!;
      if (rec.removedAt === undefined && rec.polls === 0) complete = false;
      const c = rec.cached;
      // No report and no time bound passed since the view was built: it holds as it is. This keeps a
      // build (one per report) from costing every pod's rules: a round of N reports is not N² work.
      if (c !== undefined && c.polls === rec.polls && c.removedAt === rec.removedAt && c.endpoint === rec.endpoint && now < c.validUntil) {
        pods.set(address, c.view);
        if (c.view.state === 'live') {
          live.push(c.view);
          if (c.view.inStartup) startup.push(c.view);
        }
        continue;
      }
      // Ready-check data is used only while fresh: its lists must not outlive the bound.
      const readyFresh = rec.readyAt !== undefined && now - rec.readyAt <= cfg.staleAfterMs;
      const state = podState(rec, cfg, now);
      let data: PodData | undefined;
      const dataOf = (): PodData =>
        (data ??= {
          metrics: rec.startAheadSeenAt === undefined || rec.metrics === undefined ? rec.metrics : { ...rec.metrics, processStartMs: undefined },
          ready: readyFresh ? rec.ready : undefined,
          firstSeenAt: rec.startAheadSeenAt ?? rec.firstSeenAt,
          learnedMaxRetries: rec.learnedMaxRetries,
          changedAt: rec.series,
        });
      // The data-only half of the start-up rule changes only with a report: computed once per report
      // (it says until when a waiting retry keeps the pod in start-up, so asking it later is exact).
      if (rec.signal === undefined || rec.signal.polls !== rec.polls || rec.signal.readyFresh !== readyFresh) {
        rec.signal = { polls: rec.polls, readyFresh, value: startupSignal(dataOf(), cfg) };
      }
      const inStartup = state === 'live' && podInStartup(dataOf(), cfg, now, rec.signal.value);
      // A pod's view is rebuilt only when its data or a time-dependent state changed:
      // with many pods and plugins, a report then costs one pod's work, not the fleet's.
      let view: PodView;
      // A new report or a time bound passed: the view is built again (its plugin map is kept if its inputs are).
      {
        const from: DerivedFrom = { metrics: rec.metrics, ready: readyFresh ? rec.ready : undefined, learned: rec.learnedMaxRetries, inStartup, removed: state === 'removed' };
        const d = rec.derived;
        let plugins: ReadonlyMap<PluginId, PluginOnPod>;
        if (d !== undefined && now < d.validUntil && sameFrom(d.from, from)) {
          plugins = d.plugins;
        } else {
          const fresh = new Map<PluginId, PluginOnPod>();
          let validUntil = Infinity;
          if (state !== 'removed') {
            for (const id of pluginsOf(dataOf())) {
              const p = pluginOnPod(id, dataOf(), inStartup, cfg, now);
              // Between retries (gauge 0, some failures) the state turns to failed once the retry stalls.
              if (p.gauge === 0 && p.failedLaunches > 0 && cfg.retryStallMs > 0) {
                const since = rec.series.get(id)?.since;
                if (since !== undefined) validUntil = Math.min(validUntil, upcoming(since + cfg.retryStallMs, now));
              }
              // Most plugins of a reporting pod did not move: their old value is reused without building a key.
              const was = c?.view.plugins.get(id);
              fresh.set(id, was !== undefined && samePlugin(was, p) ? was : this.shared(p));
            }
          }
          // Same plugin states as before (the usual report of a settled pod): keep the old map,
          // so the plugin index below can be kept too.
          plugins = c !== undefined && samePlugins(c.view.plugins, fresh) ? c.view.plugins : fresh;
          rec.derived = { from, plugins, validUntil };
        }
        view = {
          address,
          name: rec.endpoint?.podName,
          endpoint: rec.endpoint,
          state,
          freshUntil: state === 'live' && rec.metricsAt !== undefined ? rec.metricsAt + cfg.staleAfterMs : -Infinity,
          inStartup,
          startedAt: rec.metrics?.processStartMs,
          version: rec.version,
          platform: rec.platform,
          lastReportAt: rec.lastReportAt,
          lastSuccessAt: rec.lastSuccessAt,
          consecutiveFailures: rec.consecutiveFailures,
          lastError: rec.lastError,
          plugins: plugins.size === 0 ? EMPTY_PLUGINS : plugins,
          droppedSeries: rec.metrics?.droppedSeries ?? 0,
        };
        if (prev !== undefined) diffPod(prev.pods.get(address), view, changes);
        if (c === undefined || c.view.plugins !== view.plugins || c.view.state !== view.state) touched.push(address);
      }
      const startedAt = dataOf().metrics?.processStartMs ?? dataOf().firstSeenAt;
      const validUntil = Math.min(
        rec.metricsAt === undefined ? Infinity : upcoming(rec.metricsAt + cfg.staleAfterMs, now),
        rec.readyAt === undefined ? Infinity : upcoming(rec.readyAt + cfg.staleAfterMs, now),
        upcoming(startedAt + cfg.startupGraceMs, now),
        upcoming(startedAt + cfg.startupMaxMs, now),
        upcoming(rec.signal.value.until, now),
        rec.derived?.validUntil ?? Infinity,
      );
      rec.cached = { polls: rec.polls, readyFresh, removedAt: rec.removedAt, endpoint: rec.endpoint, validUntil, view };
      pods.set(address, view);
      if (state === 'live') {
        live.push(view);
        if (inStartup) startup.push(view);
      }
    }

    // Complete means the *first* round is done (D0). A pod discovered later (a scale-up, a
    // rolling update's new pod) is stale until read and so never routed to, but must not make
    // the whole gate deny every request, nor flap its /readyz, until that first read lands.
    if (complete) this.firstRoundDone = true;
    const plugins = this.indexFor(pods, touched);
    return {
      version: ++this.version,
      builtAt: now,
      complete: complete || this.firstRoundDone,
      pods,
      livePods: live,
      startupPods: startup,
      plugins,
      discoveryError: this.discoveryError,
      droppedPlugins: this.droppedByPod,
    };
  }
}

/**
 * A quiet report changes nothing a decision or a log line reads: a live pod
 * past start-up, answering every source it was asked with the very same
 * metrics object (the reader hands back the previous one when the plugin
 * families are byte-identical), no ready-check data, the same version and
 * platform, after a clean last poll. Returns the pod's current freshUntil when
 * quiet (the bound a deferred publish must beat), undefined otherwise.
 */
function quietFreshUntil(rec: PodRecord, report: PodReport): number | undefined {
  const view = rec.cached?.view;
  if (view === undefined || view.state !== 'live' || view.inStartup) return undefined;
  if (rec.consecutiveFailures !== 0 || rec.refusedAt !== undefined || rec.lastError !== undefined) return undefined;
  const m = report.metrics;
  if (m === undefined || !m.ok || m.data !== rec.metrics || report.ready !== undefined) return undefined;
  const h = report.health;
  if (h !== undefined && (!h.ok || (h.data.version ?? rec.version) !== rec.version || (h.data.platform ?? rec.platform) !== rec.platform)) return undefined;
  return view.freshUntil;
}

/** Records when each plugin's (gauge, failures) last changed; plugins without a series, or running cleanly, are dropped. */
function trackSeries(series: Map<PluginId, { gauge: number | undefined; failed: number; since: number }>, m: MetricsData, at: number): void {
  const seen = new Set<PluginId>();
  const note = (id: PluginId): void => {
    if (seen.has(id)) return;
    const gauge = m.runtimeStatus.get(id);
    const failed = m.failedLaunches.get(id) ?? 0;
    // Running with no failed launch: nothing the rules time (only a plugin between retries is).
    // Not kept, so a settled pod holds no entry per plugin; if it stops, its change is timed from then.
    if (gauge === 1 && failed === 0) return;
    seen.add(id);
    const prev = series.get(id);
    if (prev === undefined || prev.gauge !== gauge || prev.failed !== failed) series.set(id, { gauge, failed, since: at });
  };
  for (const id of m.runtimeStatus.keys()) note(id);
  for (const id of m.failedLaunches.keys()) note(id);
  for (const id of series.keys()) if (!seen.has(id)) series.delete(id);
}

/** A time bound still ahead of (or at) `now`; one already passed changes nothing more. */
function upcoming(at: number, now: number): number {
  return at >= now ? at : Infinity;
}

/** What a pod's plugin map is computed from, besides the time. */
interface DerivedFrom {
  readonly metrics: MetricsData | undefined;
  readonly ready: ReadyData | undefined;
  readonly learned: number | undefined;
  readonly inStartup: boolean;
  readonly removed: boolean;
}

function sameFrom(a: DerivedFrom, b: DerivedFrom): boolean {
  return a.metrics === b.metrics && a.ready === b.ready && a.learned === b.learned && a.inStartup === b.inStartup && a.removed === b.removed;
}

function samePlugins(a: ReadonlyMap<PluginId, PluginOnPod>, b: ReadonlyMap<PluginId, PluginOnPod>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, x] of b) {
    const y = a.get(id);
    if (y === undefined || !samePlugin(y, x)) return false;
  }
  return true;
}

function samePlugin(a: PluginOnPod, b: PluginOnPod): boolean {
  return a === b || (a.state === b.state && a.gauge === b.gauge && a.failedLaunches === b.failedLaunches && a.restarts === b.restarts && a.why === b.why);
}

function newRecord(address: string, now: number): PodRecord {
  return {
    address,
    firstSeenAt: now,
    removedAt: undefined,
    endpoint: undefined,
    polls: 0,
    consecutiveFailures: 0,
    lastReportAt: undefined,
    lastSuccessAt: undefined,
    lastError: undefined,
    refusedAt: undefined,
    metrics: undefined,
    metricsAt: undefined,
    ready: undefined,
    readyAt: undefined,
    version: undefined,
    platform: undefined,
    learnedMaxRetries: undefined,
    startAheadSeenAt: undefined,
    series: new Map(),
    signal: undefined,
    cached: undefined,
    derived: undefined,
  };
}

/**
 * The daemon process at this address was replaced (it refused connections and
 * answers again, or its process_start_time_seconds changed): nothing learned
 * about the old process holds. Its start time is the new process's, else the
 * time it answered again, so the start-up rules apply afresh.
 */
function newProcess(rec: PodRecord, at: number): void {
  rec.firstSeenAt = at;
  rec.refusedAt = undefined;
  rec.metrics = undefined;
  rec.metricsAt = undefined;
  rec.ready = undefined;
  rec.readyAt = undefined;
  rec.version = undefined;
  rec.platform = undefined;
  rec.learnedMaxRetries = undefined;
  rec.startAheadSeenAt = undefined;
  rec.series.clear();
}

/**
 * removed: gone from discovery. terminating: discovery says the pod is being
 * deleted (it may still answer, but gets no new requests). unreachable: the
 * last poll was refused at connect (nothing listens), or N polls in a row got
 * no answer from any source. stale: no good plugin data (metrics) within the
 * bound, including a pod never read yet. live: otherwise.
 */
export function podState(
  rec: Pick<PodRecord, 'removedAt' | 'consecutiveFailures' | 'metricsAt' | 'refusedAt'> & { readonly endpoint?: Endpoint | undefined },
  cfg: TrackerConfig,
  now: number,
): PodState {
  if (rec.removedAt !== undefined) return 'removed';
  if (rec.endpoint?.terminating === true) return 'terminating';
  if (rec.refusedAt !== undefined || rec.consecutiveFailures >= cfg.unreachableAfter) return 'unreachable';
  if (rec.metricsAt === undefined || now - rec.metricsAt > cfg.staleAfterMs) return 'stale';
  return 'live';
}

function sameEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.podName === b.podName && a.ready === b.ready && a.serving === b.serving && a.terminating === b.terminating;
}

/** Another pod at a known address: both named, differently (a new pod got a freed IP). */
function differentPod(known: Endpoint | undefined, now: Endpoint | undefined): boolean {
  return known?.podName !== undefined && now?.podName !== undefined && known.podName !== now.podName;
}

function diffPod(before: PodView | undefined, after: PodView, out: FleetChange[]): void {
  if (before === undefined || before.state !== after.state) {
    out.push({ kind: 'pod', pod: after.address, name: after.name, from: before?.state ?? 'new', to: after.state, error: after.lastError });
  }
  if (after.state !== 'live') return;
  for (const [id, p] of after.plugins) {
    const was = before?.state === 'live' ? before.plugins.get(id)?.state ?? 'absent' : 'absent';
    if (was !== p.state) out.push({ kind: 'plugin', pod: after.address, name: after.name, plugin: id, from: was, to: p.state, why: p.why });
  }
}

/**
 * What the index was built from, per pod, and how many pods mention each
 * plugin. `basis` and `refs` are the tracker's own bookkeeping, never part of a
 * snapshot: patchIndex updates them in place (copying a 500-pod map per report
 * was most of a report's cost during a cold start), so an index that a patch
 * gave up on is discarded and built again from the pods.
 */
interface PluginIndex {
  readonly plugins: ReadonlyMap<PluginId, PluginView>;
  /** Per pod with plugins: the plugin map and liveness the index reflects. */
  readonly basis: Map<string, { readonly plugins: ReadonlyMap<PluginId, PluginOnPod>; readonly live: boolean }>;
  /** Pods (in any state) whose plugin map has the plugin: an entry lives while this is above 0. */
  readonly refs: Map<PluginId, number>;
}

/** Most distinct plugin-on-pod values shared. */
const SHARED_VALUES = 4096;

/** More changed pods than this in one build: rebuilding is as cheap as patching. */
const PATCH_MAX_PODS = 16;

function indexOf(plugins: ReadonlyMap<PluginId, PluginView>, pods: ReadonlyMap<string, PodView>): PluginIndex {
  const basis = new Map<string, { plugins: ReadonlyMap<PluginId, PluginOnPod>; live: boolean }>();
  const refs = new Map<PluginId, number>();
  for (const pod of pods.values()) {
    if (pod.plugins.size === 0) continue;
    basis.set(pod.address, { plugins: pod.plugins, live: pod.state === 'live' });
    for (const id of pod.plugins.keys()) refs.set(id, (refs.get(id) ?? 0) + 1);
  }
  return { plugins, basis, refs };
}

type Listed = 'ready' | 'starting' | 'failed' | undefined;

function listed(live: boolean, p: PluginOnPod | undefined): Listed {
  if (!live || p === undefined) return undefined;
  return p.state === 'absent' ? undefined : p.state;
}

/**
 * The index after `changed` pods moved from their basis to their view in
 * `pods`, or undefined when a new plugin would pass max-plugins (the full build
 * decides what is dropped). Lists stay in address order, as the full build
 * makes them; untouched plugins keep their view objects.
 */
function patchIndex(prev: PluginIndex, changed: readonly string[], pods: ReadonlyMap<string, PodView>, maxPlugins: number): PluginIndex | undefined {
  // Updated in place: prev is not used again whatever this returns (see PluginIndex).
  const { basis, refs } = prev;
  const touched = new Map<PluginId, { ready: string[]; starting: string[]; failed: string[] }>();
  const EMPTY: ReadonlyMap<PluginId, PluginOnPod> = new Map();
  for (const address of changed) {
    const before = prev.basis.get(address);
    const after = pods.get(address);
    const oldMap = before?.plugins ?? EMPTY;
    const oldLive = before?.live ?? false;
    const newMap = after?.plugins ?? EMPTY;
    const newLive = after?.state === 'live';
    const visit = (id: PluginId): void => {
      const hadIt = oldMap.has(id);
      const hasIt = newMap.has(id);
      if (hadIt !== hasIt) refs.set(id, (refs.get(id) ?? 0) + (hasIt ? 1 : -1));
      const from = listed(oldLive, oldMap.get(id));
      const to = listed(newLive, newMap.get(id));
      if (from === to && hadIt === hasIt) return;
      let t = touched.get(id);
      if (t === undefined) {
        const pv = prev.plugins.get(id);
        t = { ready: [...(pv?.readyPods ?? [])], starting: [...(pv?.startingPods ?? [])], failed: [...(pv?.failedPods ?? [])] };
        touched.set(id, t);
      }
      if (from !== to) {
        if (from !== undefined) removeSorted(t[from], address);
        if (to !== undefined) insertSorted(t[to], address);
      }
    };
    for (const id of oldMap.keys()) visit(id);
    for (const id of newMap.keys()) if (!oldMap.has(id)) visit(id);
    if (after === undefined || after.plugins.size === 0) basis.delete(address);
    else basis.set(address, { plugins: after.plugins, live: newLive });
  }
  const plugins = new Map(prev.plugins);
  for (const [id, t] of touched) {
    if ((refs.get(id) ?? 0) <= 0) {
      refs.delete(id);
      plugins.delete(id);
    } else {
      if (!plugins.has(id) && plugins.size >= maxPlugins) return undefined;
      plugins.set(id, { id, readyPods: t.ready, startingPods: t.starting, failedPods: t.failed });
    }
  }
  return { plugins, basis, refs };
}

/**
 * Which plugins the index holds when their number passes `cap`: plugins
 * running somewhere (ready, starting or failed on a live pod) before the rest,
 * and within each tier the pods in turn, so no pod can crowd out another.
 * Without a cap problem (the usual case) everything is admitted at once.
 */
export function admitPlugins(pods: ReadonlyMap<string, PodView>, cap: number): Set<PluginId> {
  const all = new Set<PluginId>();
  for (const pod of pods.values()) for (const id of pod.plugins.keys()) all.add(id);
  if (all.size <= cap) return all;
  const admitted = new Set<PluginId>();
  const running = new Set<PluginId>();
  const tiers: PluginId[][][] = [[], []];
  for (const pod of pods.values()) {
    const live = pod.state === 'live';
    const mine: PluginId[] = [];
    for (const [id, p] of pod.plugins) {
      if (live && p.state !== 'absent') {
        mine.push(id);
        running.add(id);
      }
    }
    tiers[0]!.push(mine);
  }
  for (const pod of pods.values()) {
    const rest: PluginId[] = [];
    for (const id of pod.plugins.keys()) if (!running.has(id)) rest.push(id);
    tiers[1]!.push(rest);
  }
  for (const lists of tiers) {
    const next = lists.map(() => 0);
    let progress = true;
    while (progress && admitted.size < cap) {
      progress = false;
      for (let i = 0; i < lists.length && admitted.size < cap; i++) {
        const list = lists[i]!;
        // This pod's next plugin not admitted yet (another pod may have brought it in).
        while (next[i]! < list.length && admitted.has(list[next[i]!]!)) next[i]!++;
        if (next[i]! < list.length) {
          admitted.add(list[next[i]!++]!);
          progress = true;
        }
      }
    }
  }
  return admitted;
}

function insertSorted(list: string[], address: string): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < address) lo = mid + 1;
    else hi = mid;
  }
  if (list[lo] !== address) list.splice(lo, 0, address);
}

function removeSorted(list: string[], address: string): void {
  const i = list.indexOf(address);
  if (i >= 0) list.splice(i, 1);
}
