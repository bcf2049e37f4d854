/**
 * `discovery=dns`: resolves a headless Service name (A and AAAA) every
 * `dns-interval`. The Service must publish not-ready addresses, or DNS hides
 * exactly the starting pods the gate has to report on.
 *
 * Failure rules, chosen so DNS trouble never empties the fleet:
 * - a failed lookup (timeout, SERVFAIL, NXDOMAIN, refused, or a failure of
 *   either family) keeps the last good set and reports `discovery_failed`;
 * - an answer with no records keeps the last non-empty set and reports
 *   `discovery_empty`: a headless Service with publishNotReadyAddresses lists
 *   every pod that exists, so zero records while daemons run means DNS is wrong,
 *   not that the fleet is gone. Only when nothing was known before (the first
 *   answer) is the empty set reported, with `discovery_empty`, so the gate can
 *   say why it has no pods;
 * - the listener is called when the set changes or the error changes
 *   (appears, clears, or becomes a different one), not on every lookup.
 */
import { Resolver } from 'node:dns/promises';
import type { Config } from '../config/config.js';
import { formatHostPort, type HostPort } from '../core/address.js';
import { GateError, errorCodeOf } from '../core/errors.js';
import { Sleeper, systemScheduler, type Scheduler } from '../core/clock.js';
import { canonicalAddresses, sameAddresses, type Discovery, type DiscoveryListener } from './types.js';

/** The part of node's dns Resolver used here; tests may inject a fake. */
export interface ResolverLike {
  resolve4(host: string): Promise<string[]>;
  resolve6(host: string): Promise<string[]>;
  cancel(): void;
}

export interface DnsDiscoveryOptions {
  /** host:port of the headless Service; every record becomes `record:port`. */
  readonly name: HostPort;
  /** Resolver to ask instead of the system ones. */
  readonly server?: HostPort;
  readonly intervalMs: number;
  /** Bound of one lookup (both families). */
  readonly timeoutMs: number;
  readonly scheduler?: Scheduler;
  /** Builds the resolver of one lookup; default: a node Resolver with one try, bound to `server` when given. */
  readonly newResolver?: () => ResolverLike;
  /** Gets anything the listener throws (background work never throws). */
  readonly onError?: (error: GateError) => void;
}

type Outcome = { readonly addresses: readonly string[] } | { readonly error: GateError };

export class DnsDiscovery implements Discovery {
  private readonly opts: DnsDiscoveryOptions;
  private readonly scheduler: Scheduler;
  private listener: DiscoveryListener | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly sleeper: Sleeper;
  private inflight: ResolverLike | undefined;
  /** Last set reported; undefined before the first report. */
  private last: readonly string[] | undefined;
  private lastErrorKey: string | undefined;

  constructor(opts: DnsDiscoveryOptions) {
    this.opts = opts;
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.sleeper = new Sleeper(this.scheduler);
  }

  /** Looks up at once, then every interval (counted from the end of the previous lookup). */
  start(onChange: DiscoveryListener): void {
    if (this.loop !== undefined || this.stopped) return;
    this.listener = onChange;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.inflight?.cancel();
    this.sleeper.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped) {
        const outcome = await this.lookup();
        if (this.stopped) break;
        this.apply(outcome);
        if (this.stopped) break;
        await this.sleeper.sleep(this.opts.intervalMs);
      }
    } catch (err) {
      // lookup() and apply() catch everything; this only guards against a bug becoming an unhandled rejection.
      this.report(GateError.from(err, 'internal'));
    } finally {
      this.sleeper.cancel();
    }
  }

  private async lookup(): Promise<Outcome> {
    const { name, timeoutMs } = this.opts;
    let resolver: ResolverLike;
    try {
      resolver = this.opts.newResolver?.() ?? this.defaultResolver();
    } catch (err) {
      return { error: GateError.from(err, 'discovery_failed') };
    }
    this.inflight = resolver;
    // c-ares bounds each try; this bounds the whole lookup whatever c-ares does.
    const deadline = this.scheduler.setTimeout(() => resolver.cancel(), timeoutMs);
    try {
      const [a, aaaa] = await Promise.allSettled([resolver.resolve4(name.host), resolver.resolve6(name.host)]);
      const records: string[] = [];
      for (const r of [a, aaaa]) {
        if (r.status === 'fulfilled') records.push(...r.value);
        else if (errorCodeOf(r.reason) !== 'ENODATA') {
          // One family failing would hide its pods: the whole answer is unusable.
          return { error: lookupError(name.host, r.reason, timeoutMs) };
        }
      }
      return { addresses: canonicalAddresses(records.map((ip) => formatHostPort({ host: ip, port: name.port }))) };
    } finally {
      this.scheduler.clearTimeout(deadline);
      this.inflight = undefined;
    }
  }

  private defaultResolver(): ResolverLike {
    const r = new Resolver({ timeout: this.opts.timeoutMs, tries: 1 });
    if (this.opts.server !== undefined) r.setServers([formatHostPort(this.opts.server)]);
    return r;
  }

  private apply(outcome: Outcome): void {
    let addresses: readonly string[];
    let error: GateError | undefined;
    if ('error' in outcome) {
      addresses = this.last ?? [];
      error = outcome.error;
    } else if (outcome.addresses.length === 0) {
      addresses = this.last ?? [];
      error = new GateError('discovery_empty', `${this.opts.name.host} resolved to no A or AAAA records`);
    } else {
      addresses = outcome.addresses;
      error = undefined;
    }
    const errorKey = error === undefined ? undefined : `${error.code}:${error.message}`;
    const first = this.last === undefined;
    if (!first && sameAddresses(this.last!, addresses) && errorKey === this.lastErrorKey) return;
    this.last = Object.freeze([...addresses]);
    this.lastErrorKey = errorKey;
    try {
      this.listener?.(this.last, error);
    } catch (err) {
      this.report(GateError.from(err, 'internal'));
    }
  }

  private report(error: GateError): void {
    try {
      this.opts.onError?.(error);
    } catch {
      // nowhere left to report to
    }
  }
}

/** A DnsDiscovery from `dns-name`, `dns-server`, `dns-interval`, `dns-timeout`. */
export function dnsDiscoveryFor(
  config: Pick<Config, 'dnsName' | 'dnsServer' | 'dnsIntervalMs' | 'dnsTimeoutMs'>,
  onError?: (error: GateError) => void,
  scheduler?: Scheduler,
): DnsDiscovery {
  if (config.dnsName === undefined) throw new GateError('config_invalid', 'dns-name is required with discovery=dns');
  return new DnsDiscovery({
    name: config.dnsName,
    server: config.dnsServer,
    intervalMs: config.dnsIntervalMs,
    timeoutMs: config.dnsTimeoutMs,
    onError,
    scheduler,
  });
}

function lookupError(host: string, err: unknown, timeoutMs: number): GateError {
  // Every lookup failure is discovery_failed (a DNS ENOTFOUND is not a pod's); the code only picks the words.
  const code = errorCodeOf(err);
  const why =
    code === 'ECANCELLED' || code === 'ETIMEOUT'
      ? `no answer within ${timeoutMs}ms`
      : code === 'ENOTFOUND'
        ? 'name not found (NXDOMAIN)'
        : code === 'ESERVFAIL'
          ? 'server failure (SERVFAIL)'
          : (code ?? (err instanceof Error ? err.message : String(err)));
  return new GateError('discovery_failed', `resolving ${host}: ${why}`, { cause: err });
}
