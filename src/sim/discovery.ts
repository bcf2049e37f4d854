/**
 * A gate Discovery that follows a SimFleet's membership, for scenarios where
 * pods come and go (a rolling update): a pod is discovered as soon as it
 * exists (a headless Service with publishNotReadyAddresses lists a pod once it
 * has an IP, ready or not), and dropped `removalLagMs` after it leaves the
 * fleet, which models how late DNS learns of a deleted pod (the resolver's
 * TTL plus the gate's `dns-interval`). The gate must not rely on that lag:
 * a pod's exit shows first on its own connections.
 */
import { systemScheduler, type Scheduler, type TimerHandle } from '../core/clock.js';
import { canonicalAddresses, sameAddresses, type Discovery, type DiscoveryListener } from '../discovery/types.js';
import type { SimFleet } from './fleet.js';

export interface FleetDiscoveryOptions {
  /** How long after a pod leaves the fleet it is still reported (scheduler ms); default 0. */
  readonly removalLagMs?: number;
  /** Default: the system scheduler. */
  readonly scheduler?: Scheduler;
}

export class FleetDiscovery implements Discovery {
  private readonly lagMs: number;
  private readonly scheduler: Scheduler;
  private listener: DiscoveryListener | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Pods that left the fleet but are still reported, with the timer that drops them. */
  private readonly leaving = new Map<string, TimerHandle>();
  private current: readonly string[] = [];
  private last: readonly string[] | undefined;

  constructor(
    private readonly fleet: SimFleet,
    opts: FleetDiscoveryOptions = {},
  ) {
    this.lagMs = Math.max(0, opts.removalLagMs ?? 0);
    this.scheduler = opts.scheduler ?? systemScheduler;
  }

  start(onChange: DiscoveryListener): void {
    this.listener = onChange;
    this.current = this.fleet.pods.map((p) => p.address);
    this.unsubscribe = this.fleet.onChange((pods) => this.follow(pods.map((p) => p.address)));
    this.report();
  }

  stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const t of this.leaving.values()) this.scheduler.clearTimeout(t);
    this.leaving.clear();
    this.listener = undefined;
    return Promise.resolve();
  }

  /** What is reported now: the fleet's pods plus those that left less than `removalLagMs` ago. */
  addresses(): readonly string[] {
    return canonicalAddresses([...this.current, ...this.leaving.keys()]);
  }

  private follow(next: readonly string[]): void {
    const now = new Set(next);
    for (const address of this.current) {
      if (now.has(address) || this.leaving.has(address)) continue;
      if (this.lagMs === 0) continue;
      this.leaving.set(
        address,
        this.scheduler.setTimeout(() => {
          this.leaving.delete(address);
          this.report();
        }, this.lagMs),
      );
    }
    // A pod back at an address that was leaving (a new pod reusing the IP) is simply present again.
    for (const address of now) {
      const t = this.leaving.get(address);
      if (t !== undefined) this.scheduler.clearTimeout(t);
      this.leaving.delete(address);
    }
    this.current = [...next];
    this.report();
  }

  private report(): void {
    const set = this.addresses();
    if (this.last !== undefined && sameAddresses(this.last, set)) return;
    this.last = set;
    this.listener?.(set, undefined);
  }
}
