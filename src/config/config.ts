/**
 * Configuration: flags beat environment beat file beat defaults. Everything is
 * validated once, here; every problem is one line naming the key, the value and
 * what is allowed, and any problem stops start-up.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { OPTIONS, type OptionKind, type OptionSpec } from './options.js';
import type { SourceName } from '../status/types.js';
import { tlsFileProblems } from './tls-files.js';
import { isPluginId } from '../core/plugin-id.js';
import { relationProblems } from './relations.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface Config {
  readonly grpcListen: HostPort;
  readonly httpListen: HostPort | undefined;
  readonly adminListen: HostPort;
  readonly discovery: 'static' | 'dns';
  readonly targets: readonly string[];
  readonly dnsName: HostPort | undefined;
  readonly dnsServer: HostPort | undefined;
  readonly dnsIntervalMs: number;
  readonly dnsTimeoutMs: number;
  readonly sources: readonly SourceName[];
  readonly pollIntervalMs: number;
  readonly pollJitterPercent: number;
  readonly pollTimeoutMs: number;
  readonly maxStatusBytes: number;
  readonly daemonRetryLimit: number;
  readonly retryStallMs: number;
  readonly unreachableAfter: number;
  readonly staleAfterMs: number;
  readonly startupGraceMs: number;
  readonly startupMaxMs: number;
  readonly removedRetentionMs: number;
  readonly unknownPlugin: 'allow' | 'deny';
  readonly retryAfterMs: number;
  readonly failedRetryAfterMs: number;
  readonly routeHeader: string | undefined;
  readonly dryRun: boolean;
  readonly grpcReflection: boolean;
  readonly grpcReceiveTimeoutMs: number;
  readonly grpcMaxConcurrentStreams: number;
  readonly grpcMaxConnections: number;
  readonly grpcMaxConnectionIdleMs: number;
  readonly maxPlugins: number;
  /** 0 = holding off. */
  readonly holdStartingMs: number;
  readonly maxHeld: number;
  readonly httpDenyStatus: number;
  readonly httpPathPrefix: string;
  readonly httpRequestFrom: HttpRequestFrom;
  readonly httpMaxHeaderBytes: number;
  readonly decisionLog: 'all' | 'denied' | 'none';
  readonly decisionLogRate: number;
  readonly logLevel: string;
  readonly logBufferBytes: number;
  readonly redactHeaders: readonly string[];
  /** PEM files of the gRPC and HTTP faces' TLS; tlsCert unset = plaintext. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Set: mutual TLS, clients need a certificate signed by one of these CAs. */
  readonly tlsClientCa: string | undefined;
  readonly tlsReloadMs: number;
  readonly drainMs: number;
}

export type RawValues = Record<string, string>;

/** Which gateway convention carries the original request on the forward-auth face. */
export type HttpRequestFrom = 'auto' | 'x-original-url' | 'x-original-uri' | 'x-forwarded-uri' | 'request';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

/** The header names no log ever carries, whatever is configured. */
export const ALWAYS_REDACTED = ['x-api-key', 'authorization', 'cookie', 'set-cookie', 'proxy-authorization'] as const;

export function envName(key: string): string {
  return 'PLUGIN_GATE_' + key.toUpperCase().replace(/-/g, '_');
}

export interface Sources {
  /** Values from flags, already split into key → value. */
  readonly flags: RawValues;
  readonly env: NodeJS.ProcessEnv;
  /** Path of the YAML file, if any (`--config` or PLUGIN_GATE_CONFIG). */
  readonly file: string | undefined;
}

