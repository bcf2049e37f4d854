/**
 * The decision: a pure function of (request, fleet snapshot, config, now, seq).
 * No I/O and no clock reads; `seq` is the caller's request counter, used to
 * spread load round-robin over the pods that qualify.
 *
 * Work that depends only on the snapshot (which pods are in start-up, whether
 * every live pod is fresh, a plugin's deny answer and its text) is done once
 * per snapshot and memoised against the snapshot's identity, so a deny costs
 * the same with 3 pods or 1,000. The memo never changes an answer: it is used
 * only while `now` is inside the window in which the walk it replaces would
 * find the same pods fresh.
 */
import type { PluginId } from '../core/plugin-id.js';
import { isRemoteDebugPlugin } from '../core/plugin-id.js';
import { daemonRetryWaitMs } from '../core/daemon.js';
import type { FleetSnapshot, PluginView, PodView } from '../fleet/types.js';
import { classify } from './classify.js';
import { envelope } from './envelope.js';
import type { Allow, Decision, Deny, DenyReason, GateRequest, Target } from './types.js';

export interface DecideConfig {
  readonly unknownPlugin: 'allow' | 'deny';
  readonly retryAfterMs: number;
  readonly failedRetryAfterMs: number;
  readonly dryRun: boolean;
}

export function decide(req: GateRequest, snap: FleetSnapshot, cfg: DecideConfig, now: number, seq: number): Decision {
  const target = classify(req);
  const d = decideTarget(target, snap, cfg, now, seq);
  if (d.allow || !cfg.dryRun) return d;
  return {
    allow: true,
    reason: 'dry_run',
    upstream: pickFresh(snap.livePods, now, seq)?.address,
    pluginId: d.pluginId,
    tenant: d.tenant,
    wouldDeny: d,
  };
}

export function decideTarget(target: Target, snap: FleetSnapshot, cfg: DecideConfig, now: number, seq: number): Decision {
  switch (target.kind) {
    case 'bypass':
      return allow('route_bypass', undefined, undefined, undefined);
    case 'invalid':
      return invalid(target.detail);
    case 'any': {
      if (!snap.complete) return deny(snap, 'gate_not_ready', undefined, undefined, cfg.retryAfterMs);
      const pod = pickFresh(snap.livePods, now, seq);
      if (pod === undefined) return deny(snap, 'no_live_pod', undefined, undefined, cfg.retryAfterMs);
      return allow('not_plugin_scoped', pod, undefined, undefined);
    }
    case 'plugin':
      return decidePlugin(target.pluginId, target.tenant, snap, cfg, now, seq);
  }
}

function decidePlugin(id: PluginId, tenant: string | undefined, snap: FleetSnapshot, cfg: DecideConfig, now: number, seq: number): Decision {
  if (!snap.complete) return deny(snap, 'gate_not_ready', id, tenant, cfg.retryAfterMs);
  const pv = snap.plugins.get(id);
  if (pv !== undefined) {
    const pod = pickFreshAddress(snap, pv.readyPods, now, seq);
    if (pod !== undefined) return allow('plugin_ready', pod, id, tenant);
  }
  const anyLive = pickFresh(snap.livePods, now, seq);
  if (anyLive === undefined) return deny(snap, 'no_live_pod', id, tenant, cfg.retryAfterMs);
  // Remote-debugging plugins run wherever the developer's tunnel landed, and
  // the daemons redirect them among themselves: any live pod will do.
  if (isRemoteDebugPlugin(id)) return allow('not_plugin_scoped', anyLive, id, tenant);

  const memo = memoOf(snap);
  if (now <= memo.liveFreshUntil) {
    // Every live pod is fresh: the answer depends on the snapshot alone, so it is worked out once.
    let outcome = memo.notReady.get(id);
    if (outcome === undefined || outcome.cfg !== cfg) {
      outcome = { cfg, deny: notReadyDeny(id, pv, snap, cfg, now) };
      if (memo.notReady.size < MEMO_ENTRIES) memo.notReady.set(id, outcome);
    }
    const d = outcome.deny;
    if (d !== undefined) return d.tenant === tenant ? d : { ...d, tenant };
  } else {
    const d = notReadyDeny(id, pv, snap, cfg, now);
    if (d !== undefined) return tenant === undefined ? d : { ...d, tenant };
  }
  if (cfg.unknownPlugin === 'allow') return allow('unknown_plugin_allowed', anyLive, id, tenant);
  return deny(snap, 'unknown_plugin_denied', id, tenant, cfg.retryAfterMs);
}

/** Why a plugin with no usable ready pod is held back, or undefined when it is simply unknown (tenant left unset). */
function notReadyDeny(id: PluginId, pv: PluginView | undefined, snap: FleetSnapshot, cfg: DecideConfig, now: number): Deny | undefined {
  if (pv !== undefined && anyUsable(snap, pv.startingPods, now)) {
    return deny(snap, 'plugin_starting', id, undefined, startingRetryAfter(snap, pv, cfg, now));
  }
  if (maybeQueued(snap, id, now)) return deny(snap, 'plugin_starting', id, undefined, cfg.retryAfterMs);
  if (pv !== undefined && anyUsable(snap, pv.failedPods, now)) {
    return deny(snap, 'plugin_failed', id, undefined, cfg.failedRetryAfterMs);
  }
  return undefined;
}

