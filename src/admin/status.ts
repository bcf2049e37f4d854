/** `/status`: the whole fleet view as JSON, built from one snapshot at request time. */
import { maybeQueued } from '../decide/decide.js';
import type { FleetSnapshot, PodView } from '../fleet/types.js';

/** `held`: requests waiting per plugin (hold-starting). */
export function statusDocument(snap: FleetSnapshot, now: number, draining: boolean, held: ReadonlyMap<string, number> = new Map()): unknown {
  const pods = [...snap.pods.values()].map((p) => podJson(p, now, snap.droppedPlugins.get(p.address) ?? 0));
  const plugins = [...snap.plugins.values()]
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((pv) => ({
      plugin_id: pv.id,
      ready_pods: pv.readyPods,
      starting_pods: pv.startingPods,
      failed_pods: pv.failedPods,
      fleet_in_startup: pv.startingPods.length > 0 || maybeQueued(snap, pv.id, now),
      held: held.get(pv.id) ?? 0,
    }));
  let heldTotal = 0;
  for (const n of held.values()) heldTotal += n;
  return {
    ready: snap.complete,
    draining,
    snapshot_version: snap.version,
    built_at: new Date(snap.builtAt).toISOString(),
    discovery_error: snap.discoveryError?.toJSON() ?? null,
    counts: {
      pods: snap.pods.size,
      live: snap.livePods.length,
      in_startup: snap.startupPods.length,
      plugins: snap.plugins.size,
      dropped_plugins: [...snap.droppedPlugins.values()].reduce((a, b) => a + b, 0),
      held: heldTotal,
    },
    // Every plugin somebody waits for, including those no pod reports yet (queued on a pod in start-up).
    held: Object.fromEntries([...held].sort((a, b) => (a[0] < b[0] ? -1 : 1))),
    pods,
    plugins,
  };
}

/** One pod as JSON: shared by the gate's /status and the probe's. `droppedPlugins`: its plugins past max-plugins, not indexed. */
export function podJson(p: PodView, now: number, droppedPlugins = 0): unknown {
  const plugins: Record<string, unknown> = {};
  for (const [id, s] of [...p.plugins].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    plugins[id] = { state: s.state, why: s.why, gauge: s.gauge ?? null, failed_launches: s.failedLaunches, restarts: s.restarts };
  }
  return {
    address: p.address,
    name: p.name ?? null,
    state: p.state,
    endpoint:
      p.endpoint === undefined ? null : { ready: p.endpoint.ready, serving: p.endpoint.serving, terminating: p.endpoint.terminating },
    in_startup: p.inStartup,
    started_at: p.startedAt === undefined ? null : new Date(p.startedAt).toISOString(),
    version: p.version ?? null,
    platform: p.platform ?? null,
    report_age_s: p.lastSuccessAt === undefined ? null : Math.max(0, (now - p.lastSuccessAt) / 1000),
    consecutive_failures: p.consecutiveFailures,
    last_error: p.lastError?.toJSON() ?? null,
    // Plugins this pod reports past max-plugins: not indexed, so decided as unknown.
    dropped_plugins: droppedPlugins,
    // Series past max-plugins in its last /metrics/ body: never read at all.
    dropped_series: p.droppedSeries,
    plugins,
  };
}
