/**
 * Relations between options: each value may be fine alone and the combination
 * still broken. Every broken relation is one configuration error line naming
 * the key to change, the values involved and what would be allowed, so
 * `--check-config` and start-up refuse it like any bad value.
 *
 * Kept apart from the per-key validation on purpose: it runs on a Config whose
 * every value is already valid, and knows nothing of how values are parsed.
 */
import { isIP } from 'node:net';
import { DAEMON_RETRY_WAITS, DAEMON_SCAN_INTERVAL_MS } from '../core/daemon.js';
import type { HostPort } from '../core/address.js';
import type { Config } from './options.js';

/** The daemon's longest gap between two launch attempts of a plugin: its longest retry wait, acted on at the next scan. */
const DAEMON_LONGEST_RETRY_GAP_MS = Math.max(...DAEMON_RETRY_WAITS.map((r) => r.waitMs)) + DAEMON_SCAN_INTERVAL_MS;

/**
 * Headers the gate reads to classify a request, or writes itself: a routing
 * header with one of these names would overwrite what the daemon or the gate
 * needs (`route-header: x-plugin-id` would send the daemon an address as the
 * plugin id).
 */
const RESERVED_ROUTE_HEADERS: ReadonlySet<string> = new Set([
  'x-plugin-id',
  'x-plugin-unique-identifier',
  'x-api-key',
  'authorization',
  'cookie',
  'host',
  'content-type',
  'content-length',
  'transfer-encoding',
  'connection',
  'x-request-id',
]);

export type RelationConfig = Pick<
  Config,
  | 'grpcListen'
  | 'httpListen'
  | 'adminListen'
  | 'pollIntervalMs'
  | 'pollJitterPercent'
  | 'pollTimeoutMs'
  | 'staleAfterMs'
  | 'retryStallMs'
  | 'routeHeader'
>;

/** One line per broken relation; empty when the options agree. */
export function relationProblems(c: RelationConfig): string[] {
  const problems: string[] = pollingRelationProblems(c);

  // Two listeners on one port: the second bind fails at start-up, or (a
  // wildcard beside a specific address) one face silently answers for another.
  const listeners: [string, HostPort | undefined][] = [
    ['grpc-listen', c.grpcListen],
    ['http-listen', c.httpListen],
    ['admin-listen', c.adminListen],
  ];
  for (let i = 0; i < listeners.length; i++) {
    for (let j = 0; j < i; j++) {
      const [key, a] = listeners[i]!;
      const [otherKey, b] = listeners[j]!;
      if (a === undefined || b === undefined || !overlaps(a, b)) continue;
      problems.push(`${key}: ${show(a)} uses the same port as ${otherKey} (${show(b)}): each listener needs its own address`);
    }
  }

  if (c.routeHeader !== undefined && (RESERVED_ROUTE_HEADERS.has(c.routeHeader) || c.routeHeader.startsWith('x-plugin-gate-'))) {
    problems.push(
      `route-header: "${c.routeHeader}" is a header the daemon or the gate reads, and the gate overwrites the routing header: ` +
        `use a header of its own, e.g. x-envoy-original-dst-host`,
    );
  }
  return problems;
}

/**
 * The relations between the polling options alone: they hold for every command
 * that polls a daemon (the gate and `plugin-gate probe`).
 */
export function pollingRelationProblems(c: Pick<RelationConfig, 'pollIntervalMs' | 'pollJitterPercent' | 'pollTimeoutMs' | 'staleAfterMs' | 'retryStallMs'>): string[] {
  const problems: string[] = [];
  // A pod is polled at most poll-interval × (1 + jitter) after the last read
  // finished, and that read may take poll-timeout: only a stale-after longer
  // than both keeps a healthy pod live between two polls.
  const jitter = c.pollJitterPercent / 100;
  const longestGap = c.pollIntervalMs * (1 + jitter) + c.pollTimeoutMs;
  if (c.staleAfterMs <= longestGap) {
    problems.push(
      `stale-after: ${fmt(c.staleAfterMs)} must be longer than poll-interval × (1 + poll-jitter) + poll-timeout ` +
        `(${fmt(c.pollIntervalMs)} × ${1 + jitter} + ${fmt(c.pollTimeoutMs)} = ${fmt(longestGap)}): ` +
        `otherwise a healthy pod goes stale between two polls (raise stale-after or lower poll-interval)`,
    );
  }

  // retry-stall judges "has not moved": it needs at least two reads spanning the
  // daemon's longest wait between launch attempts, or a plugin between two
  // retries is declared failed.
  const stallFloor = DAEMON_LONGEST_RETRY_GAP_MS + c.pollIntervalMs * (1 + jitter) + c.pollTimeoutMs;
  if (c.retryStallMs > 0 && c.retryStallMs <= stallFloor) {
    problems.push(
      `retry-stall: ${fmt(c.retryStallMs)} must be 0 (off) or longer than the daemon's longest gap between launch attempts ` +
        `(${fmt(DAEMON_LONGEST_RETRY_GAP_MS)}) plus one poll (${fmt(stallFloor)} in all): otherwise a plugin between two retries counts as failed`,
    );
  }
  return problems;
}

const WILDCARDS: ReadonlySet<string> = new Set(['0.0.0.0', '::']);

/** Same non-ephemeral port, and the same host or a wildcard on either side (of the same family). */
function overlaps(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  if (a.host === b.host) return true;
  // `::` also takes IPv4 on dual-stack hosts; 0.0.0.0 takes every IPv4 address.
  if (a.host === '::' || b.host === '::') return true;
  return (WILDCARDS.has(a.host) && isIP(b.host) === 4) || (WILDCARDS.has(b.host) && isIP(a.host) === 4);
}

function show(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

function fmt(ms: number): string {
  const r = Math.round(ms * 1000) / 1000;
  return r >= 1000 && r % 100 === 0 ? `${r / 1000}s` : `${r}ms`;
}
