/**
 * The fleet tracker: the one writer of the fleet view. Discovery tells it which
 * pods exist, the poller hands it reports; after each change it builds a new
 * immutable snapshot and swaps it in. Readers only ever hold a snapshot.
 */
import type { Clock } from '../core/clock.js';
import type { GateError } from '../core/errors.js';
import type { PluginId } from '../core/plugin-id.js';
import type { Endpoint } from '../discovery/types.js';
import type { MetricsData, PodReport, ReadyData } from '../status/types.js';
import { pluginOnPod, pluginsOf, podInStartup, startupSignal, type PodData, type RuleConfig } from './rules.js';
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
  signal: { polls: number; readyFresh: boolean; value: boolean } | undefined;
  cached: { polls: number; readyFresh: boolean; view: PodView } | undefined;
}

/** A transition worth a log line: pod state or plugin state on a pod changed. */
export type FleetChange =
  | { readonly kind: 'pod'; readonly pod: string; readonly name?: string | undefined; readonly from: PodState | 'new'; readonly to: PodState; readonly error: GateError | undefined }
  | { readonly kind: 'plugin'; readonly pod: string; readonly name?: string | undefined; readonly plugin: PluginId; readonly from: PluginOnPod['state']; readonly to: PluginOnPod['state']; readonly why: string };

export type SnapshotListener = (snap: FleetSnapshot, changes: readonly FleetChange[]) => void;

const EMPTY_PLUGINS: ReadonlyMap<PluginId, PluginOnPod> = new Map();

export class FleetTracker {
  private readonly pods = new Map<string, PodRecord>();
  private discovered = false;
  private discoveryError: GateError | undefined;
  private current: FleetSnapshot;
  private version = 0;
  private readonly listeners: SnapshotListener[] = [];
  /** The last plugin index and what it was built from. */
  private index: { key: readonly unknown[]; plugins: ReadonlyMap<PluginId, PluginView> } | undefined;
  /** Plugin sightings past max-plugins in the latest snapshot: counted, never indexed or labelled. */
  droppedPlugins = 0;

  constructor(
    private readonly cfg: TrackerConfig,
    private readonly clock: Clock,
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
    // A lookup that failed outright has not discovered the fleet: the gate stays
    // not-ready until discovery has answered once (an empty answer counts).
    if (error === undefined || error.code === 'discovery_empty') this.discovered = true;
    this.discoveryError = error;
    this.swap();
  }

