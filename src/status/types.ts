/**
 * What the status readers hand to the fleet view: one report per pod per poll
 * round, each source's outcome kept apart so the state rules can weigh them.
 */
import type { GateError } from '../core/errors.js';
import type { PluginId } from '../core/plugin-id.js';

export const SOURCE_NAMES = ['metrics', 'health-check', 'ready-check'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

export type SourceResult<T> =
  | { readonly ok: true; readonly data: T; readonly latencyMs: number }
  | { readonly ok: false; readonly error: GateError; readonly latencyMs: number };

/** From `GET /metrics/` — only the families the gate needs. */
export interface MetricsData {
  /** `plugin_runtime_status{plugin_id}`: 1 running, 0.5 launching, 0 failed or stopped. */
  readonly runtimeStatus: ReadonlyMap<PluginId, number>;
  /** `plugin_installations_total{plugin_id,status="failed"}`: failed launches so far. */
  readonly failedLaunches: ReadonlyMap<PluginId, number>;
  /** `plugin_restarts_total{plugin_id}` summed over runtime types. */
  readonly restarts: ReadonlyMap<PluginId, number>;
  /** `process_start_time_seconds` × 1000, when present. */
  readonly processStartMs: number | undefined;
  /** Series of plugins past max-plugins in this body, not read (absent when none). */
  readonly droppedSeries?: number;
}

/** From `GET /health/check`. */
export interface HealthData {
  readonly version: string | undefined;
  readonly platform: string | undefined;
  readonly activeDispatchRequests: number | undefined;
}

/** From `GET /ready/check` (the shape of daemon PR #600). */
export interface ReadyData {
  readonly ready: boolean;
  readonly reason: string;
  /** Present only on a 503 with detail; plugin ids (unique identifiers reduced to `author/name`). */
  readonly detail: ReadyDetail | undefined;
}

export interface ReadyDetail {
  readonly missing: readonly PluginId[];
  readonly failed: readonly PluginId[];
  readonly expected: number | undefined;
  readonly running: number | undefined;
  readonly maxRetries: number | undefined;
}

export interface PodReport {
  /** `IP:port` as discovered. */
  readonly pod: string;
  /** Clock time the round for this pod finished. */
  readonly at: number;
  readonly metrics?: SourceResult<MetricsData>;
  readonly health?: SourceResult<HealthData>;
  readonly ready?: SourceResult<ReadyData>;
}
