/**
 * Every option of plugin-gate, in one table. The same table drives `--help`,
 * flag / environment / file parsing and validation, so a key is spelt one way
 * everywhere: `--poll-interval`, `PLUGIN_GATE_POLL_INTERVAL`, `poll-interval:`.
 *
 * The `Config` type is derived from the table too (see `ConfigOf`): a row's
 * field is its key in camelCase, with `Ms` after a duration and `Percent`
 * after a percentage (`poll-interval` → `pollIntervalMs`); its type follows the
 * kind, and it may be undefined only when the row has no default (lists are
 * empty instead) or the kind allows "off".
 */
import type { HostPort } from '../core/address.js';
import { DAEMON_MAX_RETRY_COUNT } from '../core/daemon.js';

export type OptionKind =
  | { readonly type: 'string' }
  /** IP:port; with `off`, the word "off" turns the listener off (undefined). */
  | { readonly type: 'address'; readonly off?: true }
  /** name:port or IP:port. */
  | { readonly type: 'host-port' }
  | { readonly type: 'address-list' }
  | { readonly type: 'duration'; readonly minMs: number; readonly maxMs: number }
  | { readonly type: 'int'; readonly min: number; readonly max: number }
  | { readonly type: 'percent'; readonly min: number; readonly max: number }
  | { readonly type: 'bool' }
  | { readonly type: 'enum'; readonly values: readonly string[] }
  | { readonly type: 'enum-list'; readonly values: readonly string[] }
  | { readonly type: 'header-name' }
  | { readonly type: 'header-list' }
  | { readonly type: 'path' }
  | { readonly type: 'plugin-list' }
  | { readonly type: 'fraction' };

export interface OptionSpec {
  readonly key: string;
  readonly kind: OptionKind;
  /** Default as the user would write it; undefined = unset. */
  readonly default: string | undefined;
  readonly help: string;
}

const ms = (minMs: number, maxMs: number) => ({ type: 'duration', minMs, maxMs }) as const;

