/**
 * Discovery: where the daemon pods are. A source reports the whole current
 * set, never a delta, as `IP:port` strings (IPv6 as `[addr]:port`), sorted and
 * deduplicated, so a consumer can compare sets by value.
 */
import type { GateError } from '../core/errors.js';

/**
 * What a source that knows more than an address says about it (Kubernetes
 * EndpointSlices do). The address stays the routing key; this only annotates it.
 */
export interface Endpoint {
  /** The pod's name from the endpoint's targetRef, when it names a Pod. */
  readonly podName: string | undefined;
  /** Endpoint conditions as the API gives them (ready and serving unset = true, terminating unset = false). */
  readonly ready: boolean;
  /** The pod's own readiness, even while terminating or with publishNotReadyAddresses. */
  readonly serving: boolean;
  /** The pod is being deleted: it must get no new requests. */
  readonly terminating: boolean;
}

/**
 * Called with the full address set whenever it or the error state changes.
 * `error` is set while the source cannot give a fresh answer; the addresses
 * are then the last good set, never emptied because of a failure.
 * `endpoints` (by address) is given by sources that know pod names and
 * conditions; static and DNS discovery leave it out.
 */
export type DiscoveryListener = (
  addresses: readonly string[],
  error: GateError | undefined,
  endpoints?: ReadonlyMap<string, Endpoint>,
) => void;

export interface Discovery {
  /** Begins discovery; the listener gets a first call as soon as the first answer (or failure) is known. */
  start(onChange: DiscoveryListener): void;
  /** Stops every timer and in-flight lookup; no listener call after it resolves. */
  stop(): Promise<void>;
}

/** Sorted, duplicates removed: the one canonical form of an address set. */
export function canonicalAddresses(addresses: Iterable<string>): string[] {
  return [...new Set(addresses)].sort();
}

export function sameAddresses(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
