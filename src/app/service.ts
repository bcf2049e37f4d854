/**
 * The gate service every front end calls: one decision from the current
 * snapshot, counted, timed and (by configuration) logged. Nothing here awaits.
 *
 * With hold-starting on, a plugin request that would be denied only because
 * its plugin is still starting waits in a HoldQueue instead, and each new
 * snapshot answers the waiters of plugins that became ready. decide stays pure:
 * the waiting is here, on the injected clock and timers.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Scheduler } from '../core/clock.js';
import { decide, decideTarget, type DecideConfig } from '../decide/decide.js';
import type { Decision, GateRequest } from '../decide/types.js';
import type { FleetSnapshot } from '../fleet/types.js';
import type { Face, GateMetrics } from '../observe/metrics.js';
import type { CheckResult, Held } from '../front/service.js';
import { HoldQueue, type HoldOutcome, type Waiter } from './hold.js';

export type { CheckResult } from '../front/service.js';

export interface ServiceConfig extends DecideConfig {
  readonly decisionLog: 'all' | 'denied' | 'none';
  /** Most decision log lines per second; 0 = no limit. */
  readonly decisionLogRate?: number;
  /** hold-starting; 0 or unset = never hold. */
  readonly holdStartingMs?: number;
  /** max-held: most requests held at once. */
  readonly maxHeld?: number;
}

/** Longest path written to a decision log line. */
const MAX_LOGGED_PATH = 256;

/**
 * A held request is answered this long before its caller's deadline, so the
 * deny reaches the gateway as a denial (503 with the envelope) before the
 * gateway times out and turns it into an error (status_on_error, no body).
 */
export const HOLD_DEADLINE_MARGIN_MS = 500;

/**
 * Waiters answered per event-loop turn when a snapshot makes a plugin ready:
 * thousands released at once are answered in slices, so Checks arriving
 * meanwhile are not stuck behind them.
 */
const RELEASE_SLICE = 256;

/** What a held request keeps: the fields a log line needs, never the header map. */
interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly requestId: string | undefined;
}

class HeldRequest implements Held {
  readonly held = true;
  waiter: Waiter<HeldRequest> | undefined;
  constructor(
    private readonly owner: GateService,
    readonly face: Face,
    readonly tenant: string | undefined,
    readonly logged: LoggedRequest | undefined,
    readonly answer: (r: CheckResult) => void,
  ) {}
  cancel(): void {
    this.owner.cancelHeld(this);
  }
}

const NO_LOG: LoggedRequest = { method: '', path: '', requestId: undefined };

/** Only these denials wait: every other one is final (a failed plugin does not start by waiting). */
function holdable(d: Decision): boolean {
  return !d.allow && d.pluginId !== undefined && (d.reason === 'plugin_starting' || d.reason === 'gate_not_ready');
}

export class GateService {
  private seq = 0;
  private draining = false;
  /** Token bucket of decision log lines (a deny storm must not become a log storm). */
  private logTokens: number;
  private logRefilledAt: number;
  private suppressed = 0;
  /** Per process, so decision ids from several gate replicas never collide. */
  private readonly idPrefix = randomBytes(4).toString('hex') + '-';
  /** Undefined while hold-starting is off. */
  private readonly holds: HoldQueue<HeldRequest> | undefined;
  private releaseQueued = false;

  constructor(
    private readonly snapshot: () => FleetSnapshot,
    private readonly cfg: ServiceConfig,
    /** Time of decisions and of the hold timers. */
    private readonly clock: Scheduler,
    private readonly metrics: GateMetrics | undefined,
    private readonly log: Logger | undefined,
  ) {
    this.logTokens = cfg.decisionLogRate ?? 0;
    this.logRefilledAt = clock.now();
    this.holds = (cfg.holdStartingMs ?? 0) > 0 ? new HoldQueue<HeldRequest>(clock, (w) => this.endWait(w, 'expired')) : undefined;
  }

  check(req: GateRequest, face: Face): CheckResult {
    const t0 = process.hrtime.bigint();
    const seq = this.nextSeq();
    const decision = decide(req, this.snapshot(), this.cfg, this.clock.now(), seq);
    return this.record(req, face, decision, seq, t0);
  }

