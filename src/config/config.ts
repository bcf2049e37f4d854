/**
 * Configuration: flags beat environment beat file beat defaults. Everything is
 * validated once, here; every problem is one line naming the key, the value and
 * what is allowed, and any problem stops start-up.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { formatHostPort, parseHostPort, type HostPort } from '../core/address.js';
import { GateError } from '../core/errors.js';
import { isPluginId } from '../core/plugin-id.js';
import { tlsFileProblems } from '../tls/files.js';
import { OPTIONS, fieldOf, isListKind, type ConfigOf, type OptionKind, type OptionSpec } from './options.js';
import { relationProblems } from './relations.js';
import { kubeCredentialProblems, kubeCredentials } from './kubernetes-files.js';

import type { Config } from './options.js';

export type { Config };

export type RawValues = Record<string, string>;

/** Which gateway convention carries the original request on the forward-auth face. */
export type HttpRequestFrom = Config['httpRequestFrom'];

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

/** The environment variable naming the YAML file: not an option, but ours. */
const CONFIG_FILE_ENV = 'PLUGIN_GATE_CONFIG';

/** Merge the layers and validate; throws GateError config_invalid listing every problem, one line each. */
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
  // Like the TLS files, the Kubernetes credentials are read here so that --check-config
  // says when neither a service account nor the kubeconfig can be used.
  if (config?.discovery === 'kubernetes' && problems.length === 0) problems.push(...kubernetesProblems(config, sources.env));
  if (problems.length > 0 || config === undefined) throw GateError.invalidConfig(problems);
  return config;
}

function kubernetesProblems(config: Config, env: NodeJS.ProcessEnv): string[] {
  const input = { kubeconfig: config.kubeconfig, env };
  const problems = kubeCredentialProblems(input);
  if (problems.length === 0 && config.kubernetesNamespace === undefined && kubeCredentials(input).namespace === undefined) {
    problems.push('kubernetes-namespace: (unset) is required: neither the service account nor the kubeconfig context names a namespace');
  }
  return problems;
}

