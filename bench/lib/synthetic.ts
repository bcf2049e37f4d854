/**
 * Realistic fleet snapshots without any network: synthetic PodReports, shaped
 * like what the metrics reader hands over after a poll, fed through the real
 * FleetTracker, so the snapshot a benchmark decides on is the one the gate
 * would hold.
 *
 * Shape (a steady fleet that is rolling out a couple of plugins):
 *  - ~91 % of plugins running everywhere, except every 7th of them still
 *    launching on one pod (partial availability);
 *  - ~5 % launching on every pod (a fresh install): `plugin_starting`;
 *  - ~2 % given up on every pod (15 failed launches): `plugin_failed`;
 *  - ~2 % retrying (gauge 0, 3 failed launches) on every pod.
 * Every pod is past start-up (process 20 min old).
 */
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { configFor, type Config } from '../../src/config/config.js';
import { FleetTracker } from '../../src/fleet/tracker.js';
import type { MetricsData, PodReport } from '../../src/status/types.js';

export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export interface SyntheticFleet {
  readonly config: Config;
  readonly clock: ManualScheduler;
  readonly tracker: FleetTracker;
  readonly addresses: readonly string[];
  readonly reports: readonly PodReport[];
  /** What each pod's metrics reported, in address order. */
  readonly metrics: readonly MetricsData[];
  readonly ids: {
    readonly ready: readonly string[];
    readonly starting: readonly string[];
    readonly failed: readonly string[];
    readonly retrying: readonly string[];
  };
}

export function pluginId(j: number): string {
  return `author-${j % 37}/plugin-${j}`;
}

export function podAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5002`;
}

type Kind = 'ready' | 'starting' | 'failed' | 'retrying';

function kindOf(j: number): Kind {
  const r = j % 100;
  if (r < 5) return 'starting';
  if (r < 7) return 'failed';
  if (r < 9) return 'retrying';
  return 'ready';
}

/** The metrics one pod reports. */
export function podMetrics(pod: number, pods: number, plugins: number, startedAt: number): MetricsData {
  const runtimeStatus = new Map<string, number>();
  const failedLaunches = new Map<string, number>();
  const restarts = new Map<string, number>();
  for (let j = 0; j < plugins; j++) {
    const id = pluginId(j);
    switch (kindOf(j)) {
      case 'ready':
        runtimeStatus.set(id, j % 7 === 0 && j % pods === pod ? 0.5 : 1);
        restarts.set(id, j % 11 === 0 ? 1 : 0);
        break;
      case 'starting':
        runtimeStatus.set(id, 0.5);
        break;
      case 'failed':
        runtimeStatus.set(id, 0);
        failedLaunches.set(id, 15);
        break;
      case 'retrying':
        runtimeStatus.set(id, 0);
        failedLaunches.set(id, 3);
        break;
    }
  }
  return { runtimeStatus, failedLaunches, restarts, processStartMs: startedAt };
}

export function podReport(address: string, metrics: MetricsData, at: number): PodReport {
  return {
    pod: address,
    at,
    metrics: { ok: true, data: metrics, latencyMs: 3 },
    health: { ok: true, data: { version: '0.6.10', platform: 'local', activeDispatchRequests: 0 }, latencyMs: 2 },
  };
}

/** `startedAgoMs`: age of every pod's daemon process (default 20 min: past start-up). */
export function syntheticFleet(pods: number, plugins: number, flags: Record<string, string> = {}, startedAgoMs = 20 * 60_000): SyntheticFleet {
  const addresses = Array.from({ length: pods }, (_, i) => podAddress(i));
  const config = configFor({
    targets: addresses.join(','),
    'max-plugins': String(Math.max(2000, plugins)),
    'log-level': 'silent',
    'decision-log': 'none',
    ...flags,
  });
  const clock = new ManualScheduler(T0);
  const tracker = new FleetTracker(config, clock);
  tracker.setPods(addresses);
  const startedAt = T0 - startedAgoMs;
  const metrics = addresses.map((_, i) => podMetrics(i, pods, plugins, startedAt));
  const reports = addresses.map((a, i) => podReport(a, metrics[i]!, T0));
  for (const r of reports) tracker.ingest(r);
  const ids = { ready: [] as string[], starting: [] as string[], failed: [] as string[], retrying: [] as string[] };
  for (let j = 0; j < plugins; j++) ids[kindOf(j)].push(pluginId(j));
  return { config, clock, tracker, addresses, reports, metrics, ids };
}