export const OPTIONS = [
  // where the gate listens
  { key: 'grpc-listen', kind: { type: 'address' }, default: '0.0.0.0:9191', help: 'gRPC ext_authz (envoy.service.auth.v3) and grpc.health.v1 listener' },
  { key: 'http-listen', kind: { type: 'address', off: true }, default: '0.0.0.0:9192', help: 'HTTP forward-auth listener (nginx, Traefik, Envoy http_service); "off" disables it' },
  { key: 'admin-listen', kind: { type: 'address' }, default: '0.0.0.0:9190', help: 'admin HTTP listener: /healthz /readyz /status /metrics' },

  // discovery
  { key: 'discovery', kind: { type: 'enum', values: ['static', 'dns', 'kubernetes'] }, default: 'static', help: "how daemon pods are found: the --targets list, a DNS name re-resolved on an interval, or the EndpointSlices of a Kubernetes Service (watched)" },
  { key: 'targets', kind: { type: 'address-list' }, default: undefined, help: 'static daemon pods, comma-separated IP:port (discovery=static)' },
  { key: 'dns-name', kind: { type: 'host-port' }, default: undefined, help: 'host:port of a headless Service with publishNotReadyAddresses (discovery=dns)' },
  { key: 'dns-server', kind: { type: 'address' }, default: undefined, help: 'resolver IP:port to ask instead of the system resolvers (discovery=dns)' },
  { key: 'dns-interval', kind: ms(100, 3_600_000), default: '5s', help: 'how often the DNS name is resolved again' },
  { key: 'dns-timeout', kind: ms(50, 60_000), default: '2s', help: 'timeout of one DNS resolution' },
  { key: 'kubernetes-service', kind: { type: 'string' }, default: undefined, help: "name of the daemons' Service whose EndpointSlices are watched (discovery=kubernetes)" },
  { key: 'kubernetes-namespace', kind: { type: 'string' }, default: undefined, help: "the Service's namespace; default: the gate's own (in a pod) or the kubeconfig context's" },
  { key: 'kubernetes-port', kind: { type: 'string' }, default: undefined, help: "the daemon port: a number, or the name of a port of the Service's EndpointSlices; default: their only port" },
  { key: 'kubeconfig', kind: { type: 'string' }, default: undefined, help: 'kubeconfig file to reach the API server from outside a cluster (current-context; token, tokenFile or client certificate); default: in-cluster service account' },
  { key: 'kubernetes-timeout', kind: ms(100, 120_000), default: '10s', help: 'timeout of one Kubernetes API request (a list, and the connect and response head of a watch)' },
  { key: 'kubernetes-watch-timeout', kind: ms(1000, 3_600_000), default: '60s', help: "the watch's timeoutSeconds: the API server ends each watch after it and the gate watches again from where it was; a watch silent 10s longer is abandoned as dead" },

  // status readers
  { key: 'sources', kind: { type: 'enum-list', values: ['metrics', 'health-check', 'ready-check'] }, default: 'metrics,health-check', help: 'status endpoints read on every pod; ready-check needs a daemon with /ready/check' },
  { key: 'poll-interval', kind: ms(100, 600_000), default: '2s', help: 'time between polls of one pod (jittered)' },
  { key: 'poll-jitter', kind: { type: 'percent', min: 0, max: 50 }, default: '10', help: 'poll interval jitter, percent either way' },
  { key: 'poll-timeout', kind: ms(20, 60_000), default: '1s', help: 'timeout of one status request' },
  { key: 'settled-poll-interval', kind: ms(0, 600_000), default: '6s', help: 'time between polls of a settled pod (live, past start-up, no plugin starting); never below poll-interval, and capped so that such a pod cannot go stale between polls; its exit still shows at once through its closed connection' },
  { key: 'health-check-interval', kind: ms(0, 86_400_000), default: '60s', help: 'with metrics on, health-check (version and platform only) is read again after this long, on a new daemon process, or when metrics fail; 0 = every poll' },
  { key: 'max-status-bytes', kind: { type: 'int', min: 1024, max: 268_435_456 }, default: '1048576', help: 'largest status body read; a larger one is status_too_large (a daemon with 2,000 plugins serves about 290 KiB)' },
  { key: 'daemon-retry-limit', kind: { type: 'int', min: 1, max: 1000 }, default: String(DAEMON_MAX_RETRY_COUNT), help: "the daemon's launch retry limit: failed launches at or past it mean the plugin gave up" },
  { key: 'retry-stall', kind: ms(0, 86_400_000), default: '5m', help: 'a plugin between retries whose gauge and failure count have not moved this long has given up (0 = trust the count only)' },
  { key: 'unreachable-after', kind: { type: 'int', min: 1, max: 100 }, default: '3', help: 'consecutive failed polls before a pod is unreachable' },
  { key: 'stale-after', kind: ms(100, 3_600_000), default: '10s', help: 'age of the last good report past which a pod is stale' },
  { key: 'startup-grace', kind: ms(0, 86_400_000), default: '60s', help: 'a pod younger than this (process start time) is in start-up whatever it reports' },
  { key: 'startup-max', kind: ms(0, 86_400_000), default: '15m', help: 'a pod older than this is past start-up whatever it reports' },
  { key: 'removed-retention', kind: ms(0, 86_400_000), default: '5m', help: 'how long a pod gone from discovery stays visible as removed in /status' },

  // decisions
  { key: 'unknown-plugin', kind: { type: 'enum', values: ['allow', 'deny'] }, default: 'allow', help: 'a plugin no pod reports once the fleet is past start-up: allow to any live pod, or deny' },
  { key: 'retry-after', kind: ms(1000, 3_600_000), default: '5s', help: 'base Retry-After of a deny (a retrying plugin may get the daemon backoff instead)' },
  { key: 'failed-retry-after', kind: ms(1000, 86_400_000), default: '60s', help: 'Retry-After when every pod gave up on the plugin' },
  { key: 'route-header', kind: { type: 'header-name' }, default: undefined, help: 'also route by this request header (e.g. x-envoy-original-dst-host); always overwritten or removed by the gate' },
  { key: 'dry-run', kind: { type: 'bool' }, default: 'false', help: 'never deny: allow with reason dry_run and log what would have been denied' },
  { key: 'grpc-reflection', kind: { type: 'bool' }, default: 'false', help: 'serve gRPC server reflection on the gRPC port' },
  { key: 'grpc-max-message-bytes', kind: { type: 'int', min: 4096, max: 16_777_216 }, default: '131072', help: "largest CheckRequest accepted (RESOURCE_EXHAUSTED beyond): Envoy's request headers are 60 KiB at most by default" },
  { key: 'grpc-receive-timeout', kind: ms(100, 300_000), default: '5s', help: 'a gRPC call whose request has not fully arrived within this is answered DEADLINE_EXCEEDED and closed' },
  { key: 'grpc-max-concurrent-streams', kind: { type: 'int', min: 1, max: 100_000 }, default: '1000', help: 'HTTP/2 streams (calls) open at once on one gRPC connection' },
  { key: 'grpc-max-connections', kind: { type: 'int', min: 1, max: 1_000_000 }, default: '1000', help: 'gRPC connections open at once; the listener refuses more' },
  { key: 'grpc-max-connection-idle', kind: ms(1000, 86_400_000), default: '65m', help: "a gRPC connection with no call for this long is closed with a GOAWAY (longer than Envoy's 1 h upstream idle timeout, so Envoy closes first)" },
  { key: 'max-plugins', kind: { type: 'int', min: 1, max: 100_000 }, default: '2000', help: 'most plugins tracked (and labelled in metrics) and read from one pod; past it, plugins running somewhere go first and pods take turns; the rest are counted per pod in /status' },
  { key: 'hold-starting', kind: ms(0, 600_000), default: '0s', help: 'hold a plugin request that would be denied plugin_starting or gate_not_ready up to this long, and route it once the plugin is ready (0 = off: deny at once)' },
  { key: 'max-held', kind: { type: 'int', min: 0, max: 1_000_000 }, default: '10000', help: 'most requests held at once (hold-starting); past it a request is denied at once and counted as shed' },

  // HTTP forward-auth
  { key: 'http-deny-status', kind: { type: 'int', min: 400, max: 599 }, default: '503', help: 'HTTP status of a deny on the forward-auth face (nginx needs 401 or 403)' },
  { key: 'http-path-prefix', kind: { type: 'path' }, default: '', help: 'prefix Envoy http_service puts before the original path; stripped before classifying' },
  { key: 'http-request-from', kind: { type: 'enum', values: ['auto', 'x-original-url', 'x-original-uri', 'x-forwarded-uri', 'request'] }, default: 'auto', help: 'where the forward-auth face reads the original request: one gateway convention only, or auto (the one present; a request with more than one is refused with 400)' },
  { key: 'http-max-header-bytes', kind: { type: 'int', min: 1024, max: 1_048_576 }, default: '16384', help: 'largest request head accepted on the forward-auth face' },

  // seeing decisions
  { key: 'decision-log', kind: { type: 'enum', values: ['all', 'denied', 'none'] }, default: 'denied', help: 'which decisions are logged (state changes are always logged)' },
  { key: 'decision-log-rate', kind: { type: 'int', min: 0, max: 1_000_000 }, default: '200', help: 'most decision log lines per second (0 = no limit); the rest are counted and summarised every second' },
  { key: 'state-log-rate', kind: { type: 'int', min: 0, max: 1_000_000 }, default: '100', help: 'most plugin state change log lines per second (0 = no limit; pod state changes are always logged); the rest are counted and summarised every second' },
  { key: 'log-level', kind: { type: 'enum', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] }, default: 'info', help: 'process log level' },
  { key: 'log-buffer-bytes', kind: { type: 'int', min: 16_384, max: 268_435_456 }, default: '1048576', help: 'most log bytes waiting for a slow or blocked stdout; lines past it are dropped and counted (plugin_gate_log_lines_dropped_total)' },
  { key: 'redact-headers', kind: { type: 'header-list' }, default: '', help: 'extra header names never logged (x-api-key, authorization and cookie always are)' },

  // TLS on the gRPC and HTTP faces (the admin listener stays plain HTTP)
  { key: 'tls-cert', kind: { type: 'string' }, default: undefined, help: 'PEM certificate chain (leaf first) served on the gRPC and HTTP faces; setting it turns TLS on (needs tls-key)' },
  { key: 'tls-key', kind: { type: 'string' }, default: undefined, help: 'PEM private key of tls-cert, unencrypted' },
  { key: 'tls-client-ca', kind: { type: 'string' }, default: undefined, help: 'PEM CA bundle: clients must present a certificate signed by one of these CAs (mutual TLS)' },
  { key: 'tls-reload', kind: ms(100, 3_600_000), default: '30s', help: 'how often the TLS files are re-read; a changed, valid set is served to new connections without a restart' },

  // lifecycle
  { key: 'drain', kind: ms(0, 600_000), default: '5s', help: 'on SIGTERM: report NOT_SERVING and keep answering this long before closing' },
] as const satisfies readonly OptionSpec[];