/**
 * A pod still in start-up publishes nothing for plugins queued behind its
 * launch limit: a plugin it does not report may be one of them. This is what
 * keeps a cold fleet restart from leaking traffic to merely queued plugins.
 *
 * While every start-up pod is fresh this costs one look at the plugin's index
 * entry (memoised per snapshot), not a walk over the start-up pods: the index
 * lists every plugin any pod reports, and the pods where it is ready, starting
 * or failed, so a start-up pod lacks it exactly when fewer of those are in
 * start-up than there are start-up pods. (A plugin past `max-plugins` has no
 * index entry and counts as reported nowhere, as it does in every decision.)
 */
export function maybeQueued(snap: FleetSnapshot, id: PluginId, now: number): boolean {
  const memo = memoOf(snap);
  if (memo.startup.size === 0 || now > memo.startupFreshMax) return false;
  if (now > memo.startupFreshMin) return maybeQueuedWalk(snap, id, now);
  const pv = snap.plugins.get(id);
  if (pv === undefined) return true;
  let queued = memo.queued.get(id);
  if (queued === undefined) {
    let reporting = 0;
    for (const list of [pv.readyPods, pv.startingPods, pv.failedPods]) for (const a of list) if (memo.startup.has(a)) reporting++;
    queued = reporting < memo.startup.size;
    if (memo.queued.size < MEMO_ENTRIES) memo.queued.set(id, queued);
  }
  return queued;
}

/** maybeQueued by its definition, for the moments a start-up pod is going stale. */
function maybeQueuedWalk(snap: FleetSnapshot, id: PluginId, now: number): boolean {
  for (const pod of snap.startupPods) {
    if (pod.freshUntil >= now && (pod.plugins.get(id)?.state ?? 'absent') === 'absent') return true;
  }
  return false;
}

/** Retry-After while starting: the daemon's own retry wait when every starting pod is between retries. */
function startingRetryAfter(snap: FleetSnapshot, pv: PluginView, cfg: DecideConfig, now: number): number {
  let soonest = Infinity;
  for (const address of pv.startingPods) {
    const pod = usable(snap, address, now);
    if (pod === undefined) continue;
    const p = pod.plugins.get(pv.id);
    if (p === undefined) continue;
    const wait = p.failedLaunches > 0 && p.gauge === 0 ? daemonRetryWaitMs(p.failedLaunches) : 0;
    if (wait < soonest) soonest = wait;
  }
  return Math.max(cfg.retryAfterMs, soonest === Infinity ? 0 : soonest);
}

/** Round-robin over the pods whose data is still fresh at `now`; no allocation. */
export function pickFresh(pods: readonly PodView[], now: number, seq: number): PodView | undefined {
  const n = pods.length;
  if (n === 0) return undefined;
  const start = seq % n;
  for (let i = 0; i < n; i++) {
    const pod = pods[(start + i) % n]!;
    if (pod.freshUntil >= now) return pod;
  }
  return undefined;
}

/** The pod at `address` if it is live with data still fresh at `now`. */
function usable(snap: FleetSnapshot, address: string, now: number): PodView | undefined {
  const pod = snap.pods.get(address);
  return pod !== undefined && pod.state === 'live' && pod.freshUntil >= now ? pod : undefined;
}

/** pickFresh over an index list of addresses. */
function pickFreshAddress(snap: FleetSnapshot, addresses: readonly string[], now: number, seq: number): PodView | undefined {
  const n = addresses.length;
  if (n === 0) return undefined;
  const start = seq % n;
  for (let i = 0; i < n; i++) {
    const pod = usable(snap, addresses[(start + i) % n]!, now);
    if (pod !== undefined) return pod;
  }
  return undefined;
}

function anyUsable(snap: FleetSnapshot, addresses: readonly string[], now: number): boolean {
  for (const a of addresses) if (usable(snap, a, now) !== undefined) return true;
  return false;
}

function allow(reason: Allow['reason'], pod: PodView | undefined, pluginId: PluginId | undefined, tenant: string | undefined): Allow {
  return { allow: true, reason, upstream: pod?.address, pluginId, tenant, wouldDeny: undefined };
}

const invalidCache = new Map<string, Deny>();
function invalid(detail: string): Deny {
  // A handful of fixed details: cached forever, and the input itself is never echoed.
  let d = invalidCache.get(detail);
  if (d === undefined) {
    const message = `plugin-gate: ${detail}`;
    d = {
      allow: false,
      reason: 'invalid_plugin_id',
      pluginId: undefined,
      tenant: undefined,
      httpStatus: 400,
      retryAfterS: undefined,
      message,
      body: envelope(-400, 'PluginDaemonBadRequestError', message),
    };
    invalidCache.set(detail, d);
  }
  return d;
}

/** Most memoised answers and texts per snapshot: random plugin ids cannot grow it further. */
const MEMO_ENTRIES = 4096;

interface DenyText {
  readonly message: string;
  readonly body: string;
}

