/**
 * The state rules: how one pod's latest reports become pod and plugin states.
 * Pure functions of (reports, config, now). Each rule is a row of the README's
 * state table and has a test in rules.spec.ts.
 */
import type { PluginId } from '../core/plugin-id.js';
import type { MetricsData, ReadyData } from '../status/types.js';
import type { PluginOnPod, PluginState, PodView } from './types.js';

export interface RuleConfig {
  readonly daemonRetryLimit: number;
  readonly startupGraceMs: number;
  readonly startupMaxMs: number;
  /** A plugin between retries whose gauge and failure count have not moved for this long has stopped retrying. 0 = never. */
  readonly retryStallMs: number;
}

/** What the rules know of one pod: its freshest good data per source. */
export interface PodData {
  readonly metrics: MetricsData | undefined;
  /** Ready-check data, only while it is fresh (the tracker drops stale data). */
  readonly ready: ReadyData | undefined;
  /** When the gate first saw the pod; stands in for the process start time until metrics give it. */
  readonly firstSeenAt: number;
  /**
   * The daemon's retry limit as its /ready/check last reported it for this process
   * (a 503 carries it; a 200 does not, so it is remembered).
   */
  readonly learnedMaxRetries?: number | undefined;
  /** Per plugin with a series: when its gauge or failure count last changed (gate clock). */
  readonly changedAt?: ReadonlyMap<PluginId, { readonly since: number }>;
}

/** Ready-check reasons (daemon PR #600) that mean "still launching". */
const STARTUP_REASONS: ReadonlySet<string> = new Set(['manager_not_initialized', 'plugin_monitor_not_ready', 'plugins_starting']);

export function retryLimit(d: PodData, cfg: RuleConfig): number {
  // A daemon with /ready/check reports its own limit (PLUGIN_LOCAL_MAX_RETRY_COUNT); trust it over ours.
  return d.ready?.detail?.maxRetries ?? d.learnedMaxRetries ?? cfg.daemonRetryLimit;
}

/**
 * Between retries the gauge is 0 for at most the daemon's retry wait (60 s
 * upstream, 120 s with PR #600); every attempt shows as launching (0.5). A
 * plugin whose gauge and failure count have not moved for retry-stall is not
 * being retried any more, whatever the count says (a daemon whose limit the
 * gate does not know, a runtime stopped for good).
 */
export function retryStalled(id: PluginId, d: PodData, cfg: RuleConfig, now: number): boolean {
  return now > retryStallAfter(id, d, cfg);
}

/**
 * The last moment a plugin between retries still counts as retrying (past it,
 * retryStalled holds): when its gauge and failure count last changed, plus
 * retry-stall. Infinity when it cannot stall (retry-stall 0, no change seen).
 * This is the one way the rules depend on time besides the pod's age.
 */
export function retryStallAfter(id: PluginId, d: PodData, cfg: RuleConfig): number {
  if (cfg.retryStallMs <= 0) return Infinity;
  const since = d.changedAt?.get(id)?.since;
  return since === undefined ? Infinity : since + cfg.retryStallMs;
}

/**
 * Is the pod still launching its plugins? While it is, a plugin it does not
 * report yet may simply be queued behind the launch limit (the daemon publishes
 * no series for queued plugins), so "absent" must read as "starting".
 */
export function podInStartup(d: PodData, cfg: RuleConfig, now: number, signal: StartupSignal = startupSignal(d, cfg)): boolean {
  const startedAt = d.metrics?.processStartMs ?? d.firstSeenAt;
  const age = now - startedAt;
  if (age < cfg.startupGraceMs) return true; // before the daemon's first scan has published anything
  if (age > cfg.startupMaxMs) return false; // bound: a pod can't claim start-up forever
  return signal.always || now <= signal.until;
}

/**
 * What the pod's data alone says about start-up (S3-S6): yes outright
 * (`always`), or yes until `until`, the moment the last retry it waits for
 * stalls (S5). Free of `now`, so the tracker computes it once per report and
 * asks it at any later time without going stale.
 */
export interface StartupSignal {
  readonly always: boolean;
  readonly until: number;
}

