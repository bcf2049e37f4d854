/**
 * The probe's readiness policy: a pure function of (the daemon's pod view, the
 * policy, the latch, now). The pod view is the gate's own (same readers, same
 * state rules, see the README's state tables); this file only decides whether
 * that view makes the pod Ready, and says what is missing when it does not.
 */
import type { PluginId } from '../core/plugin-id.js';
import type { PluginState, PodView } from '../fleet/types.js';

export interface ReadinessPolicy {
  /** `require`: these must be running; one that gave up keeps the pod unready. Replaces the default rule. */
  readonly require: readonly PluginId[];
  /** `min-running`: this fraction of the reported plugins must be running. Replaces the default rule. */
  readonly minRunning: number | undefined;
  /** `failed`: block = any plugin that gave up keeps the pod unready; ignore = it does not count. */
  readonly failed: 'ignore' | 'block';
  /** `latch`: once ready, ready until the daemon process restarts. */
  readonly latch: boolean;
}

/** Stable snake_case: the `reason` of /status and a metric label. */
export const VERDICT_REASONS = [
  'ready',
  'latched',
  'daemon_not_read_yet',
  'daemon_unreachable',
  'daemon_stale',
  'required_failed',
  'plugins_failed',
  'required_not_running',
  'too_few_running',
  'plugins_starting',
  'daemon_in_startup',
] as const;
export type VerdictReason = (typeof VERDICT_REASONS)[number];

/** One thing the pod waits for. */
export interface Missing {
  readonly pluginId: PluginId | undefined;
  readonly state: PluginState | 'not_reported' | 'daemon';
  readonly why: string;
}

export interface Verdict {
  readonly ready: boolean;
  readonly reason: VerdictReason;
  /** One line for /readyz and logs. */
  readonly message: string;
  /** On 503: what is missing. When latched: what the latch is riding over. */
  readonly missing: readonly Missing[];
  readonly counts: { readonly reported: number; readonly running: number; readonly starting: number; readonly failed: number };
}

/** Readiness held for one daemon process. */
export interface Latch {
  /** The daemon's process start (ms) when the latch was set; undefined if it does not publish one. */
  readonly processStartMs: number | undefined;
  /** Clock time it was set. */
  readonly at: number;
}

export interface Decision {
  readonly verdict: Verdict;
  readonly latch: Latch | undefined;
}

const NO_COUNTS = { reported: 0, running: 0, starting: 0, failed: 0 };

/** At most this many missing entries in the one-line message (all of them are in /status). */
const MESSAGE_ITEMS = 5;

/**
 * Decides readiness of the pod from its current view. `latch` is the one the
 * previous decision returned; the new one goes back to the caller.
 */
export function decideReadiness(view: PodView | undefined, policy: ReadinessPolicy, latch: Latch | undefined, now: number): Decision {
  if (view === undefined || view.lastReportAt === undefined) {
    return { verdict: daemonVerdict('daemon_not_read_yet', 'the daemon has not been polled yet'), latch };
  }
  // Not answering (or only with stale data) is unready even when latched: a pod
  // that is gone must stop getting traffic. The latch only rides over plugin trouble.
  if (view.state !== 'live' || now > view.freshUntil) {
    const err = view.lastError === undefined ? '' : `: ${view.lastError.code} (${view.lastError.message})`;
    const v =
      view.state === 'unreachable'
        ? daemonVerdict('daemon_unreachable', `the daemon did not answer ${view.consecutiveFailures === 1 ? 'the last poll' : `${view.consecutiveFailures} polls in a row`}${err}`)
        : daemonVerdict('daemon_stale', `no fresh plugin data from the daemon${err}`);
    // Without a process start time a restart cannot be seen in the data: an outage is taken as one.
    return { verdict: v, latch: latch !== undefined && latch.processStartMs === undefined ? undefined : latch };
  }
  let held = latch;
  if (held !== undefined && held.processStartMs !== view.startedAt) held = undefined; // a new daemon process
  const raw = evaluate(view, policy);
  if (raw.ready) {
    return { verdict: raw, latch: policy.latch ? held ?? { processStartMs: view.startedAt, at: now } : undefined };
  }
  if (held !== undefined && policy.latch) {
    return {
      verdict: {
        ready: true,
        reason: 'latched',
        message: `ready (latched since ${new Date(held.at).toISOString()} for this daemon process; now: ${raw.message})`,
        missing: raw.missing,
        counts: raw.counts,
      },
      latch: held,
    };
  }
  return { verdict: raw, latch: undefined };
}