/** Merge the layers and validate; throws ConfigError listing every problem. */
export function loadConfig(sources: Sources): Config {
  const problems: string[] = [];
  const merged = mergeLayers(OPTIONS, sources, problems);
  const config = validate(merged, problems);
  if (config !== undefined) problems.push(...relationProblems(config));
  // The TLS files are read and checked here (not in validate, which stays pure)
  // so that --check-config reports an unusable certificate like any bad value.
  if (config?.tlsCert !== undefined && config.tlsKey !== undefined && problems.length === 0) {
    problems.push(...tlsFileProblems({ cert: config.tlsCert, key: config.tlsKey, clientCa: config.tlsClientCa }));
  }
  if (problems.length > 0 || config === undefined) throw new ConfigError(problems);
  return config;
}

/**
 * Why a key outside `table` was given, when the command knows it (a gate
 * option given to `plugin-gate probe`); undefined means simply unknown.
 */
export type ForeignKey = (key: string) => string | undefined;

/**
 * Defaults, then file, then environment, then flags, for the options of one
 * command's table. Keys outside the table are problems; `foreign` may say why.
 */
export function mergeLayers(table: readonly OptionSpec[], sources: Sources, problems: string[], foreign: ForeignKey = () => undefined): RawValues {
  const keys: ReadonlySet<string> = new Set(table.map((o) => o.key));
  const merged: RawValues = {};
  for (const o of table) if (o.default !== undefined) merged[o.key] = o.default;

  if (sources.file !== undefined) Object.assign(merged, readFileLayer(sources.file, problems, keys, foreign));
  for (const o of table) {
    const v = sources.env[envName(o.key)];
    if (v !== undefined) merged[o.key] = v;
  }
  for (const [k, v] of Object.entries(sources.env)) {
    if (v === undefined || !k.startsWith('PLUGIN_GATE_') || k === 'PLUGIN_GATE_CONFIG') continue;
    const key = k.slice('PLUGIN_GATE_'.length).toLowerCase().replace(/_/g, '-');
    const why = keys.has(key) ? undefined : foreign(key);
    if (why !== undefined) problems.push(`${k}: ${why}`);
  }
  for (const [k, v] of Object.entries(sources.flags)) {
    if (keys.has(k)) merged[k] = v;
    else problems.push(`--${k}: ${foreign(k) ?? 'unknown option (see --help)'}`);
  }
  return merged;
}

