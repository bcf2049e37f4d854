/**
 * The fleet view: an immutable snapshot, rebuilt and swapped whole after every
 * change, so a Check reads it without locks and without I/O.
 */
import type { GateError } from '../core/errors.js';
import type { PluginId } from '../core/plugin-id.js';
import type { Endpoint } from '../discovery/types.js';

/**
 * live: answering with fresh data; unreachable: N polls failed in a row; stale: no fresh report in the bound;
 * removed: gone from discovery; terminating: discovery says the pod is being deleted (Kubernetes), so it gets no new requests.
 */
export type PodState = 'live' | 'unreachable' | 'stale' | 'removed' | 'terminating';

/** ready: running; starting: launching or retrying; failed: retries exhausted; absent: no series. */
export type PluginState = 'ready' | 'starting' | 'failed' | 'absent';

export interface PluginOnPod {
  readonly state: PluginState;
  /** Raw gauge value when the metrics source reported one. */
  readonly gauge: number | undefined;
  readonly failedLaunches: number;
  readonly restarts: number;
  /** Why the state was chosen, for `/status` and deny messages. */
  readonly why: string;
}

export interface PodView {
  /** `IP:port`, also the value the gateway routes to. */
  readonly address: string;
  /** The pod's name when discovery knows it (Kubernetes targetRef); shown beside the address, never routed by. */
  readonly name: string | undefined;
  /** What Kubernetes discovery says of the endpoint (ready, serving, terminating); undefined with static or DNS discovery. */
  readonly endpoint: Endpoint | undefined;
  readonly state: PodState;
  /** Data from this pod counts only until this clock time; decisions check it against `now`. */
  readonly freshUntil: number;
  /** True while the pod is launching its plugins (see the README's state table). */
  readonly inStartup: boolean;
  readonly startedAt: number | undefined;
  readonly version: string | undefined;
  readonly platform: string | undefined;
  readonly lastReportAt: number | undefined;
  readonly lastSuccessAt: number | undefined;
  readonly consecutiveFailures: number;
  readonly lastError: GateError | undefined;
  readonly plugins: ReadonlyMap<PluginId, PluginOnPod>;
  /** Series past max-plugins in the pod's last metrics body, not read (a per-pod bound). */
  readonly droppedSeries: number;
}

export interface PluginView {
  readonly id: PluginId;
  /**
   * Addresses of the live pods where the plugin is ready, starting or failed, in
   * a stable order. Addresses, not views: a view changes with every report,
   * while these lists change only when a plugin state does, so a settled fleet
   * keeps its index from one snapshot to the next. Look a pod up in `pods` (and
   * check `freshUntil`) before using it.
   */
  readonly readyPods: readonly string[];
  readonly startingPods: readonly string[];
  readonly failedPods: readonly string[];
}

export interface FleetSnapshot {
  /** Increases with every swap. */
  readonly version: number;
  readonly builtAt: number;
  /** True once every discovered pod has been polled at least once (pass or fail). */
  readonly complete: boolean;
  readonly pods: ReadonlyMap<string, PodView>;
  /** Pods in state `live`, by address. */
  readonly livePods: readonly PodView[];
  /** Live pods still in start-up. */
  readonly startupPods: readonly PodView[];
  readonly plugins: ReadonlyMap<PluginId, PluginView>;
  readonly discoveryError: GateError | undefined;
  /**
   * Per pod with any: how many of the plugins it reports are past max-plugins
   * (kept in its own view, but not indexed, so decided as unknown).
   */
  readonly droppedPlugins: ReadonlyMap<string, number>;
}