  /**
   * check, or hold the request when its plugin is still starting: within
   * hold-starting, the caller's wait less HOLD_DEADLINE_MARGIN_MS, and
   * max-held. A held request is answered through `answer` exactly once: when a
   * snapshot shows its plugin ready (routed there, plugin_ready_after_hold),
   * when its plugin stops being worth waiting for, at expiry, or at drain.
   */
  checkOrHold(req: GateRequest, face: Face, callerWaitMs: number | undefined, answer: (r: CheckResult) => void): CheckResult | Held {
    const t0 = process.hrtime.bigint();
    const seq = this.nextSeq();
    const now = this.clock.now();
    const decision = decide(req, this.snapshot(), this.cfg, now, seq);
    const holds = this.holds;
    if (holds === undefined || !holdable(decision) || this.draining) return this.record(req, face, decision, seq, t0);
    const waitMs = Math.min(this.cfg.holdStartingMs ?? 0, callerWaitMs === undefined ? Infinity : callerWaitMs - HOLD_DEADLINE_MARGIN_MS);
    if (!(waitMs > 0)) return this.record(req, face, decision, seq, t0);
    if (holds.size >= (this.cfg.maxHeld ?? 0)) {
      this.metrics?.holdEnded('shed', undefined);
      return this.record(req, face, decision, seq, t0);
    }
    const logged = this.log === undefined ? undefined : loggedFields(req);
    const h = new HeldRequest(this, face, decision.tenant, logged, answer);
    h.waiter = holds.add(decision.pluginId!, now, now + waitMs, h);
    return h;
  }

  /** Requests held now. */
  heldCount(): number {
    return this.holds?.size ?? 0;
  }

  /** Requests held now, per plugin (for /status). */
  heldByPlugin(): ReadonlyMap<string, number> {
    return this.holds?.countsByPlugin() ?? new Map();
  }

  /**
   * A new snapshot is in: answer the waiters of plugins whose decision is no
   * longer "wait", oldest first. Only plugins somebody waits for are looked at,
   * and one decision per such plugin settles whether any of its waiters moves.
   */
  snapshotChanged(): void {
    if (this.holds === undefined || this.holds.size === 0 || this.releaseQueued) return;
    this.releaseReady();
  }

  /** The caller went away: forget it at once. */
  cancelHeld(h: HeldRequest): void {
    const w = h.waiter;
    if (w === undefined || this.holds === undefined || !this.holds.remove(w)) return;
    h.waiter = undefined;
    this.metrics?.holdEnded('cancelled', (this.clock.now() - w.since) / 1000);
  }

  private releaseReady(): void {
    const holds = this.holds!;
    const snap = this.snapshot();
    const now = this.clock.now();
    let budget = RELEASE_SLICE;
    for (const id of holds.plugins()) {
      for (let w = holds.oldest(id); w !== undefined; w = holds.oldest(id)) {
        if (budget-- <= 0) {
          // The rest on the next turn, with whatever snapshot is current then.
          this.releaseQueued = true;
          setImmediate(() => {
            this.releaseQueued = false;
            if (holds.size > 0) this.releaseReady();
          });
          return;
        }
        const t0 = process.hrtime.bigint();
        const seq = this.nextSeq();
        // The per-waiter seq spreads a burst of releases round-robin over the ready pods.
        const d = decideTarget({ kind: 'plugin', pluginId: id, tenant: w.payload.tenant }, snap, this.cfg, now, seq);
        if (holdable(d)) break; // the same for every waiter of this plugin
        holds.remove(w);
        this.answerHeld(w, d, seq, t0, d.allow ? 'released' : 'denied');
      }
    }
  }

  /** Expiry or drain: answer with what decide says now (a deny exactly as without holding, unless the plugin just became ready). */
  private endWait(w: Waiter<HeldRequest>, ifStillWaiting: 'expired' | 'drained'): void {
    const t0 = process.hrtime.bigint();
    const seq = this.nextSeq();
    const d = decideTarget({ kind: 'plugin', pluginId: w.pluginId, tenant: w.payload.tenant }, this.snapshot(), this.cfg, this.clock.now(), seq);
    this.answerHeld(w, d, seq, t0, holdable(d) ? ifStillWaiting : d.allow ? 'released' : 'denied');
  }