/** The policy over a live pod's plugins, without the latch. */
export function evaluate(view: PodView, policy: ReadinessPolicy): Verdict {
  let running = 0;
  let starting = 0;
  const failed: Missing[] = [];
  const notRunning: Missing[] = [];
  for (const [id, p] of view.plugins) {
    if (p.state === 'ready') running++;
    else {
      if (p.state === 'starting') starting++;
      if (p.state === 'failed') failed.push({ pluginId: id, state: p.state, why: p.why });
      notRunning.push({ pluginId: id, state: p.state, why: p.why });
    }
  }
  const counts = { reported: view.plugins.size, running, starting, failed: failed.length };
  const verdict = (ready: boolean, reason: VerdictReason, message: string, missing: readonly Missing[]): Verdict => ({ ready, reason, message, missing, counts });

  const required = policy.require.map((id): Missing | undefined => {
    const p = view.plugins.get(id);
    if (p === undefined) return { pluginId: id, state: 'not_reported', why: view.inStartup ? 'not reported yet (queued behind the launch limit?)' : 'not reported by the daemon' };
    return p.state === 'ready' ? undefined : { pluginId: id, state: p.state, why: p.why };
  });
  const requiredFailed = required.filter((m): m is Missing => m?.state === 'failed');
  if (requiredFailed.length > 0) {
    return verdict(false, 'required_failed', `not ready: required plugin${plural(requiredFailed)} gave up: ${list(requiredFailed)}`, requiredFailed);
  }
  if (policy.failed === 'block' && failed.length > 0) {
    return verdict(false, 'plugins_failed', `not ready: ${failed.length} plugin${plural(failed)} gave up (failed: block): ${list(failed)}`, failed);
  }
  const requiredMissing = required.filter((m): m is Missing => m !== undefined);
  if (requiredMissing.length > 0) {
    return verdict(false, 'required_not_running', `not ready: required plugin${plural(requiredMissing)} not running: ${list(requiredMissing)}`, requiredMissing);
  }
  if (policy.minRunning !== undefined) {
    // Given-up plugins leave the count under failed=ignore (under block they already returned above).
    const counted = view.plugins.size - failed.length;
    if (counted === 0) {
      if (view.inStartup) return verdict(false, 'daemon_in_startup', 'not ready: the daemon is starting and reports no plugin yet', [startupMissing()]);
    } else if (running / counted < policy.minRunning) {
      const waiting = notRunning.filter((m) => m.state !== 'failed');
      return verdict(false, 'too_few_running', `not ready: ${running} of ${counted} plugins running, min-running is ${policy.minRunning}: waiting for ${list(waiting)}`, waiting);
    }
  }
  if (policy.require.length > 0 || policy.minRunning !== undefined) {
    return verdict(true, 'ready', `ready: ${describeRule(policy)}`, []);
  }
  // The default: every plugin the daemon reports is running or has given up, and
  // the daemon is past start-up (so no plugin is still queued without a series).
  const startingOnes = notRunning.filter((m) => m.state === 'starting');
  if (startingOnes.length > 0) {
    return verdict(false, 'plugins_starting', `not ready: ${startingOnes.length} plugin${plural(startingOnes)} starting: ${list(startingOnes)}`, view.inStartup ? [...startingOnes, startupMissing()] : startingOnes);
  }
  if (view.inStartup) {
    return verdict(false, 'daemon_in_startup', 'not ready: the daemon is still in start-up (plugins may be queued without a series yet)', [startupMissing()]);
  }
  return verdict(true, 'ready', `ready: ${running} of ${view.plugins.size} plugins running${failed.length > 0 ? `, ${failed.length} gave up (failed: ignore)` : ''}`, []);
}

function describeRule(p: ReadinessPolicy): string {
  const parts: string[] = [];
  if (p.require.length > 0) parts.push(`required plugins running (${p.require.join(', ')})`);
  if (p.minRunning !== undefined) parts.push(`at least ${p.minRunning} of the reported plugins running`);
  return parts.join(' and ');
}

function startupMissing(): Missing {
  return { pluginId: undefined, state: 'daemon', why: 'the daemon is in start-up: plugins queued behind the launch limit have no series yet' };
}

function daemonVerdict(reason: VerdictReason, why: string): Verdict {
  return { ready: false, reason, message: `not ready: ${why}`, missing: [{ pluginId: undefined, state: 'daemon', why }], counts: NO_COUNTS };
}

function plural(xs: readonly unknown[]): string {
  return xs.length === 1 ? '' : 's';
}

function list(items: readonly Missing[]): string {
  const shown = items.slice(0, MESSAGE_ITEMS).map((m) => `${m.pluginId ?? 'daemon'} (${m.why})`);
  if (items.length > MESSAGE_ITEMS) shown.push(`and ${items.length - MESSAGE_ITEMS} more (see /status)`);
  return shown.join(', ');
}