function readFileLayer(path: string, problems: string[], keys: ReadonlySet<string>, foreign: ForeignKey): RawValues {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`config: cannot read ${JSON.stringify(path)}: ${(err as Error).message}`);
    return {};
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    problems.push(`config: ${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    return {};
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push(`config: ${path} must be a mapping of option: value`);
    return {};
  }
  const out: RawValues = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if (!keys.has(k)) {
      problems.push(`${k}: ${foreign(k) ?? `unknown key in ${path} (see --help)`}`);
      continue;
    }
    if (Array.isArray(v)) out[k] = v.map(String).join(',');
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else problems.push(`${k}: ${JSON.stringify(v)} must be a string, number, boolean or list`);
  }
  return out;
}

export type Parsed = string | number | boolean | HostPort | readonly string[] | undefined;

function validate(raw: RawValues, problems: string[]): Config | undefined {
  const get = parseAll(OPTIONS, raw, problems);

  const discovery = get<'static' | 'dns'>('discovery');
  const targets = get<readonly string[] | undefined>('targets') ?? [];
  const dnsNameRaw = get<string | undefined>('dns-name');
  let dnsName: HostPort | undefined;
  if (discovery === 'static' && targets.length === 0 && raw['targets'] === undefined) {
    problems.push('targets: (unset) is required with discovery=static: a comma-separated list of IP:port');
  }
  if (discovery === 'dns') {
    if (dnsNameRaw === undefined) problems.push('dns-name: (unset) is required with discovery=dns: host:port of a headless Service');
    else {
      const hp = parseHostPort(dnsNameRaw, true);
      if (hp === undefined) problems.push(`dns-name: ${JSON.stringify(dnsNameRaw)} must be host:port, e.g. plugin-daemon-headless.dify.svc.cluster.local:5002`);
      else dnsName = hp;
    }
  }
  problems.push(...pollingProblems(raw, get));
  const startupGrace = get<number>('startup-grace');
  const startupMax = get<number>('startup-max');
  const pollTimeout = get<number>('poll-timeout');
  const pollInterval = get<number>('poll-interval');
  const sources = get<readonly string[]>('sources');
  const tlsSet = (k: string): boolean => raw[k] !== undefined;
  if (tlsSet('tls-cert') && !tlsSet('tls-key')) problems.push(`tls-key: (unset) is required with tls-cert: the certificate's PEM private key`);
  if (tlsSet('tls-key') && !tlsSet('tls-cert')) problems.push(`tls-key: ${JSON.stringify(raw['tls-key'])} needs tls-cert, the certificate it belongs to`);
  if (tlsSet('tls-client-ca') && !tlsSet('tls-cert')) {
    problems.push(`tls-client-ca: ${JSON.stringify(raw['tls-client-ca'])} needs tls-cert and tls-key: mutual TLS needs the gate's own certificate`);
  }
  if (problems.length > 0) return undefined;

  const httpRaw = raw['http-listen'];
  return {
    grpcListen: get<HostPort>('grpc-listen'),
    httpListen: httpRaw === 'off' ? undefined : get<HostPort>('http-listen'),
    adminListen: get<HostPort>('admin-listen'),
    discovery,
    targets,
    dnsName,
    dnsServer: get<HostPort | undefined>('dns-server'),
    dnsIntervalMs: get<number>('dns-interval'),
    dnsTimeoutMs: get<number>('dns-timeout'),
    sources: sources as readonly SourceName[],
    pollIntervalMs: pollInterval,
    pollJitterPercent: get<number>('poll-jitter'),
    pollTimeoutMs: pollTimeout,
    maxStatusBytes: get<number>('max-status-bytes'),
    daemonRetryLimit: get<number>('daemon-retry-limit'),
    retryStallMs: get<number>('retry-stall'),
    unreachableAfter: get<number>('unreachable-after'),
    staleAfterMs: get<number>('stale-after'),
    startupGraceMs: startupGrace,
    startupMaxMs: startupMax,
    removedRetentionMs: get<number>('removed-retention'),
    unknownPlugin: get<'allow' | 'deny'>('unknown-plugin'),
    retryAfterMs: get<number>('retry-after'),
    failedRetryAfterMs: get<number>('failed-retry-after'),
    routeHeader: get<string | undefined>('route-header'),
    dryRun: get<boolean>('dry-run'),
    grpcReflection: get<boolean>('grpc-reflection'),
    grpcReceiveTimeoutMs: get<number>('grpc-receive-timeout'),
    grpcMaxConcurrentStreams: get<number>('grpc-max-concurrent-streams'),
    grpcMaxConnections: get<number>('grpc-max-connections'),
    grpcMaxConnectionIdleMs: get<number>('grpc-max-connection-idle'),
    maxPlugins: get<number>('max-plugins'),
    holdStartingMs: get<number>('hold-starting'),
    maxHeld: get<number>('max-held'),
    httpDenyStatus: get<number>('http-deny-status'),
    httpPathPrefix: get<string>('http-path-prefix') ?? '',
    httpRequestFrom: get<HttpRequestFrom>('http-request-from'),
    httpMaxHeaderBytes: get<number>('http-max-header-bytes'),
    decisionLog: get<'all' | 'denied' | 'none'>('decision-log'),
    decisionLogRate: get<number>('decision-log-rate'),
    logLevel: get<string>('log-level'),
    logBufferBytes: get<number>('log-buffer-bytes'),
    redactHeaders: get<readonly string[]>('redact-headers') ?? [],
    tlsCert: get<string | undefined>('tls-cert'),
    tlsKey: get<string | undefined>('tls-key'),
    tlsClientCa: get<string | undefined>('tls-client-ca'),
    tlsReloadMs: get<number>('tls-reload'),
    drainMs: get<number>('drain'),
  };
}

