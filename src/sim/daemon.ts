/**
 * One simulated dify-plugin-daemon pod (PLATFORM=local, 0.6.x with PR #600's
 * `/ready/check` optional): a real HTTP server on loopback whose status
 * endpoints and plugin routes answer like the daemon's, driven by the plugin
 * lifecycle in `lifecycle.ts`, plus switches that break it the ways a real pod
 * breaks (refusing, hanging, slow, garbage, oversized).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { DAEMON_LAUNCH_CONCURRENCY, DAEMON_MAX_RETRY_COUNT } from '../core/daemon.js';
import { GateError } from '../core/errors.js';
import { pluginIdFromUniqueId, isPluginId, type PluginId } from '../core/plugin-id.js';
import { DEFAULT_BUCKETS, ExpositionWriter, type Labels } from './exposition.js';
import {
  DEFAULT_PLUGIN_VERSION,
  PluginLifecycle,
  checkSpec,
  uniqueIdentifierFor,
  type LifecycleEventKind,
  type PluginSpec,
  type ReadinessDetail,
  type SimPluginState,
} from './lifecycle.js';
import { systemScheduler, type Scheduler, type TimerHandle } from '../core/clock.js';

export type { PluginSpec, SimPluginState, ReadinessDetail } from './lifecycle.js';

/**
 * normal; refuse: not listening (ECONNREFUSED); hang: accept, never answer;
 * slowMs: status endpoints answer after n wall-clock ms; garbage: status
 * endpoints answer 200 with junk; oversizeBytes: `/metrics/` answers an n-byte body.
 */
export type SimMode =
  | 'normal'
  | 'refuse'
  | 'hang'
  | 'garbage'
  | { readonly slowMs: number }
  | { readonly oversizeBytes: number };

export type SimEventKind = LifecycleEventKind | 'up' | 'down' | 'mode' | 'error';

export interface SimEvent {
  readonly pod: string;
  /** Scheduler time. */
  readonly at: number;
  readonly kind: SimEventKind;
  readonly pluginId?: PluginId;
  readonly detail?: string;
}

export interface SimDaemonOptions {
  /** Pod name, echoed in `x-sim-pod` and in dispatch answers, e.g. `pod-1`. */
  readonly name: string;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (ephemeral). Kept across restarts and refuse/normal switches. */
  readonly port?: number;
  /** Installed at start, launched in this order. */
  readonly plugins?: readonly PluginSpec[];
  /** Default `systemScheduler`. */
  readonly scheduler?: Scheduler;
  /** `PLUGIN_LOCAL_LAUNCHING_CONCURRENT`, default 2. */
  readonly launchConcurrency?: number;
  /** Failed launches before giving up, default 15. */
  readonly retryLimit?: number;
  /** Multiplies launch durations, retry waits and the 30 s scan; default 1. */
  readonly timeScale?: number;
  /** Serve PR #600's `/ready/check`; default false (404, like released daemons). */
  readonly readyCheck?: boolean;
  /** `/health/check` version; default 0.6.10. */
  readonly version?: string;
  /** State changes (launches, failures, mode switches, restarts). Must not throw. */
  readonly onEvent?: (event: SimEvent) => void;
}

export interface SimStats {
  /** Dispatches served here, by plugin id. */
  readonly hits: Map<PluginId, number>;
  /** Dispatches for a plugin not running here (answered 404), by plugin id. */
  readonly misses: Map<PluginId, number>;
}

export interface SimDaemonSnapshot {
  readonly name: string;
  readonly address: string | undefined;
  readonly listening: boolean;
  readonly mode: SimMode;
  /** Scheduler ms of the current process start; undefined while down. */
  readonly startedAt: number | undefined;
  /** Installed plugins in install order with their state in the current process. */
  readonly plugins: readonly SimPluginState[];
  /** The last readiness snapshot (undefined before the first completed launch pass). */
  readonly readiness: ReadinessDetail | undefined;
  /** HTTP requests received and not yet answered (hung ones included). */
  readonly openRequests: number;
}

const BUILD_TIME = '2026-01-01T00:00:00Z';
const POOL_TOTAL = 10_000;
const GO_VERSION = 'go1.23.4';
const JSON_TYPE = 'application/json; charset=utf-8';
const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Non-Prometheus, non-JSON bytes: what a misrouted proxy or a broken build might send. */
const GARBAGE = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe]),
  Buffer.from('<html><body>502 Bad Gateway</body></html>\n{{{ plugin_runtime_status = ??? \u0000\n'),
]);
const NOT_FOUND_TEXT = '404 page not found';

/** The daemon's error envelope: `message` is itself a JSON string. */
export function daemonErrorEnvelope(code: number, errorType: string, message: string): string {
  return JSON.stringify({ code, message: JSON.stringify({ message, error_type: errorType, args: null }), data: null });
}