  ingest(report: PodReport): void {
    const rec = this.pods.get(report.pod);
    if (rec === undefined || rec.removedAt !== undefined) return; // a late answer from a pod already gone
    rec.polls += 1;
    rec.lastReportAt = report.at;
    let answered = false;
    let firstError: GateError | undefined;
    const note = (e: GateError): void => {
      firstError ??= e;
    };
    if (report.metrics !== undefined) {
      if (report.metrics.ok) {
        answered = true;
        const m = report.metrics.data;
        if (rec.metrics !== undefined && m.processStartMs !== rec.metrics.processStartMs) {
          // A new daemon process: nothing learned about the old one holds.
          rec.learnedMaxRetries = undefined;
          rec.series.clear();
        }
        if (rec.metrics === undefined || m.processStartMs !== rec.metrics.processStartMs) {
          rec.startAheadSeenAt = m.processStartMs !== undefined && m.processStartMs > report.at ? report.at : undefined;
        }
        trackSeries(rec.series, m, report.at);
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
    }
    // Keep the last error even after a partial success: /status shows why a source is failing.
    rec.lastError = firstError;
    this.swap();
  }

  /** Re-evaluate time-based states (stale, start-up, retention) without a new report. */
  tick(): void {
    const now = this.clock.now();
    for (const [a, rec] of this.pods) {
      if (rec.removedAt !== undefined && now - rec.removedAt > this.cfg.removedRetentionMs) this.pods.delete(a);
    }
    this.swap();
  }

  /** Capped at max-plugins: plugins past the cap are counted, not indexed. */
  private buildIndex(pods: ReadonlyMap<string, PodView>): Map<PluginId, PluginView> {
    let unindexed = 0;
    const byPlugin = new Map<PluginId, { ready: string[]; starting: string[]; failed: string[] }>();
    for (const pod of pods.values()) {
      const isLive = pod.state === 'live';
      for (const [id, p] of pod.plugins) {
        let b = byPlugin.get(id);
        if (b === undefined) {
          if (byPlugin.size >= this.cfg.maxPlugins) {
            unindexed++;
            continue;
          }
          b = { ready: [], starting: [], failed: [] };
          byPlugin.set(id, b);
        }
        // Plugins on pods that are not live are listed (in /status) but never counted as anywhere.
        if (!isLive) continue;
        if (p.state === 'ready') b.ready.push(pod.address);
        else if (p.state === 'starting') b.starting.push(pod.address);
        else if (p.state === 'failed') b.failed.push(pod.address);
      }
    }
    this.droppedPlugins = unindexed;
    const out = new Map<PluginId, PluginView>();
    for (const [id, b] of byPlugin) {
      out.set(id, { id, readyPods: b.ready, startingPods: b.starting, failedPods: b.failed });
    }
    return out;
  }

  private swap(): void {
    const prev = this.current;
    const changes: FleetChange[] = [];
    this.current = this.build(changes, prev);
    for (const l of this.listeners) {
      try {
        l(this.current, changes);
      } catch {
        // A listener (log, metrics) must never break the view.
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

    const addresses = [...this.pods.keys()].sort();
    for (const address of addresses) {
      const rec = this.pods.get(address)!;
      if (rec.removedAt === undefined && rec.polls === 0) complete = false;
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
      // The data-only half of the start-up rule changes only with a report: computed once per report.
      if (rec.signal === undefined || rec.signal.polls !== rec.polls || rec.signal.readyFresh !== readyFresh) {
        rec.signal = { polls: rec.polls, readyFresh, value: startupSignal(dataOf(), cfg, now) };
      }
      const inStartup = state === 'live' && podInStartup(dataOf(), cfg, now, rec.signal.value);
      // A pod's view is rebuilt only when its data or a time-dependent state changed:
      // with many pods and plugins, a report then costs one pod's work, not the fleet's.
      const c = rec.cached;
      let view: PodView;
      if (c !== undefined && c.polls === rec.polls && c.readyFresh === readyFresh && c.view.state === state && c.view.inStartup === inStartup && c.view.endpoint === rec.endpoint) {
        view = c.view;
      } else {
        let plugins = new Map<PluginId, PluginOnPod>();
        if (state !== 'removed') for (const id of pluginsOf(dataOf())) plugins.set(id, pluginOnPod(id, dataOf(), inStartup, cfg, now));
        // Same plugin states as before (the usual report of a settled pod): keep the old map,
        // so the plugin index below can be kept too.
        if (c !== undefined && samePlugins(c.view.plugins, plugins)) plugins = c.view.plugins as Map<PluginId, PluginOnPod>;
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
        };
        rec.cached = { polls: rec.polls, readyFresh, view };
        if (prev !== undefined) diffPod(prev.pods.get(address), view, changes);
      }
      pods.set(address, view);
      if (state === 'live') {
        live.push(view);
        if (inStartup) startup.push(view);
      }
    }

    // The per-plugin index. It depends only on which pods are live and on their
    // plugin maps; when neither changed since the last build, it is kept whole.
    const indexKey: unknown[] = [];
    for (const pod of pods.values()) if (pod.plugins.size > 0) indexKey.push(pod.address, pod.state === 'live', pod.plugins);
    let plugins: ReadonlyMap<PluginId, PluginView>;
    if (this.index !== undefined && sameKey(this.index.key, indexKey)) {
      plugins = this.index.plugins;
    } else {
      plugins = this.buildIndex(pods);
      this.index = { key: indexKey, plugins };
    }
    return {
      version: ++this.version,
      builtAt: now,
      complete,
      pods,
      livePods: live,
      startupPods: startup,
      plugins,
      discoveryError: this.discoveryError,
    };
  }
}

/** Records when each plugin's (gauge, failures) last changed; plugins without a series are dropped. */
function trackSeries(series: Map<PluginId, { gauge: number | undefined; failed: number; since: number }>, m: MetricsData, at: number): void {
  const seen = new Set<PluginId>();
  const note = (id: PluginId): void => {
    if (seen.has(id)) return;
    seen.add(id);
    const gauge = m.runtimeStatus.get(id);
    const failed = m.failedLaunches.get(id) ?? 0;
    const prev = series.get(id);
    if (prev === undefined || prev.gauge !== gauge || prev.failed !== failed) series.set(id, { gauge, failed, since: at });
  };
  for (const id of m.runtimeStatus.keys()) note(id);
  for (const id of m.failedLaunches.keys()) note(id);
  for (const id of series.keys()) if (!seen.has(id)) series.delete(id);
}

function samePlugins(a: ReadonlyMap<PluginId, PluginOnPod>, b: ReadonlyMap<PluginId, PluginOnPod>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, x] of b) {
    const y = a.get(id);
    if (y === undefined || y.state !== x.state || y.gauge !== x.gauge || y.failedLaunches !== x.failedLaunches || y.restarts !== x.restarts || y.why !== x.why) return false;
  }
  return true;
}

function sameKey(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
  };
}

/**
 * removed: gone from discovery. terminating: discovery says the pod is being
 * deleted (it may still answer, but gets no new requests). unreachable: N polls
 * in a row got no answer from any source. stale: no good plugin data (metrics)
 * within the bound, including a pod never read yet. live: otherwise.
 */
export function podState(rec: Pick<PodRecord, 'removedAt' | 'consecutiveFailures' | 'metricsAt'> & { readonly endpoint?: Endpoint | undefined }, cfg: TrackerConfig, now: number): PodState {
  if (rec.removedAt !== undefined) return 'removed';
  if (rec.endpoint?.terminating === true) return 'terminating';
  if (rec.consecutiveFailures >= cfg.unreachableAfter) return 'unreachable';
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
