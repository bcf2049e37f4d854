/**
 * The options of `plugin-gate probe`: its own (what to watch, where to answer,
 * the readiness policy) and the gate's polling and state-rule options, taken
 * from the gate's table by key so each is spelt, defaulted and documented once.
 * Every other gate option is refused by name: a sidecar watching one daemon has
 * no listeners, discovery or decisions to configure.
 */
import { OPTIONS, type OptionSpec } from '../config/options.js';

/** Options only the probe has. */
export const PROBE_OWN_OPTIONS = [
  { key: 'target', kind: { type: 'address' }, default: undefined, help: 'the daemon this probe watches, IP:port (in its pod: 127.0.0.1:5002)' },
  { key: 'listen', kind: { type: 'address' }, default: '0.0.0.0:9193', help: 'probe HTTP listener: /readyz /status /metrics /healthz' },
  { key: 'require', kind: { type: 'plugin-list' }, default: '', help: 'plugins that must be running for the pod to be ready (author/name, comma-separated); one that gave up keeps it unready' },
  { key: 'min-running', kind: { type: 'fraction' }, default: undefined, help: 'ready once this fraction (0 to 1) of the plugins the daemon reports is running' },
  { key: 'failed', kind: { type: 'enum', values: ['ignore', 'block'] }, default: 'ignore', help: 'a plugin that gave up: ignore it, or block readiness while it is failed' },
  { key: 'latch', kind: { type: 'bool' }, default: 'true', help: 'once ready, stay ready until the daemon process restarts (a new process_start_time_seconds)' },
] as const satisfies readonly OptionSpec[];

type GateOption = (typeof OPTIONS)[number];

/** The gate's own row for `key` (the same object, not a copy). */
function shared<K extends GateOption['key']>(key: K): Extract<GateOption, { key: K }> {
  const o = OPTIONS.find((x) => x.key === key);
  // A shared key that left the gate's table fails to compile; this guards the run-time lookup too.
  if (o === undefined) throw new Error(`probe options: the gate has no option ${key}`);
  return o as Extract<GateOption, { key: K }>;
}

/** Gate options the probe takes as they are: how a daemon is read and how its states are derived. */
const PROBE_SHARED_OPTIONS = [
  shared('sources'),
  shared('poll-interval'),
  shared('poll-jitter'),
  shared('poll-timeout'),
  shared('health-check-interval'),
  shared('max-status-bytes'),
  shared('daemon-retry-limit'),
  shared('retry-stall'),
  shared('unreachable-after'),
  shared('stale-after'),
  shared('startup-grace'),
  shared('startup-max'),
  shared('max-plugins'),
  shared('log-level'),
  shared('log-buffer-bytes'),
] as const;

export const PROBE_SHARED_KEYS: readonly string[] = PROBE_SHARED_OPTIONS.map((o) => o.key);

/** Every option of `plugin-gate probe`; its ProbeConfig type is derived from this table. */
export const PROBE_OPTIONS = [...PROBE_OWN_OPTIONS, ...PROBE_SHARED_OPTIONS] as const;

const GATE_ONLY: ReadonlySet<string> = new Set(OPTIONS.map((o) => o.key).filter((k) => !PROBE_SHARED_KEYS.includes(k)));

/** Why a key is refused by the probe when the gate knows it; undefined for a key nobody knows. */
export function gateOnly(key: string): string | undefined {
  if (key === 'targets') return 'a gate option; plugin-gate probe watches one daemon: use --target IP:port';
  if (key === 'admin-listen') return 'a gate option; the probe answers on --listen';
  if (GATE_ONLY.has(key)) return 'a gate option that plugin-gate probe does not use (see plugin-gate probe --help)';
  return undefined;
}
