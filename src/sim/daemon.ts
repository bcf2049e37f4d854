/**
 * One simulated dify-plugin-daemon pod (PLATFORM=local, 0.6.x with PR #600's
 * `/ready/check` optional): a real HTTP server on loopback whose status
 * endpoints and plugin routes answer like the daemon's, driven by the plugin
 * lifecycle in `lifecycle.ts`, plus switches that break it the ways a real pod
 * breaks (refusing, hanging, slow, garbage, oversized).
 */
import type http from 'node:http';
import { systemScheduler, type Scheduler, type TimerHandle } from '../core/clock.js';
import { DAEMON_LAUNCH_CONCURRENCY, DAEMON_MAX_RETRY_COUNT } from '../core/daemon.js';
import { GateError } from '../core/errors.js';
import type { PluginId } from '../core/plugin-id.js';
import { DaemonMetrics } from './daemon-metrics.js';
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
import { SimListener } from './listener.js';
import { DaemonRoutes, checkMode, routeOf, type SimMode, type SimStats } from './routes.js';

export type { PluginSpec, SimPluginState, ReadinessDetail } from './lifecycle.js';
export { daemonErrorEnvelope, type SimMode, type SimStats } from './routes.js';

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

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new GateError('config_invalid', `${name} must be an integer >= 1`);
  return value;
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
  private listener: SimListener | undefined;
  private readonly port: number;
  private started = false;
  private closed = false;
  private down = false;
  private closing: Promise<void> | undefined;
  private downTimer: TimerHandle | undefined;
  private wakeDown: (() => void) | undefined;

  private readonly hung = new Set<http.ServerResponse>();
  private activeRequests = 0;
  private activeDispatch = 0;
  private metrics = new DaemonMetrics();
  private readonly routes: DaemonRoutes;

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
    this.routes = new DaemonRoutes({
      name: this.name,
      version: this.version,
      stats: this.stats,
      mode: () => this.mode,
      closed: () => this.closed,
      lifecycle: () => this.lifecycle,
      activeRequests: () => this.activeRequests,
      activeDispatch: () => this.activeDispatch,
      scrape: () =>
        this.metrics.scrape({
          lifecycle: this.lifecycle,
          now: this.scheduler.now(),
          activeRequests: this.activeRequests,
          openSockets: this.listener?.openSockets ?? 0,
        }),
    });
  }

  /** `host:port` to put in a gate's target list; available once started. */
  get address(): string {
    const port = this.listener?.port;
    if (port === undefined) throw new GateError('internal', `${this.name} has no bound port (not started yet)`);
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${host}:${port}`;
  }

  /** `http://host:port`. */
  get url(): string {
    return `http://${this.address}`;
  }

  /** Starts the process (plugin launches begin now) and listens. */
  async start(): Promise<void> {
    if (this.started) throw new GateError('internal', `${this.name} already started`);
    this.started = true;
    const listener = new SimListener({
      host: this.host,
      port: this.port,
      want: () => this.wantListening(),
      onRequest: (req, res) => this.onRequest(req, res),
      onError: (message) => this.emit('error', undefined, message),
    });
    this.listener = listener;
    this.boot();
    try {
      await this.reconcile();
      // Started in 'refuse' mode: bind once so the pod has an address that refuses.
      if (listener.port === undefined) await listener.bind();
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
    this.routes.cancelSlow();
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
      address: this.listener?.port === undefined ? undefined : this.address,
      listening: this.listener?.listening ?? false,
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
    this.metrics = new DaemonMetrics();
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
    return this.listener?.reconcile() ?? Promise.resolve();
  }

  private dropHung(): void {
    for (const res of this.hung) res.socket?.destroy();
    this.hung.clear();
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
      if (res.writableFinished) this.metrics.record(method, route, res.statusCode, (performance.now() - t0) / 1000);
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
      this.routes.answer(route, method, path, req, res);
    });
  }
}