export function startupSignal(d: PodData, cfg: RuleConfig): StartupSignal {
  const yes: StartupSignal = { always: true, until: Infinity };
  if (d.ready !== undefined && !d.ready.ready && STARTUP_REASONS.has(d.ready.reason)) return yes;
  const m = d.metrics;
  if (m === undefined) return yes; // no plugin data at all yet: nothing proves the launch queue is empty
  const limit = retryLimit(d, cfg);
  let until = -Infinity;
  for (const [id, g] of m.runtimeStatus) {
    if (g > 0 && g < 1) return yes; // launching: the queue is moving
    if (g === 0) {
      const f = m.failedLaunches.get(id) ?? 0;
      if (f > 0 && f < limit) until = Math.max(until, retryStallAfter(id, d, cfg)); // waiting for a retry, until it stalls
    }
  }
  return { always: false, until };
}

/**
 * A settled pod: live, past start-up, no plugin launching or between retries.
 * What can still change on it comes as an event (a plugin crashes or is
 * installed, the process exits), so it can be polled less often: its exit
 * shows at once through its closed status connection.
 */
export function podSettled(pod: PodView | undefined): boolean {
  if (pod === undefined || pod.state !== 'live' || pod.inStartup) return false;
  for (const p of pod.plugins.values()) if (p.state === 'starting') return false;
  return true;
}

/**
 * How long a settled pod waits between polls: settled-poll-interval, never
 * below poll-interval, and short enough that the pod's data cannot go stale
 * between two polls (the longest wait plus a read stays within stale-after).
 */
export function settledPollInterval(c: {
  readonly pollIntervalMs: number;
  readonly settledPollIntervalMs: number;
  readonly staleAfterMs: number;
  readonly pollTimeoutMs: number;
  readonly pollJitterPercent: number;
}): number {
  const freshBound = Math.floor((c.staleAfterMs - c.pollTimeoutMs) / (1 + c.pollJitterPercent / 100)) - 1;
  return Math.max(c.pollIntervalMs, Math.min(c.settledPollIntervalMs, freshBound));
}

/** State of one plugin on one pod. */
export function pluginOnPod(id: PluginId, d: PodData, inStartup: boolean, cfg: RuleConfig, now: number): PluginOnPod {
  const m = d.metrics;
  const gauge = m?.runtimeStatus.get(id);
  const failedLaunches = m?.failedLaunches.get(id) ?? 0;
  const restarts = m?.restarts.get(id) ?? 0;
  const limit = retryLimit(d, cfg);
  const detail = d.ready?.detail;
  const mk = (state: PluginState, why: string): PluginOnPod => ({ state, gauge, failedLaunches, restarts, why });

  if (gauge !== undefined && gauge >= 1) return mk('ready', 'running');
  if (detail !== undefined && detail.failed.includes(id)) return mk('failed', 'the daemon lists it as failed');
  if (gauge !== undefined && gauge > 0) return mk('starting', 'launching');
  if (gauge !== undefined) {
    if (failedLaunches >= limit) return mk('failed', `gave up after ${failedLaunches} failed launches`);
    if (failedLaunches > 0) {
      if (retryStalled(id, d, cfg, now)) return mk('failed', `no launch attempt for ${Math.round(cfg.retryStallMs / 1000)}s after ${failedLaunches} failed launch${failedLaunches === 1 ? '' : 'es'}`);
      return mk('starting', `retrying after ${failedLaunches} failed launch${failedLaunches === 1 ? '' : 'es'}`);
    }
    // Gauge 0 without failed launches: stopped. During start-up that is a launch
    // about to be retried; afterwards it is a plugin the daemon stopped.
    return inStartup ? mk('starting', 'stopped during start-up') : mk('absent', 'stopped');
  }
  if (detail !== undefined && detail.missing.includes(id)) return mk('starting', 'the daemon lists it as missing');
  if (failedLaunches >= limit) return mk('failed', `gave up after ${failedLaunches} failed launches`);
  return mk('absent', inStartup ? 'no series yet (queued behind the launch limit)' : 'not running on this pod');
}

/** Every plugin id the pod's data mentions. */
export function pluginsOf(d: PodData): Set<PluginId> {
  const ids = new Set<PluginId>();
  if (d.metrics !== undefined) {
    for (const id of d.metrics.runtimeStatus.keys()) ids.add(id);
    for (const id of d.metrics.failedLaunches.keys()) ids.add(id);
  }
  if (d.ready?.detail !== undefined) {
    for (const id of d.ready.detail.missing) ids.add(id);
    for (const id of d.ready.detail.failed) ids.add(id);
  }
  return ids;
}