/** The problem with a PLUGIN_GATE_* variable that names no option (the line starts with the name). */
function unknownEnvProblem(name: string): string {
  // Kubernetes Service links name variables after Services: a Service called plugin-gate yields these.
  const serviceLink = /_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?)$/.test(name);
  return `unknown environment variable, no option is named so (see --help)${serviceLink ? '; it looks like a Kubernetes Service link: set enableServiceLinks: false on the pod' : ''}`;
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
  // A misspelt variable is as wrong as a misspelt key: silently ignoring it would run with the default.
  for (const k of Object.keys(sources.env).sort()) {
    if (!k.startsWith('PLUGIN_GATE_') || k === CONFIG_FILE_ENV) continue;
    const key = k.slice('PLUGIN_GATE_'.length).toLowerCase().replace(/_/g, '-');
    if (keys.has(key) && envName(key) === k) continue;
    problems.push(`${k}: ${foreign(key) ?? unknownEnvProblem(k)}`);
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

/** The Config object of parsed values: one field per row, lists never undefined. */
function build(get: <T extends Parsed>(k: string) => T): Config {
  return buildFrom(OPTIONS, get);
}

/** The config object of any command's table (the gate's, the probe's): one field per row, lists never undefined. */
export function buildFrom<const T extends readonly OptionSpec[]>(table: T, get: <V extends Parsed>(k: string) => V): ConfigOf<T> {
  const out: Record<string, Parsed> = {};
  for (const o of table) {
    const value = get(o.key);
    out[fieldOf(o)] = value === undefined && isListKind(o.kind) ? [] : value;
  }
  // The one cast of this module: the loop above fills exactly the fields ConfigOf derives from the same table.
  return Object.freeze(out) as unknown as ConfigOf<T>;
}

function validate(raw: RawValues, problems: string[]): Config | undefined {
  const get = parseAll(OPTIONS, raw, problems);

  const discovery = get<Config['discovery']>('discovery');
  const targets = get<readonly string[] | undefined>('targets') ?? [];
  if (discovery === 'static' && targets.length === 0 && raw['targets'] === undefined) {
    problems.push('targets: (unset) is required with discovery=static: a comma-separated list of IP:port');
  }
  if (discovery === 'dns' && raw['dns-name'] === undefined) {
    problems.push('dns-name: (unset) is required with discovery=dns: host:port of a headless Service');
  }
  problems.push(...kubernetesNameProblems(raw, discovery, get));
  problems.push(...pollingProblems(raw, get));
  const tlsSet = (k: string): boolean => raw[k] !== undefined;
  if (tlsSet('tls-cert') && !tlsSet('tls-key')) problems.push(`tls-key: (unset) is required with tls-cert: the certificate's PEM private key`);
  if (tlsSet('tls-key') && !tlsSet('tls-cert')) problems.push(`tls-key: ${JSON.stringify(raw['tls-key'])} needs tls-cert, the certificate it belongs to`);
  if (tlsSet('tls-client-ca') && !tlsSet('tls-cert')) {
    problems.push(`tls-client-ca: ${JSON.stringify(raw['tls-client-ca'])} needs tls-cert and tls-key: mutual TLS needs the gate's own certificate`);
  }
  if (problems.length > 0) return undefined;
  return build(get);
}

/** discovery=kubernetes needs its Service; names are checked as Kubernetes checks them. */
function kubernetesNameProblems(raw: RawValues, discovery: Config['discovery'] | undefined, get: <T extends Parsed>(k: string) => T): string[] {
  const problems: string[] = [];
  if (discovery === 'kubernetes' && raw['kubernetes-service'] === undefined) {
    problems.push("kubernetes-service: (unset) is required with discovery=kubernetes: the name of the daemons' Service");
  }
  // A Service name is a DNS-1035 label, a namespace a DNS-1123 label, a port name an IANA service name.
  const name = (key: string, re: RegExp, what: string): void => {
    const value = get<string | undefined>(key);
    if (value !== undefined && !re.test(value)) problems.push(`${key}: ${JSON.stringify(value)} must be ${what}`);
  };
  name('kubernetes-service', /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a Service name: lower-case letters, digits and -, starting with a letter, at most 63');
  name('kubernetes-namespace', /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a namespace name: lower-case letters, digits and -, at most 63');
  const port = get<string | undefined>('kubernetes-port');
  const portOk =
    port === undefined ||
    (/^\d{1,5}$/.test(port) ? Number(port) >= 1 && Number(port) <= 65535 : /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/.test(port) && !port.includes('--'));
  if (!portOk) problems.push(`kubernetes-port: ${JSON.stringify(port)} must be a port number 1-65535 or a port name (lower-case letters, digits and -, at most 15)`);
  return problems;
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
      if (kind.off === true && s === 'off') return undefined;
      const hp = parseHostPort(s, false);
      return hp ?? { problem: `must be IP:port (IPv6 as [addr]:port), port 0-65535${kind.off === true ? ', or off' : ''}` };
    }
    case 'host-port':
      return parseHostPort(s, true) ?? { problem: `must be host:port, e.g. plugin-daemon-headless.dify.svc.cluster.local:5002` };
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
    case 'int':
    case 'percent': {
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

/**
 * Every option at its default, parsed: the one place a default value lives
 * for code that needs it without a whole configuration (a face given only
 * tls-* settings, test fixtures). Options without a default are undefined
 * (lists empty).
 */
export const DEFAULTS: Config = (() => {
  const raw: RawValues = {};
  for (const o of OPTIONS) if (o.default !== undefined) raw[o.key] = o.default;
  const problems: string[] = [];
  const config = build(parseAll(OPTIONS, raw, problems));
  if (problems.length > 0) throw new GateError('internal', `option table defaults do not parse: ${problems.join('; ')}`);
  return config;
})();