  private answerHeld(w: Waiter<HeldRequest>, d: Decision, seq: number, t0: bigint, outcome: HoldOutcome): void {
    const h = w.payload;
    h.waiter = undefined;
    const heldMs = Math.max(0, this.clock.now() - w.since);
    const final: Decision = d.allow
      ? { ...d, reason: d.reason === 'plugin_ready' ? 'plugin_ready_after_hold' : d.reason, heldMs }
      : { ...d, heldMs };
    this.metrics?.holdEnded(outcome, heldMs / 1000);
    const result = this.record(h.logged ?? NO_LOG, h.face, final, seq, t0);
    try {
      h.answer(result);
    } catch (err) {
      this.log?.error({ err: err instanceof Error ? err.message : String(err), face: h.face }, 'answering a held request failed');
    }
  }

  private nextSeq(): number {
    const seq = this.seq++;
    if (this.seq >= Number.MAX_SAFE_INTEGER) this.seq = 0;
    return seq;
  }

  /** Counts, times and (by configuration) logs one answer. */
  private record(req: LoggedRequest, face: Face, decision: Decision, seq: number, t0: bigint): CheckResult {
    const decisionId = this.idPrefix + seq.toString(36);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    this.metrics?.decision(face, decision, seconds);
    if (this.log !== undefined && this.wantsLog(decision)) {
      if (this.takeLogToken()) this.logDecision(req, face, decision, decisionId, seconds);
      else this.suppressed++;
    }
    return { decision, decisionId };
  }

  /** SERVING for health checks: a complete first poll round, and not draining. */
  serving(): boolean {
    return !this.draining && this.snapshot().complete;
  }

  /** Stops holding and answers every held request now (a deny while its plugin is still starting). */
  drain(): void {
    this.draining = true;
    const holds = this.holds;
    if (holds === undefined) return;
    for (const w of holds.all()) {
      holds.remove(w);
      this.endWait(w, 'drained');
    }
    holds.stop();
  }

  isDraining(): boolean {
    return this.draining;
  }

  /**
   * Decision log lines dropped by the rate limit since the last call, and reset.
   * The app logs and counts them once a second.
   */
  takeSuppressed(): number {
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }

  private takeLogToken(): boolean {
    const rate = this.cfg.decisionLogRate ?? 0;
    if (rate <= 0) return true;
    const now = this.clock.now();
    const elapsed = now - this.logRefilledAt;
    if (elapsed > 0) {
      this.logTokens = Math.min(rate, this.logTokens + (elapsed * rate) / 1000);
      this.logRefilledAt = now;
    }
    if (this.logTokens < 1) return false;
    this.logTokens -= 1;
    return true;
  }

  private wantsLog(d: Decision): boolean {
    const mode = this.cfg.decisionLog;
    if (mode === 'all') return true;
    if (mode === 'none') return false;
    return !d.allow || d.reason === 'dry_run';
  }

  /** Only named fields: never a header map, so no credential can ride along. */
  private logDecision(req: LoggedRequest, face: Face, d: Decision, decisionId: string, seconds: number): void {
    const q = req.path.indexOf('?');
    let path = q < 0 ? req.path : req.path.slice(0, q);
    if (path.length > MAX_LOGGED_PATH) path = path.slice(0, MAX_LOGGED_PATH) + '…';
    const rid = req.requestId !== undefined && req.requestId.length <= 128 ? req.requestId : undefined;
    this.log!.info(
      {
        face,
        decision: d.allow ? 'allow' : 'deny',
        reason: d.reason,
        would_deny: d.allow && d.wouldDeny !== undefined ? d.wouldDeny.reason : undefined,
        decision_id: decisionId,
        request_id: rid,
        method: req.method.length <= 16 ? req.method : req.method.slice(0, 16),
        path,
        plugin_id: d.pluginId,
        tenant: d.tenant,
        upstream: d.allow ? d.upstream : undefined,
        // The chosen pod's name when discovery knows it (Kubernetes): one map lookup, only for a logged line.
        upstream_pod_name: d.allow && d.upstream !== undefined ? this.snapshot().pods.get(d.upstream)?.name : undefined,
        status: d.allow ? undefined : d.httpStatus,
        retry_after: d.allow ? undefined : d.retryAfterS,
        latency_us: Math.round(seconds * 1e6),
        held_ms: d.heldMs,
      },
      'decision',
    );
  }
}

/** What a held request keeps for its log line: bounded, and no headers. */
function loggedFields(req: GateRequest): LoggedRequest {
  const q = req.path.indexOf('?');
  const path = (q < 0 ? req.path : req.path.slice(0, q)).slice(0, MAX_LOGGED_PATH + 1);
  return { method: req.method.slice(0, 16), path, requestId: req.requestId !== undefined && req.requestId.length <= 128 ? req.requestId : undefined };
}
