/** One poll of one pod: the configured sources read concurrently, folded into a PodReport. */
import type { Clock } from '../core/clock.js';
import type { Config } from '../config/config.js';
import type { PodReport, SourceName } from './types.js';
import type { StatusHttp } from './http.js';
import { readMetrics } from './metrics.js';
import { readHealth } from './health.js';
import { readReady } from './ready.js';
import type { ReadOptions } from './source.js';

export interface ReadPodOptions extends ReadOptions {
  /** Stamps `PodReport.at`. */
  readonly clock: Clock;
}

/** Reads `sources` of the pod at `address` concurrently. Never rejects: failures are inside the report. */
export async function readPod(address: string, sources: readonly SourceName[], opts: ReadPodOptions): Promise<PodReport> {
  const [metrics, health, ready] = await Promise.all([
    sources.includes('metrics') ? readMetrics(address, opts) : undefined,
    sources.includes('health-check') ? readHealth(address, opts) : undefined,
    sources.includes('ready-check') ? readReady(address, opts) : undefined,
  ]);
  const report: { -readonly [K in keyof PodReport]: PodReport[K] } = { pod: address, at: opts.clock.now() };
  if (metrics !== undefined) report.metrics = metrics;
  if (health !== undefined) report.health = health;
  if (ready !== undefined) report.ready = ready;
  return report;
}

/** What the Poller calls for each pod. */
export type PodReader = (address: string, signal: AbortSignal) => Promise<PodReport>;

/** Binds readPod to the configuration: sources, poll-timeout, max-status-bytes, max-plugins. */
export function podReaderFor(
  config: Pick<Config, 'sources' | 'pollTimeoutMs' | 'maxStatusBytes' | 'maxPlugins'>,
  http: StatusHttp,
  clock: Clock,
): PodReader {
  const base = { http, clock, timeoutMs: config.pollTimeoutMs, maxBytes: config.maxStatusBytes, maxPlugins: config.maxPlugins };
  return (address, signal) => readPod(address, config.sources, { ...base, signal });
}
