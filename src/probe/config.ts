/**
 * Configuration of `plugin-gate probe`: the same layers (flags, environment,
 * file, defaults), the same value rules and the same cross-checks as the gate,
 * over the probe's own option table.
 */
import { buildFrom, mergeLayers, parseAll, pollingProblems, type Sources } from '../config/config.js';
import type { ConfigOf } from '../config/options.js';
import { formatHostPort, type HostPort } from '../core/address.js';
import { GateError } from '../core/errors.js';
import type { TrackerConfig } from '../fleet/tracker.js';
import { pollingRelationProblems } from '../config/relations.js';
import { PROBE_OPTIONS, gateOnly } from './options.js';

/**
 * The validated configuration: one field per row of PROBE_OPTIONS (`ConfigOf`,
 * as the gate's Config), with the target as the `IP:port` string the readers use.
 */
export type ProbeConfig = Omit<ConfigOf<typeof PROBE_OPTIONS>, 'target'> & { readonly target: string };

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
  const config: ProbeConfig = { ...buildFrom(PROBE_OPTIONS, get), target: formatHostPort(target) };
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