const NO_RUNTIME_BODY = daemonErrorEnvelope(
  -500,
  'PluginDaemonInternalServerError',
  'no available node, plugin runtime not found',
);

type Route =
  | 'metrics'
  | 'metrics_redirect'
  | 'health'
  | 'ready'
  | 'dispatch_v1'
  | 'dispatch_v2'
  | 'extract_v2'
  | 'webhook'
  | 'management'
  | 'not_found';

/** gin's FullPath for each route: the `endpoint` label of the HTTP metrics (a bounded set). */
const ROUTE_LABEL: Record<Route, string> = {
  metrics: '/metrics/',
  metrics_redirect: '',
  health: '/health/check',
  ready: '/ready/check',
  dispatch_v1: '/plugin/:tenant_id/dispatch/*action',
  dispatch_v2: '/v2/invoke/dispatch/*action',
  extract_v2: '/v2/invoke/extract',
  webhook: '/e/:hook_id/*path',
  management: '/plugin/:tenant_id/management/*action',
  not_found: '',
};

/**
 * Request header asking a running plugin's dispatch to stream `N@ms`: N lines, one every ms
 * (wall clock). For trying proxies with long invocations; bounded so no request can pin a pod.
 */
export const SIM_STREAM_HEADER = 'x-sim-stream';
const MAX_STREAM_CHUNKS = 1_000;
const MAX_STREAM_INTERVAL_MS = 10_000;

function streamAsk(v: string | string[] | undefined): { chunks: number; intervalMs: number } | undefined {
  const m = typeof v === 'string' ? /^(\d{1,4})@(\d{1,5})$/.exec(v) : null;
  if (m === null) return undefined;
  const chunks = Number(m[1]);
  const intervalMs = Number(m[2]);
  if (chunks < 1 || chunks > MAX_STREAM_CHUNKS || intervalMs > MAX_STREAM_INTERVAL_MS) return undefined;
  return { chunks, intervalMs };
}

const DISPATCH_V1 = /^\/plugin\/[^/]+\/dispatch\/.+/;
const MANAGEMENT = /^\/plugin\/[^/]+\/management(\/.*)?$/;
const WEBHOOK = /^\/e\/([^/]+)(\/.*)?$/;

function routeOf(method: string, path: string, readyCheck: boolean): Route {
  if (method === 'GET') {
    if (path === '/metrics/') return 'metrics';
    if (path === '/metrics') return 'metrics_redirect';
    if (path === '/health/check') return 'health';
    if (path === '/ready/check' && readyCheck) return 'ready';
    if (path === '/v2/invoke/extract') return 'extract_v2';
  }
  if (method === 'POST') {
    if (DISPATCH_V1.test(path)) return 'dispatch_v1';
    if (path.startsWith('/v2/invoke/dispatch/') && path.length > '/v2/invoke/dispatch/'.length) return 'dispatch_v2';
  }
  if (WEBHOOK.test(path)) return 'webhook';
  if (MANAGEMENT.test(path)) return 'management';
  return 'not_found';
}

function isSlow(mode: SimMode): mode is { readonly slowMs: number } {
  return typeof mode === 'object' && 'slowMs' in mode;
}
function isOversize(mode: SimMode): mode is { readonly oversizeBytes: number } {
  return typeof mode === 'object' && 'oversizeBytes' in mode;
}

function checkMode(mode: SimMode): void {
  if (mode === 'normal' || mode === 'refuse' || mode === 'hang' || mode === 'garbage') return;
  if (isSlow(mode) && Number.isFinite(mode.slowMs) && mode.slowMs >= 0) return;
  if (isOversize(mode) && Number.isInteger(mode.oversizeBytes) && mode.oversizeBytes >= 0) return;
  throw new GateError('config_invalid', `sim mode ${JSON.stringify(mode)} is not one of the known modes`);
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new GateError('config_invalid', `${name} must be an integer >= 1`);
  return value;
}

interface HttpSeries {
  readonly method: string;
  readonly route: Route;
  count: number;
  sum: number;
  readonly buckets: number[];
}

export class SimDaemon {
  readonly name: string;
  readonly stats: SimStats = { hits: new Map(), misses: new Map() };

  private readonly host: string;
  private readonly scheduler: Scheduler;
  private readonly launchConcurrency: number;
  private readonly retryLimit: number;
  private readonly timeScale: number;
  private readonly readyCheck: boolean;
  private readonly version: string;
  private readonly onEvent: ((event: SimEvent) => void) | undefined;