/**
 * The rules between the polling and state-rule options, shared by every command
 * that polls a daemon (the gate and `plugin-gate probe`).
 */
export function pollingProblems(raw: RawValues, get: <T extends Parsed>(k: string) => T): string[] {
  const problems: string[] = [];
  const startupGrace = get<number | undefined>('startup-grace');
  const startupMax = get<number | undefined>('startup-max');
  if (startupGrace !== undefined && startupMax !== undefined && startupGrace > startupMax) {
    problems.push(`startup-grace: ${raw['startup-grace']} must not exceed startup-max (${raw['startup-max']})`);
  }
  const pollTimeout = get<number | undefined>('poll-timeout');
  const pollInterval = get<number | undefined>('poll-interval');
  if (pollTimeout !== undefined && pollInterval !== undefined && pollTimeout > pollInterval * 5) {
    problems.push(`poll-timeout: ${raw['poll-timeout']} must be at most five poll intervals (${raw['poll-interval']})`);
  }
  const sources = get<readonly string[] | undefined>('sources');
  if (sources !== undefined && !sources.includes('metrics')) {
    problems.push(`sources: ${JSON.stringify(raw['sources'])} must include metrics: it is the only per-plugin source (health-check and ready-check add to it)`);
  }
  return problems;
}

/**
 * Parses every option of `table` present in `raw` by its kind; a bad value is
 * one problem naming the key, the value and what is allowed.
 */
export function parseAll(table: readonly OptionSpec[], raw: RawValues, problems: string[]): <T extends Parsed>(k: string) => T {
  const v = new Map<string, Parsed>();
  for (const o of table) {
    const value = raw[o.key];
    if (value === undefined) continue;
    const r = parseValue(o, value);
    if (typeof r === 'object' && r !== null && 'problem' in r) problems.push(`${o.key}: ${JSON.stringify(value)} ${r.problem}`);
    else v.set(o.key, r);
  }
  return <T extends Parsed>(k: string): T => v.get(k) as T;
}

export function parseValue(o: OptionSpec, value: string): Parsed | { problem: string } {
  const kind: OptionKind = o.kind;
  const s = value.trim();
  switch (kind.type) {
    case 'string':
      return s === '' ? { problem: 'must not be empty' } : s;
    case 'path':
      return s === '' || /^\/[\x21-\x7e]*$/.test(s) ? s.replace(/\/+$/, '') : { problem: 'must be empty or an absolute path starting with /' };
    case 'address': {
      if (o.key === 'http-listen' && s === 'off') return undefined;
      const hp = parseHostPort(s, false);
      return hp ?? { problem: 'must be IP:port (IPv6 as [addr]:port), port 0-65535' };
    }
    case 'address-list': {
      const parts = s.split(',').map((p) => p.trim()).filter((p) => p !== '');
      const bad = parts.filter((p) => parseHostPort(p, false) === undefined || parseHostPort(p, false)?.port === 0);
      if (parts.length === 0) return { problem: 'must list at least one IP:port' };
      if (bad.length > 0) return { problem: `has entries that are not IP:port with a non-zero port: ${bad.join(', ')}` };
      return [...new Set(parts.map((p) => formatHostPort(parseHostPort(p, false)!)))];
    }
    case 'duration': {
      const ms = parseDuration(s);
      if (ms === undefined) return { problem: 'must be a duration such as 250ms, 2s, 5m or 1h' };
      if (ms < kind.minMs || ms > kind.maxMs) return { problem: `must be between ${fmtMs(kind.minMs)} and ${fmtMs(kind.maxMs)}` };
      return ms;
    }
    case 'int': {
      if (!/^-?\d+$/.test(s)) return { problem: `must be a whole number from ${kind.min} to ${kind.max}` };
      const n = Number(s);
      if (n < kind.min || n > kind.max) return { problem: `must be a whole number from ${kind.min} to ${kind.max}` };
      return n;
    }
    case 'bool':
      if (['true', '1', 'yes', 'on'].includes(s.toLowerCase())) return true;
      if (['false', '0', 'no', 'off'].includes(s.toLowerCase())) return false;
      return { problem: 'must be true or false' };
    case 'enum':
      return kind.values.includes(s) ? s : { problem: `must be one of ${kind.values.join(', ')}` };
    case 'enum-list': {
      const parts = s.split(',').map((p) => p.trim()).filter((p) => p !== '');
      const bad = parts.filter((p) => !kind.values.includes(p));
      return bad.length > 0 ? { problem: `has unknown entries ${bad.join(', ')}; allowed: ${kind.values.join(', ')}` } : [...new Set(parts)];
    }
    case 'header-name':
      return /^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/i.test(s) && !s.startsWith(':') ? s.toLowerCase() : { problem: 'must be an HTTP header name' };
    case 'plugin-list': {
      const parts = s.split(',').map((p) => p.trim()).filter((p) => p !== '');
      const bad = parts.filter((p) => !isPluginId(p));
      return bad.length > 0 ? { problem: `has entries that are not plugin ids (author/name): ${bad.join(', ')}` } : [...new Set(parts)];
    }
    case 'fraction': {
      const n = /^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(s) ? Number(s) : NaN;
      return Number.isFinite(n) && n >= 0 && n <= 1 ? n : { problem: 'must be a number from 0 to 1, e.g. 0.9' };
    }
    case 'header-list': {
      const parts = s.split(',').map((p) => p.trim().toLowerCase()).filter((p) => p !== '');
      const bad = parts.filter((p) => !/^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/.test(p));
      return bad.length > 0 ? { problem: `has entries that are not header names: ${bad.join(', ')}` } : parts;
    }
  }
}