export const OPTION_KEYS: ReadonlySet<string> = new Set(OPTIONS.map((o) => o.key));

// ------------------------------------------------------------ the Config type

type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type UnitOf<K extends OptionKind> = K extends { type: 'duration' } ? 'Ms' : K extends { type: 'percent' } ? 'Percent' : '';

/** The Config field of a row: `poll-interval` → `pollIntervalMs`. */
export type FieldOf<O extends OptionSpec> = `${Camel<O['key']>}${UnitOf<O['kind']>}`;

/** The value a kind parses to (a kind without a case here fails to compile, on purpose). */
type KindValue<K extends OptionKind> = K extends { type: 'duration' | 'int' | 'percent' | 'fraction' }
  ? number
  : K extends { type: 'bool' }
    ? boolean
    : K extends { type: 'address' | 'host-port' }
      ? HostPort
      : K extends { type: 'enum'; values: readonly (infer V)[] }
        ? V
        : K extends { type: 'enum-list'; values: readonly (infer V)[] }
          ? readonly V[]
          : K extends { type: 'address-list' | 'header-list' | 'plugin-list' }
            ? readonly string[]
            : K extends { type: 'string' | 'path' | 'header-name' }
              ? string
              : never;

type IsList<K extends OptionKind> = K extends { type: 'address-list' | 'enum-list' | 'header-list' | 'plugin-list' } ? true : false;

type ValueOf<O extends OptionSpec> =
  IsList<O['kind']> extends true
    ? KindValue<O['kind']>
    : O['default'] extends undefined
      ? KindValue<O['kind']> | undefined
      : O['kind'] extends { off: true }
        ? KindValue<O['kind']> | undefined
        : KindValue<O['kind']>;

/** The validated configuration of a table: one readonly field per row. */
export type ConfigOf<T extends readonly OptionSpec[]> = { readonly [O in T[number] as FieldOf<O>]: ValueOf<O> };

/** The validated configuration: one field per row of the option table. */
export type Config = ConfigOf<typeof OPTIONS>;

/** The field name of a row at run time; the same rule as `FieldOf`. */
export function fieldOf(o: OptionSpec): string {
  const camel = o.key.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  return camel + (o.kind.type === 'duration' ? 'Ms' : o.kind.type === 'percent' ? 'Percent' : '');
}

/** Whether a kind holds a list (unset = empty, never undefined). */
export function isListKind(kind: OptionKind): boolean {
  return kind.type === 'address-list' || kind.type === 'enum-list' || kind.type === 'header-list' || kind.type === 'plugin-list';
}