  /** Shared storage: survives pod restarts, in install order. */
  private readonly installed: PluginSpec[] = [];
  private lifecycle: PluginLifecycle | undefined;
  private mode: SimMode = 'normal';
  private server: http.Server | undefined;
  private port: number;
  private boundPort: number | undefined;
  private started = false;
  private closed = false;
  private down = false;
  private closing: Promise<void> | undefined;
  /** Listener changes run one at a time, in order. */
  private listenOps: Promise<void> = Promise.resolve();
  private downTimer: TimerHandle | undefined;
  private wakeDown: (() => void) | undefined;

  private readonly sockets = new Set<Socket>();
  private readonly hung = new Set<http.ServerResponse>();
  private readonly slowTimers = new Set<NodeJS.Timeout>();
  private activeRequests = 0;
  private activeDispatch = 0;
  private scrapes = 0;
  private readonly httpCounts = new Map<string, { method: string; route: Route; status: number; n: number }>();
  private readonly httpDurations = new Map<string, HttpSeries>();

  constructor(opts: SimDaemonOptions) {
    if (typeof opts.name !== 'string' || opts.name === '') throw new GateError('config_invalid', 'sim daemon needs a name');
    this.name = opts.name;
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
    if (!Number.isInteger(this.port) || this.port < 0 || this.port > 65535) {
      throw new GateError('config_invalid', `${this.name}: port must be 0..65535`);
    }
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.launchConcurrency = positiveInt('launchConcurrency', opts.launchConcurrency, DAEMON_LAUNCH_CONCURRENCY);
    this.retryLimit = positiveInt('retryLimit', opts.retryLimit, DAEMON_MAX_RETRY_COUNT);
    this.timeScale = opts.timeScale ?? 1;
    if (!Number.isFinite(this.timeScale) || this.timeScale < 0) {
      throw new GateError('config_invalid', `${this.name}: timeScale must be a finite number >= 0`);
    }
    this.readyCheck = opts.readyCheck ?? false;
    this.version = opts.version ?? '0.6.10';
    this.onEvent = opts.onEvent;
    for (const spec of opts.plugins ?? []) {
      checkSpec(spec);
      if (!this.isInstalled(spec)) this.installed.push(spec);
    }
  }