export function parseDuration(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const unit = m[2];
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * factor);
}

function fmtMs(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * `IP:port` or `[v6]:port`; with allowName, a DNS name is accepted as host.
 * Port 0 is accepted (an ephemeral listener, used by tests).
 */
export function parseHostPort(s: string, allowName: boolean): HostPort | undefined {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']:');
    if (end < 0) return undefined;
    host = s.slice(1, end);
    portText = s.slice(end + 2);
    if (isIP(host) !== 6) return undefined;
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) return undefined;
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    // Names may hold underscores: Docker Compose service names do (Dify's is plugin_daemon).
    if (isIP(host) !== 4 && !(allowName && /^[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$/i.test(host))) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** `--help` text, generated from the option table. */
export function helpText(): string {
  return helpFor(OPTIONS, [
    'plugin-gate: traffic gate for Dify plugin-daemon fleets (Envoy ext_authz + HTTP forward-auth)',
    '',
    'usage: plugin-gate [--config FILE] [--OPTION VALUE ...] [--check-config] [--help] [--version]',
    '       plugin-gate probe --target IP:port [...]   (pod readiness sidecar: plugin-gate probe --help)',
  ]);
}

/** Help for one command: its intro lines, the layering rule, then every option of its table. */
export function helpFor(table: readonly OptionSpec[], intro: readonly string[]): string {
  const lines = [
    ...intro,
    '',
    'Every option is also PLUGIN_GATE_<OPTION> in the environment and <option>: in the YAML file.',
    'Flags beat environment beat file beat defaults. Durations: 250ms, 2s, 5m, 1h.',
    '',
  ];
  for (const o of table) {
    const def = o.default === undefined ? '(unset)' : o.default === '' ? '""' : o.default;
    lines.push(`  --${o.key.padEnd(22)} ${o.help}`);
    lines.push(`  ${''.padEnd(24)} default: ${def}   env: ${envName(o.key)}`);
  }
  return lines.join('\n');
}

/** A Config for tests and the demo: defaults, then the given overrides. */
export function configFor(flags: RawValues): Config {
  return loadConfig({ flags, env: {}, file: undefined });
}
