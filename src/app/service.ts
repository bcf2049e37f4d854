/**
 * The gate service every front end calls: one decision from the current
 * snapshot, counted, timed and (by configuration) logged. Nothing here awaits.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { decide, type DecideConfig } from '../decide/decide.js';
import type { Decision, GateRequest } from '../decide/types.js';
import type { FleetSnapshot } from '../fleet/types.js';
import type { Face, GateMetrics } from '../observe/metrics.js';

export interface ServiceConfig extends DecideConfig {
  readonly decisionLog: 'all' | 'denied' | 'none';
  /** Most decision log lines per second; 0 = no limit. */
  readonly decisionLogRate?: number;
}

export interface CheckResult {
  readonly decision: Decision;
  readonly decisionId: string;
}

/** Longest path written to a decision log line. */
const MAX_LOGGED_PATH = 256;

export class GateService {
  private seq = 0;
  private draining = false;
  /** Token bucket of decision log lines (a deny storm must not become a log storm). */
  private logTokens: number;
  private logRefilledAt: number;
  private suppressed = 0;
  /** Per process, so decision ids from several gate replicas never collide. */
  private readonly idPrefix = randomBytes(4).toString('hex') + '-';

  constructor(
    private readonly snapshot: () => FleetSnapshot,
    private readonly cfg: ServiceConfig,
    private readonly clock: Clock,
    private readonly metrics: GateMetrics | undefined,
    private readonly log: Logger | undefined,
  ) {
    this.logTokens = cfg.decisionLogRate ?? 0;
    this.logRefilledAt = clock.now();
  }

  check(req: GateRequest, face: Face): CheckResult {
    const t0 = process.hrtime.bigint();
    const seq = this.seq++;
    if (this.seq >= Number.MAX_SAFE_INTEGER) this.seq = 0;
    const decision = decide(req, this.snapshot(), this.cfg, this.clock.now(), seq);
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

  drain(): void {
    this.draining = true;
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
  private logDecision(req: GateRequest, face: Face, d: Decision, decisionId: string, seconds: number): void {
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
        status: d.allow ? undefined : d.httpStatus,
        retry_after: d.allow ? undefined : d.retryAfterS,
        latency_us: Math.round(seconds * 1e6),
      },
      'decision',
    );
  }
}
