/**
 * Discovery: where the daemon pods are. A source reports the whole current
 * set, never a delta, as `IP:port` strings (IPv6 as `[addr]:port`), sorted and
 * deduplicated, so a consumer can compare sets by value.
 */
import type { GateError } from '../core/errors.js';

/**
 * Called with the full address set whenever it or the error state changes.
 * `error` is set while the source cannot give a fresh answer; the addresses
 * are then the last good set, never emptied because of a failure.
 */
export type DiscoveryListener = (addresses: readonly string[], error: GateError | undefined) => void;

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