/** What one snapshot lets every decision on it reuse. Built on first need, dropped with the snapshot. */
interface SnapshotMemo {
  /** Every live pod is fresh up to this time (the earliest freshUntil among them). */
  readonly liveFreshUntil: number;
  /** Addresses of the live pods in start-up. */
  readonly startup: ReadonlySet<string>;
  readonly startupFreshMin: number;
  readonly startupFreshMax: number;
  /** Per plugin without a usable ready pod: its deny (tenant unset), or undefined for "unknown". */
  readonly notReady: Map<PluginId, { readonly cfg: DecideConfig; readonly deny: Deny | undefined }>;
  readonly queued: Map<PluginId, boolean>;
  /** Deny texts by reason, plugin and wait. */
  readonly texts: Map<string, DenyText>;
}

/** Keyed by the snapshot itself: an entry lives exactly as long as its snapshot. */
const memos = new WeakMap<FleetSnapshot, SnapshotMemo>();

function memoOf(snap: FleetSnapshot): SnapshotMemo {
  let m = memos.get(snap);
  if (m === undefined) {
    let liveFreshUntil = Infinity;
    for (const p of snap.livePods) if (p.freshUntil < liveFreshUntil) liveFreshUntil = p.freshUntil;
    let startupFreshMin = Infinity;
    let startupFreshMax = -Infinity;
    const startup = new Set<string>();
    for (const p of snap.startupPods) {
      startup.add(p.address);
      if (p.freshUntil < startupFreshMin) startupFreshMin = p.freshUntil;
      if (p.freshUntil > startupFreshMax) startupFreshMax = p.freshUntil;
    }
    m = { liveFreshUntil, startup, startupFreshMin, startupFreshMax, notReady: new Map(), queued: new Map(), texts: new Map() };
    memos.set(snap, m);
  }
  return m;
}

/**
 * Deny texts depend only on (snapshot, reason, plugin, wait), so they are built
 * once per snapshot and reused: a storm of requests for a starting plugin costs
 * one string build, not one per request. Keys are bounded: plugin ids are
 * validated and each snapshot keeps at most MEMO_ENTRIES texts.
 */
function deny(snap: FleetSnapshot, reason: DenyReason, id: PluginId | undefined, tenant: string | undefined, retryAfterMs: number): Deny {
  const retryAfterS = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const texts = memoOf(snap).texts;
  const key = `${reason}|${id ?? ''}|${retryAfterS}`;
  let text = texts.get(key);
  if (text === undefined) {
    const message = denyMessage(snap, reason, id, retryAfterS);
    text = { message, body: envelope(-500, 'PluginDaemonInternalServerError', message) };
    if (texts.size < MEMO_ENTRIES) texts.set(key, text);
  }
  return { allow: false, reason, pluginId: id, tenant, httpStatus: 503, retryAfterS, message: text.message, body: text.body };
}

/** Every text names the plugin, its state and the wait, and carries the phrase dify-api treats as transient. */
export function denyMessage(snap: FleetSnapshot, reason: DenyReason, id: PluginId | undefined, retryAfterS: number): string {
  const live = snap.livePods.length;
  const wait = `retry after ${retryAfterS}s`;
  const pv = id === undefined ? undefined : snap.plugins.get(id);
  switch (reason) {
    case 'plugin_starting': {
      const starting = pv?.startingPods.length ?? 0;
      const first = pv?.startingPods[0];
      const why = first === undefined ? undefined : snap.pods.get(first)?.plugins.get(pv!.id)?.why;
      const queued = snap.startupPods.length;
      const state =
        starting > 0
          ? `starting on ${starting} of ${live} live pod${live === 1 ? '' : 's'} (${why ?? 'launching'})`
          : `not launched yet: ${queued} pod${queued === 1 ? ' is' : 's are'} still starting plugins`;
      return `plugin-gate: plugin ${id} is ${state}; plugin runtime not found on any ready pod yet, ${wait}`;
    }
    case 'plugin_failed': {
      const pods = pv?.failedPods ?? [];
      const first = pods[0];
      const why = (first === undefined ? undefined : snap.pods.get(first)?.plugins.get(pv!.id)?.why) ?? 'failed';
      return `plugin-gate: plugin ${id} failed to start on every pod that has it (${pods.length} pod${pods.length === 1 ? '' : 's'}: ${why}); plugin runtime not found, ${wait}`;
    }
    case 'no_live_pod':
      return `plugin-gate: no live plugin daemon pod (${snap.pods.size} known, none answering with fresh status)${id === undefined ? '' : ` for plugin ${id}`}; no available node, plugin runtime not found, ${wait}`;
    case 'unknown_plugin_denied':
      return `plugin-gate: plugin ${id} is not reported by any of ${live} live plugin daemon pod${live === 1 ? '' : 's'}; plugin runtime not found, ${wait}`;
    case 'gate_not_ready':
      return `plugin-gate: first poll of the plugin daemon pods not finished${id === undefined ? '' : ` (plugin ${id})`}; plugin runtime not found yet, ${wait}`;
    case 'invalid_plugin_id':
      return 'plugin-gate: invalid plugin id';
  }
}
