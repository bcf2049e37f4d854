/**
 * Configuration of `plugin-gate probe`: the same layers (flags, environment,
 * file, defaults), the same value rules and the same cross-checks as the gate,
 * over the probe's own option table.
 */
import { mergeLayers, parseAll, pollingProblems, type Sources } from '../config/config.js';
import type { HostPort } from '../core/address.js';
import { GateError } from '../core/errors.js';
import type { PluginId } from '../core/plugin-id.js';
import type { SourceName } from '../status/types.js';
import type { TrackerConfig } from '../fleet/tracker.js';
import { pollingRelationProblems } from '../config/relations.js';
import { PROBE_OPTIONS, gateOnly } from './options.js';
import type { ReadinessPolicy } from './policy.js';

export interface ProbeConfig extends ReadinessPolicy {
  readonly target: string;
  readonly listen: HostPort;
  readonly sources: readonly SourceName[];
  readonly pollIntervalMs: number;
  readonly pollJitterPercent: number;
  readonly pollTimeoutMs: number;
  readonly healthCheckIntervalMs: number;
  readonly maxStatusBytes: number;
  readonly daemonRetryLimit: number;
  readonly retryStallMs: number;
  readonly unreachableAfter: number;
  readonly staleAfterMs: number;
  readonly startupGraceMs: number;
  readonly startupMaxMs: number;
  readonly maxPlugins: number;
  readonly logLevel: string;
  readonly logBufferBytes: number;
}

/** Throws GateError config_invalid listing every problem, one line each, naming the key. */
export function loadProbeConfig(sources: Sources): ProbeConfig {
  const problems: string[] = [];
  const raw = mergeLayers(PROBE_OPTIONS, sources, problems, gateOnly);
  const get = parseAll(PROBE_OPTIONS, raw, problems);
  problems.push(...pollingProblems(raw, get));
  const target = get<HostPort | undefined>('target');
  if (raw['target'] === undefined) problems.push('target: (unset) is required: the daemon to watch, IP:port (127.0.0.1:5002 in its pod)');
  else if (target !== undefined && target.port === 0) problems.push(`target: ${JSON.stringify(raw['target'])} needs a non-zero port`);
  if (problems.length > 0 || target === undefined) throw GateError.invalidConfig(problems);
  const config: ProbeConfig = {
    target: target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`,
    listen: get<HostPort>('listen'),
    require: get<readonly PluginId[] | undefined>('require') ?? [],
    minRunning: get<number | undefined>('min-running'),
    failed: get<'ignore' | 'block'>('failed'),
    latch: get<boolean>('latch'),
    sources: get<readonly SourceName[]>('sources'),
    pollIntervalMs: get<number>('poll-interval'),
    pollJitterPercent: get<number>('poll-jitter'),
    pollTimeoutMs: get<number>('poll-timeout'),
    healthCheckIntervalMs: get<number>('health-check-interval'),
    maxStatusBytes: get<number>('max-status-bytes'),
    daemonRetryLimit: get<number>('daemon-retry-limit'),
    retryStallMs: get<number>('retry-stall'),
    unreachableAfter: get<number>('unreachable-after'),
    staleAfterMs: get<number>('stale-after'),
    startupGraceMs: get<number>('startup-grace'),
    startupMaxMs: get<number>('startup-max'),
    maxPlugins: get<number>('max-plugins'),
    logLevel: get<string>('log-level'),
    logBufferBytes: get<number>('log-buffer-bytes'),
  };
  problems.push(...pollingRelationProblems(config));
  if (problems.length > 0) throw GateError.invalidConfig(problems);
  return config;
}

/** The gate's tracker, run over one pod: it is never removed, so retention does not matter. */
export function trackerConfigOf(c: ProbeConfig): TrackerConfig {
  return {
    daemonRetryLimit: c.daemonRetryLimit,
    retryStallMs: c.retryStallMs,
    startupGraceMs: c.startupGraceMs,
    startupMaxMs: c.startupMaxMs,
    unreachableAfter: c.unreachableAfter,
    staleAfterMs: c.staleAfterMs,
    removedRetentionMs: 0,
    maxPlugins: c.maxPlugins,
  };
}

/** A ProbeConfig for tests and benchmarks: defaults, then the given flags. */
export function probeConfigFor(flags: Record<string, string>): ProbeConfig {
  return loadProbeConfig({ flags, env: {}, file: undefined });
}