  /** `host:port` to put in a gate's target list; available once started. */
  get address(): string {
    if (this.boundPort === undefined) throw new GateError('internal', `${this.name} has no bound port (not started yet)`);
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${host}:${this.boundPort}`;
  }

  /** `http://host:port`. */
  get url(): string {
    return `http://${this.address}`;
  }

  /** Starts the process (plugin launches begin now) and listens. */
  async start(): Promise<void> {
    if (this.started) throw new GateError('internal', `${this.name} already started`);
    this.started = true;
    this.server = this.createServer();
    this.boot();
    try {
      await this.reconcile();
      if (this.boundPort === undefined) {
        // Started in 'refuse' mode: bind once so the pod has an address that refuses.
        await this.listen(this.server);
        await this.reconcile();
      }
    } catch (err) {
      this.lifecycle?.stop();
      this.lifecycle = undefined;
      throw GateError.from(err);
    }
  }

  /** Stops everything, destroying open and hanging connections. Idempotent; never hangs. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    this.lifecycle?.stop();
    if (this.downTimer !== undefined) this.scheduler.clearTimeout(this.downTimer);
    this.downTimer = undefined;
    this.wakeDown?.();
    for (const t of this.slowTimers) clearTimeout(t);
    this.slowTimers.clear();
    this.dropHung();
    this.closing = this.started ? this.reconcile().catch(() => undefined) : Promise.resolve();
    return this.closing;
  }

  /** Installs a plugin now (queued behind the launch limit). Returns its unique identifier. */
  install(spec: PluginSpec): string {
    checkSpec(spec);
    if (!this.isInstalled(spec)) this.installed.push(spec);
    if (this.lifecycle !== undefined) return this.lifecycle.install(spec);
    return uniqueIdentifierFor(spec.id, spec.version);
  }

  /** Uninstalls by plugin id (every version) or unique identifier; returns how many installations went. */
  uninstall(idOrUniqueId: string): number {
    let removed = 0;
    for (let i = this.installed.length - 1; i >= 0; i--) {
      const spec = this.installed[i];
      if (spec === undefined) continue;
      if (spec.id === idOrUniqueId || uniqueIdentifierFor(spec.id, spec.version) === idOrUniqueId) {
        this.installed.splice(i, 1);
        removed++;
      }
    }
    this.lifecycle?.uninstall(idOrUniqueId);
    return removed;
  }

  /** Replaces a running plugin's instance: `plugin_restarts_total` +1, gauge stays 1. */
  restartPlugin(pluginId: PluginId): boolean {
    return this.lifecycle?.restartPlugin(pluginId) ?? false;
  }

  /**
   * Pod restart: the process dies (connections dropped, series and counters
   * gone), stays down for `downMs` scheduler ms (refusing connections), then a
   * new process starts with a new `process_start_time_seconds` and launches
   * every installed plugin from scratch. Resolves once it listens again.
   * With a ManualScheduler, advance time by `downMs` for it to come back.
   */
  async restart(opts: { readonly downMs?: number } = {}): Promise<void> {
    if (!this.started || this.closed) throw new GateError('internal', `${this.name} is not running`);
    if (this.down) throw new GateError('internal', `${this.name} is already restarting`);
    const downMs = opts.downMs ?? 0;
    if (!Number.isFinite(downMs) || downMs < 0) throw new GateError('config_invalid', 'downMs must be >= 0');
    this.lifecycle?.stop();
    this.lifecycle = undefined;
    this.down = true;
    this.dropHung();
    this.emit('down', undefined, 'restart');
    // The timer is scheduled synchronously so a test may advance right after calling restart().
    const elapsed =
      downMs > 0
        ? new Promise<void>((resolve) => {
            this.wakeDown = resolve;
            this.downTimer = this.scheduler.setTimeout(() => {
              this.downTimer = undefined;
              resolve();
            }, downMs);
          })
        : Promise.resolve();
    await this.reconcile();
    await elapsed;
    this.wakeDown = undefined;
    if (this.closed) return;
    this.down = false;
    this.boot();
    await this.reconcile();
  }

  /** Switches failure behaviour; resolves once the listener matches the mode. */
  async setMode(mode: SimMode): Promise<void> {
    checkMode(mode);
    const wasHang = this.mode === 'hang';
    this.mode = mode;
    if (wasHang && mode !== 'hang') this.dropHung();
    this.emit('mode', undefined, typeof mode === 'string' ? mode : JSON.stringify(mode));
    if (this.started && !this.closed) await this.reconcile();
  }

  getMode(): SimMode {
    return this.mode;
  }

  /** Current per-plugin state, for assertions. */
  snapshot(): SimDaemonSnapshot {
    const plugins = this.lifecycle?.snapshot() ?? [];
    return {
      name: this.name,
      address: this.boundPort === undefined ? undefined : this.address,
      listening: this.server?.listening ?? false,
      mode: this.mode,
      startedAt: this.lifecycle?.startedAt,
      plugins,
      readiness: this.lifecycle?.readinessDetail(),
      openRequests: this.activeRequests,
    };
  }

  resetStats(): void {
    this.stats.hits.clear();
    this.stats.misses.clear();
  }

  // ---------------------------------------------------------------- process

  private isInstalled(spec: PluginSpec): boolean {
    const v = spec.version ?? DEFAULT_PLUGIN_VERSION;
    return this.installed.some((s) => s.id === spec.id && (s.version ?? DEFAULT_PLUGIN_VERSION) === v);
  }

  private boot(): void {
    this.httpCounts.clear();
    this.httpDurations.clear();
    this.scrapes = 0;
    this.emit('up', undefined, `process start ${new Date(this.scheduler.now()).toISOString()}`);
    this.lifecycle = new PluginLifecycle(
      {
        scheduler: this.scheduler,
        launchConcurrency: this.launchConcurrency,
        retryLimit: this.retryLimit,
        timeScale: this.timeScale,
        emit: (kind, pluginId, detail) => this.emit(kind, pluginId, detail),
      },
      this.installed,
    );
  }

  private emit(kind: SimEventKind, pluginId?: PluginId, detail?: string): void {
    if (this.onEvent === undefined) return;
    const event: SimEvent = { pod: this.name, at: this.scheduler.now(), kind };
    if (pluginId !== undefined) (event as { pluginId?: PluginId }).pluginId = pluginId;
    if (detail !== undefined) (event as { detail?: string }).detail = detail;
    try {
      this.onEvent(event);
    } catch {
      // An observer's bug must not break the simulated daemon.
    }
  }

  // --------------------------------------------------------------- listener

  private wantListening(): boolean {
    return this.started && !this.closed && !this.down && this.mode !== 'refuse';
  }

  private reconcile(): Promise<void> {
    const op = this.listenOps.then(() => this.applyListening());
    this.listenOps = op.catch(() => undefined);
    return op;
  }

  private async applyListening(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    const want = this.wantListening();
    if (want && !server.listening) {
      await this.listen(server);
    } else if (!want && server.listening) {
      await this.stopListening(server);
    } else if (!want) {
      this.destroySockets();
    }
  }

  private listen(server: http.Server): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        server.off('listening', onListening);
        this.emit('error', undefined, `listen: ${err.message}`);
        reject(err);
      };
      const onListening = (): void => {
        server.off('error', onError);
        const addr = server.address();
        if (addr !== null && typeof addr === 'object') this.boundPort = addr.port;
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this.boundPort ?? this.port, this.host);
    });
  }

  private stopListening(server: http.Server): Promise<void> {
    return new Promise<void>((resolve) => {
      // Bounded even if some socket refuses to die: closing must never hang a test.
      const fallback = setTimeout(resolve, 2000);
      fallback.unref();
      server.close(() => {
        clearTimeout(fallback);
        resolve();
      });
      server.closeAllConnections();
      this.destroySockets();
    });
  }

  private destroySockets(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private dropHung(): void {
    for (const res of this.hung) res.socket?.destroy();
    this.hung.clear();
  }

  private createServer(): http.Server {
    const server = http.createServer((req, res) => this.onRequest(req, res));
    server.on('connection', (socket: Socket) => {
      if (!this.wantListening()) {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    server.on('error', (err) => this.emit('error', undefined, err.message));
    return server;
  }

  // --------------------------------------------------------------- requests

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.on('error', () => undefined);
    req.on('error', () => undefined);
    res.setHeader('x-sim-pod', this.name);
    this.activeRequests++;
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q >= 0 ? raw.slice(0, q) : raw;
    const route = routeOf(method, path, this.readyCheck);
    const isDispatch = route === 'dispatch_v1' || route === 'dispatch_v2' || route === 'extract_v2';
    if (isDispatch) this.activeDispatch++;
    res.on('close', () => {
      this.activeRequests--;
      if (isDispatch) this.activeDispatch--;
      this.hung.delete(res);
      if (res.writableFinished) this.recordHttp(method, route, res.statusCode, (performance.now() - t0) / 1000);
    });
    // Bodies are read and discarded, as the daemon reads them before answering.
    req.resume();
    if (this.mode === 'hang') {
      this.hung.add(res);
      return;
    }
    req.on('end', () => {
      if (res.destroyed || this.mode === 'hang') {
        if (!res.destroyed) this.hung.add(res);
        return;
      }
      this.answer(route, method, path, req, res);
    });
  }

  private answer(route: Route, method: string, path: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    switch (route) {
      case 'metrics':
      case 'health':
      case 'ready':
        this.serveStatus(route, req, res);
        return;
      case 'metrics_redirect':
        // gin's RedirectTrailingSlash: 301 for GET.
        res.writeHead(301, { location: '/metrics/', 'content-type': 'text/html; charset=utf-8' });
        res.end('<a href="/metrics/">Moved Permanently</a>.\n\n');
        return;
      case 'dispatch_v1': {
        const header = req.headers['x-plugin-id'];
        const id = typeof header === 'string' ? header : undefined;
        this.dispatch(id !== undefined && isPluginId(id) ? id : undefined, res, req);
        return;
      }
      case 'dispatch_v2':
      case 'extract_v2': {
        const header = req.headers['x-plugin-unique-identifier'];
        this.dispatch(typeof header === 'string' ? pluginIdFromUniqueId(header) : undefined, res, req);
        return;
      }
      case 'webhook': {
        const hook = WEBHOOK.exec(path)?.[1] ?? '';
        this.json(res, 200, JSON.stringify({ served_by: this.name, hook_id: hook, method }));
        return;
      }
      case 'management':
        this.json(res, 200, JSON.stringify({ code: 0, message: 'success', data: { served_by: this.name } }));
        return;
      case 'not_found':
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(NOT_FOUND_TEXT);
        return;
    }
  }

  private dispatch(pluginId: PluginId | undefined, res: http.ServerResponse, req: http.IncomingMessage): void {
    if (pluginId === undefined) {
      this.json(res, 400, daemonErrorEnvelope(-400, 'PluginDaemonBadRequestError', 'invalid plugin identifier'));
      return;
    }
    if (this.lifecycle?.isRunning(pluginId) === true) {
      this.stats.hits.set(pluginId, (this.stats.hits.get(pluginId) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const line = (chunk?: number): string =>
        `${JSON.stringify({ code: 0, message: '', data: { served_by: this.name, plugin_id: pluginId, ...(chunk === undefined ? {} : { chunk }) } })}\n`;
      const stream = streamAsk(req.headers[SIM_STREAM_HEADER]);
      if (stream === undefined) {
        res.write(line());
        res.end();
        return;
      }
      // A long invocation: one line per chunk, spaced on the wall clock (what a proxy in between
      // must carry through unbuffered and uncut, whatever the simulated daemon time does).
      let i = 0;
      const next = (): void => {
        if (res.destroyed || this.closed) return;
        res.write(line(i++));
        if (i >= stream.chunks) {
          res.end();
          return;
        }
        const timer = setTimeout(() => {
          this.slowTimers.delete(timer);
          next();
        }, stream.intervalMs);
        timer.unref();
        this.slowTimers.add(timer);
      };
      next();
      return;
    }
    this.stats.misses.set(pluginId, (this.stats.misses.get(pluginId) ?? 0) + 1);
    this.json(res, 404, NO_RUNTIME_BODY);
  }

  private json(res: http.ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private serveStatus(route: 'metrics' | 'health' | 'ready', req: http.IncomingMessage, res: http.ServerResponse): void {
    const mode = this.mode;
    if (mode === 'garbage') {
      res.writeHead(200, {
        'content-type': route === 'metrics' ? METRICS_TYPE : JSON_TYPE,
        'content-length': GARBAGE.length,
      });
      res.end(GARBAGE);
      return;
    }
    if (isSlow(mode)) {
      // Wall-clock on purpose: this delay exists to trip the reader's real I/O timeout.
      const timer = setTimeout(() => {
        this.slowTimers.delete(timer);
        if (!res.destroyed && !this.closed) this.renderStatus(route, req, res);
      }, mode.slowMs);
      timer.unref();
      this.slowTimers.add(timer);
      return;
    }
    this.renderStatus(route, req, res);
  }

  private renderStatus(route: 'metrics' | 'health' | 'ready', req: http.IncomingMessage, res: http.ServerResponse): void {
    if (route === 'health') {
      this.json(res, 200, this.healthBody());
      return;
    }
    if (route === 'ready') {
      const { status, body } = this.readyAnswer();
      this.json(res, status, body);
      return;
    }
    this.scrapes++;
    const mode = this.mode;
    if (isOversize(mode)) {
      this.sendOversize(res, this.metricsBody(), mode.oversizeBytes);
      return;
    }
    const text = this.metricsBody();
    const accept = req.headers['accept-encoding'];
    // promhttp compresses when the scraper accepts gzip; a reader must cope with both.
    if (typeof accept === 'string' && /\bgzip\b/.test(accept)) {
      const gz = gzipSync(text);
      res.writeHead(200, { 'content-type': METRICS_TYPE, 'content-encoding': 'gzip', 'content-length': gz.length });
      res.end(gz);
      return;
    }
    res.writeHead(200, { 'content-type': METRICS_TYPE, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private healthBody(): string {
    const load = this.lifecycle?.load() ?? { launching: 0, queued: 0, running: 0 };
    const busy = 2 + load.launching + load.running + this.activeDispatch;
    return JSON.stringify({
      status: 'ok',
      pool_status: { free: POOL_TOTAL - busy, busy, total: POOL_TOTAL },
      version: this.version,
      build_time: BUILD_TIME,
      platform: 'local',
      active_requests: this.activeRequests,
      active_dispatch_requests: this.activeDispatch,
    });
  }

  /** PR #600 handler shapes: 200 without detail when ready, 503 with the snapshot otherwise. */
  private readyAnswer(): { status: number; body: string } {
    const detail = this.lifecycle?.readinessDetail();
    if (detail === undefined) {
      return {
        status: 503,
        body: JSON.stringify({ status: 'unready', ready: false, reason: 'plugin_monitor_not_ready', detail: null }),
      };
    }
    if (detail.Ready) {
      return { status: 200, body: JSON.stringify({ status: 'ok', ready: true, reason: 'plugins_ready' }) };
    }
    const reason = detail.InitialFailed.length > 0 ? 'plugins_failed' : 'plugins_starting';
    return { status: 503, body: JSON.stringify({ status: 'unready', ready: false, reason, detail }) };
  }

  /** A valid-looking exposition padded with comment lines to exactly `size` bytes. */
  private sendOversize(res: http.ServerResponse, base: string, size: number): void {
    res.writeHead(200, { 'content-type': METRICS_TYPE, 'content-length': size });
    const head = Buffer.from(base);
    if (size <= head.length) {
      res.end(head.subarray(0, size));
      return;
    }
    res.write(head);
    let left = size - head.length;
    const line = '# padding: the sim was told to answer an oversized exposition ..........\n';
    const chunk = Buffer.from(line.repeat(Math.ceil(65_536 / line.length)));
    const pump = (): void => {
      while (left > 0 && !res.destroyed) {
        let piece: Buffer;
        if (left >= chunk.length) {
          piece = chunk;
        } else if (left === 1) {
          piece = Buffer.from('\n');
        } else {
          // Last piece: one comment line of exactly the remaining length.
          piece = Buffer.from(`#${' '.repeat(left - 2)}\n`);
        }
        left -= piece.length;
        if (left === 0) {
          res.end(piece);
          return;
        }
        if (!res.write(piece)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  }

  // ---------------------------------------------------------------- metrics

  private recordHttp(method: string, route: Route, status: number, seconds: number): void {
    const countKey = `${method} ${route} ${status}`;
    const c = this.httpCounts.get(countKey);
    if (c !== undefined) c.n++;
    else this.httpCounts.set(countKey, { method, route, status, n: 1 });
    const durKey = `${method} ${route}`;
    let d = this.httpDurations.get(durKey);
    if (d === undefined) {
      d = { method, route, count: 0, sum: 0, buckets: new Array<number>(DEFAULT_BUCKETS.length + 1).fill(0) };
      this.httpDurations.set(durKey, d);
    }
    d.count++;
    d.sum += seconds;
    let i = DEFAULT_BUCKETS.findIndex((b) => seconds <= b);
    if (i < 0) i = DEFAULT_BUCKETS.length;
    d.buckets[i] = (d.buckets[i] ?? 0) + 1;
  }

  /**
   * The exposition: Go runtime and process families first, then HTTP, then the
   * plugin families, as a real daemon's registry holds them. Label order varies
   * between series on purpose (parsers must not depend on it); families without
   * series are left out, as client_golang does for vectors with no children.
   */
  private metricsBody(): string {
    const lc = this.lifecycle;
    const now = this.scheduler.now();
    const startedAt = lc?.startedAt ?? now;
    const uptime = Math.max(0, (now - startedAt) / 1000);
    const load = lc?.load() ?? { launching: 0, queued: 0, running: 0 };
    const n = this.scrapes;
    const w = new ExpositionWriter();

    w.family('go_gc_duration_seconds', 'A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.', 'summary');
    const gcs = 12 + Math.floor(uptime / 7) + n;
    w.sample('go_gc_duration_seconds', [['quantile', '0']], 2.3041e-5)
      .sample('go_gc_duration_seconds', [['quantile', '0.25']], 4.1208e-5)
      .sample('go_gc_duration_seconds', [['quantile', '0.5']], 5.6125e-5)
      .sample('go_gc_duration_seconds', [['quantile', '0.75']], 8.9e-5)
      .sample('go_gc_duration_seconds', [['quantile', '1']], 0.000734291)
      .sample('go_gc_duration_seconds_sum', [], gcs * 6.1e-5)
      .sample('go_gc_duration_seconds_count', [], gcs);
    w.family('go_goroutines', 'Number of goroutines that currently exist.', 'gauge')
      .sample('go_goroutines', [], 38 + this.activeRequests + 3 * load.launching + 4 * load.running);
    w.family('go_info', 'Information about the Go environment.', 'gauge').sample('go_info', [['version', GO_VERSION]], 1);
    const alloc = 2_863_936 + load.running * 1_245_184 + (n % 17) * 65_536;
    const memstats: Array<[string, string, 'gauge' | 'counter', number]> = [
      ['alloc_bytes', 'Number of bytes allocated in heap and currently in use.', 'gauge', alloc],
      ['alloc_bytes_total', 'Total number of bytes allocated in heap until now, even if released already.', 'counter', alloc * (3 + n)],
      ['buck_hash_sys_bytes', 'Number of bytes used by the profiling bucket hash table.', 'gauge', 1_459_843],
      ['frees_total', 'Total number of heap objects frees.', 'counter', 41_822 + 311 * n],
      ['gc_sys_bytes', 'Number of bytes used for garbage collection system metadata.', 'gauge', 3_544_832],
      ['heap_alloc_bytes', 'Number of heap bytes allocated and currently in use.', 'gauge', alloc],
      ['heap_idle_bytes', 'Number of heap bytes waiting to be used.', 'gauge', 5_365_760],
      ['heap_inuse_bytes', 'Number of heap bytes that are in use.', 'gauge', alloc + 1_171_456],
      ['heap_objects', 'Number of currently allocated objects.', 'gauge', 18_503 + 977 * load.running],
      ['heap_released_bytes', 'Number of heap bytes released to OS.', 'gauge', 3_022_848],
      ['heap_sys_bytes', 'Number of heap bytes obtained from system.', 'gauge', 11_534_336],
      ['last_gc_time_seconds', 'Number of seconds since 1970 of last garbage collection.', 'gauge', (startedAt + uptime * 900) / 1000],
      ['mallocs_total', 'Total number of heap objects allocated.', 'counter', 60_325 + 402 * n],
      ['mcache_inuse_bytes', 'Number of bytes in use by mcache structures.', 'gauge', 9_600],
      ['mspan_inuse_bytes', 'Number of bytes in use by mspan structures.', 'gauge', 181_280],
      ['next_gc_bytes', 'Number of heap bytes when next garbage collection will take place.', 'gauge', 6_291_456],
      ['stack_inuse_bytes', 'Number of bytes obtained from system for stack allocator in non-CGO environments.', 'gauge', 1_146_880],
      ['sys_bytes', 'Number of bytes obtained from system.', 'gauge', 20_272_392],
    ];
    for (const [suffix, help, type, value] of memstats) {
      w.family(`go_memstats_${suffix}`, help, type).sample(`go_memstats_${suffix}`, [], value);
    }
    w.family('go_threads', 'Number of OS threads created.', 'gauge').sample('go_threads', [], 9);

    w.family('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter')
      .sample('process_cpu_seconds_total', [], Math.round(uptime * 2) / 100);
    w.family('process_max_fds', 'Maximum number of open file descriptors.', 'gauge').sample('process_max_fds', [], 1_048_576);
    w.family('process_network_receive_bytes_total', 'Number of bytes received by the process over the network.', 'counter')
      .sample('process_network_receive_bytes_total', [], 48_211 + 1_310 * n);
    w.family('process_network_transmit_bytes_total', 'Number of bytes sent by the process over the network.', 'counter')
      .sample('process_network_transmit_bytes_total', [], 95_020 + 6_733 * n);
    w.family('process_open_fds', 'Number of open file descriptors.', 'gauge')
      .sample('process_open_fds', [], 21 + this.sockets.size + 2 * load.running);
    w.family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge')
      .sample('process_resident_memory_bytes', [], 45_355_008 + load.running * 2_097_152);
    w.family('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge')
      .sample('process_start_time_seconds', [], startedAt / 1000);
    w.family('process_virtual_memory_bytes', 'Virtual memory size in bytes.', 'gauge')
      .sample('process_virtual_memory_bytes', [], 1_316_388_864);
    // Go reports "no limit" as the largest uint64, which prints as 1.8446744073709552e+19.
    w.family('process_virtual_memory_max_bytes', 'Maximum amount of virtual memory available in bytes.', 'gauge')
      .sample('process_virtual_memory_max_bytes', [], 18_446_744_073_709_551_615);

    w.family('plugin_http_request_duration_seconds', 'HTTP request latency in seconds', 'histogram');
    // A fixed series whose label value needs every escape the format has: quotes, backslash, comma, newline.
    w.histogram(
      'plugin_http_request_duration_seconds',
      [['method', 'GET'], ['endpoint', '/e/:hook_id/*path?q="a,b"\\c\nd']],
      DEFAULT_BUCKETS,
      [3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      0.0173,
    );
    for (const d of this.httpDurations.values()) {
      w.histogram('plugin_http_request_duration_seconds', [['endpoint', ROUTE_LABEL[d.route]], ['method', d.method]], DEFAULT_BUCKETS, d.buckets, d.sum);
    }
    w.family('plugin_http_requests_total', 'Total number of HTTP requests', 'counter');
    w.sample('plugin_http_requests_total', [['status', '200'], ['method', 'GET'], ['endpoint', '/e/:hook_id/*path?q="a,b"\\c\nd']], 4);
    for (const c of this.httpCounts.values()) {
      w.sample('plugin_http_requests_total', [['method', c.method], ['endpoint', ROUTE_LABEL[c.route]], ['status', String(c.status)]], c.n);
    }

    w.family('promhttp_metric_handler_requests_in_flight', 'Current number of scrapes being served.', 'gauge')
      .sample('promhttp_metric_handler_requests_in_flight', [], 1);
    w.family('promhttp_metric_handler_requests_total', 'Total number of scrapes by HTTP status code.', 'counter')
      .sample('promhttp_metric_handler_requests_total', [['code', '200']], Math.max(0, n - 1))
      .sample('promhttp_metric_handler_requests_total', [['code', '500']], 0)
      .sample('promhttp_metric_handler_requests_total', [['code', '503']], 0);

    if (lc !== undefined) this.pluginFamilies(w, lc);
    return w.toString();
  }

  private pluginFamilies(w: ExpositionWriter, lc: PluginLifecycle): void {
    const s = lc.series();
    const flip = (i: number, a: readonly [string, string], b: readonly [string, string]): Labels => (i % 2 === 0 ? [a, b] : [b, a]);
    if (s.runtimeStatus.size > 0) {
      w.family('plugin_runtime_status', 'Current status of plugin runtime (1=active, 0.5=launching, 0=stopped)', 'gauge');
      let i = 0;
      for (const [id, v] of s.runtimeStatus) {
        w.sample('plugin_runtime_status', flip(i++, ['plugin_id', id], ['runtime_type', 'local']), v);
      }
    }
    if (s.failedLaunches.size > 0) {
      w.family('plugin_installations_total', 'Total number of plugin installations', 'counter');
      let i = 1;
      for (const [id, v] of s.failedLaunches) {
        w.sample('plugin_installations_total', flip(i++, ['plugin_id', id], ['status', 'failed']), v);
      }
    }
    if (s.restarts.size > 0) {
      w.family('plugin_restarts_total', 'Total number of plugin restarts', 'counter');
      let i = 1;
      for (const [id, v] of s.restarts) {
        w.sample('plugin_restarts_total', flip(i++, ['plugin_id', id], ['runtime_type', 'local']), v);
      }
    }
    if (s.active !== undefined) {
      w.family('active_plugins_total', 'Total number of active plugins', 'gauge')
        .sample('active_plugins_total', [['runtime_type', 'local']], s.active);
    }
  }
}
