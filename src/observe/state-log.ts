/**
 * Log lines for fleet changes. Pod state changes are always written (there are
 * as many as pods change state). Plugin state changes are as many as a daemon
 * cares to report: a pod churning 2,000 plugin ids per poll once wrote 4,011
 * lines (828 KB) in 7 s. So they take tokens from a bucket of `state-log-rate`
 * lines a second, like decision logs; what is dropped is counted, by the state
 * the plugin went to, and summarised once a second by the app.
 */
import type { Clock } from '../core/clock.js';
import type { FleetChange } from '../fleet/tracker.js';
import type { Logger } from './logger.js';

export interface SuppressedStateLines {
  readonly total: number;
  /** Per state the plugins went to (ready, starting, failed, absent). */
  readonly byState: Readonly<Record<string, number>>;
}

export class StateChangeLog {
  private tokens: number;
  private refilledAt: number;
  private suppressed = 0;
  private byState: Record<string, number> = {};

  /** `rate`: plugin state lines a second, 0 = no limit. */
  constructor(
    private readonly logger: Logger,
    private readonly rate: number,
    private readonly clock: Clock,
  ) {
    this.tokens = rate;
    this.refilledAt = clock.now();
  }

  write(changes: readonly FleetChange[]): void {
    for (const c of changes) {
      if (c.kind === 'pod') {
        // Losing a live pod is worth a warning; a new pod not read yet is not.
        const level = c.from === 'live' && (c.to === 'unreachable' || c.to === 'stale') ? 'warn' : 'info';
        this.logger[level]({ pod: c.pod, pod_name: c.name, from: c.from, to: c.to, code: c.error?.code, err: c.error?.message }, 'pod state changed');
      } else if (this.take()) {
        this.logger.info({ pod: c.pod, pod_name: c.name, plugin_id: c.plugin, from: c.from, to: c.to, why: c.why }, 'plugin state changed');
      } else {
        this.suppressed++;
        this.byState[c.to] = (this.byState[c.to] ?? 0) + 1;
      }
    }
  }

  /** Plugin state lines dropped since the last call, and reset. */
  takeSuppressed(): SuppressedStateLines {
    const out = { total: this.suppressed, byState: this.byState };
    this.suppressed = 0;
    this.byState = {};
    return out;
  }

  private take(): boolean {
    if (this.rate <= 0) return true;
    const now = this.clock.now();
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.rate, this.tokens + (elapsed * this.rate) / 1000);
      this.refilledAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
