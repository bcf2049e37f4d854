/**
 * Builders for fleet snapshots in unit tests: synthetic reports fed through the
 * real FleetTracker, so tests exercise the same rules production does.
 */
import { ManualScheduler } from './manual-scheduler.js';
import { DEFAULTS } from '../../src/config/config.js';
import { GateError } from '../../src/core/errors.js';
import { FleetTracker, type TrackerConfig } from '../../src/fleet/tracker.js';
import type { MetricsData, PodReport, ReadyData } from '../../src/status/types.js';

export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

/** The tracker at the option table's defaults (the one place defaults live). */
export const trackerDefaults: TrackerConfig = DEFAULTS;

export interface PluginSeries {
  /** plugin_runtime_status; omit for "no series". */
  g?: number;
  /** failed launches */
  f?: number;
}

export function metrics(plugins: Record<string, PluginSeries>, processStartMs: number | undefined): MetricsData {
  const runtimeStatus = new Map<string, number>();
  const failedLaunches = new Map<string, number>();
  for (const [id, s] of Object.entries(plugins)) {
    if (s.g !== undefined) runtimeStatus.set(id, s.g);
    if (s.f !== undefined) failedLaunches.set(id, s.f);
  }
  return { runtimeStatus, failedLaunches, restarts: new Map(), processStartMs };
}

export function okReport(pod: string, at: number, m: MetricsData, ready?: ReadyData): PodReport {
  return {
    pod,
    at,
    metrics: { ok: true, data: m, latencyMs: 1 },
    health: { ok: true, data: { version: '0.5.7', platform: 'local', activeDispatchRequests: 0 }, latencyMs: 1 },
    ...(ready === undefined ? {} : { ready: { ok: true as const, data: ready, latencyMs: 1 } }),
  };
}

export function failReport(pod: string, at: number, code: 'status_timeout' | 'status_refused' | 'status_reset' = 'status_refused'): PodReport {
  const error = new GateError(code, code);
  return { pod, at, metrics: { ok: false, error, latencyMs: 1 }, health: { ok: false, error, latencyMs: 1 } };
}

/** A tracker whose pods started long ago (past start-up) unless told otherwise. */
export function newTracker(pods: string[], cfg: Partial<TrackerConfig> = {}, start = T0): { tracker: FleetTracker; clock: ManualScheduler } {
  const clock = new ManualScheduler(start);
  const tracker = new FleetTracker({ ...trackerDefaults, ...cfg }, clock);
  tracker.setPods(pods);
  return { tracker, clock };
}

/** Process start far in the past: the pod is past start-up by age. */
export const OLD = T0 - 3_600_000;
