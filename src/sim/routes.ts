/**
 * The simulated daemon's routes: which of the daemon's gin routes a request
 * hits, and the answer each gives (status endpoints, dispatch, webhook,
 * management), including the broken answers a failure mode asks for.
 */
import type http from 'node:http';
import { gzipSync } from 'node:zlib';
import { GateError } from '../core/errors.js';
import { isPluginId, pluginIdFromUniqueId, type PluginId } from '../core/plugin-id.js';
import type { PluginLifecycle } from './lifecycle.js';

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

export interface SimStats {
  /** Dispatches served here, by plugin id. */
  readonly hits: Map<PluginId, number>;
  /** Dispatches for a plugin not running here (answered 404), by plugin id. */
  readonly misses: Map<PluginId, number>;
}

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

export type Route =
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
export const ROUTE_LABEL: Record<Route, string> = {
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

export function routeOf(method: string, path: string, readyCheck: boolean): Route {
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

export function isSlow(mode: SimMode): mode is { readonly slowMs: number } {
  return typeof mode === 'object' && 'slowMs' in mode;
}
export function isOversize(mode: SimMode): mode is { readonly oversizeBytes: number } {
  return typeof mode === 'object' && 'oversizeBytes' in mode;
}

export function checkMode(mode: SimMode): void {
  if (mode === 'normal' || mode === 'refuse' || mode === 'hang' || mode === 'garbage') return;
  if (isSlow(mode) && Number.isFinite(mode.slowMs) && mode.slowMs >= 0) return;
  if (isOversize(mode) && Number.isInteger(mode.oversizeBytes) && mode.oversizeBytes >= 0) return;
  throw new GateError('config_invalid', `sim mode ${JSON.stringify(mode)} is not one of the known modes`);
}

/** What the routes read of the daemon process serving them. */
export interface RouteHost {
  readonly name: string;
  /** `/health/check` version. */
  readonly version: string;
  readonly stats: SimStats;
  mode(): SimMode;
  closed(): boolean;
  lifecycle(): PluginLifecycle | undefined;
  activeRequests(): number;
  activeDispatch(): number;
  /** The `/metrics/` body of this scrape (counted as one). */
  scrape(): string;
}

const BUILD_TIME = '2026-01-01T00:00:00Z';
const POOL_TOTAL = 10_000;

export class DaemonRoutes {
  private readonly slowTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly host: RouteHost) {}

  /** Drops answers still waiting out a slow mode (the process is going away). */
  cancelSlow(): void {
    for (const t of this.slowTimers) clearTimeout(t);
    this.slowTimers.clear();
  }

  /** Answers a request whose body has been read, as the daemon's handler for `route` would. */
  answer(route: Route, method: string, path: string, req: http.IncomingMessage, res: http.ServerResponse): void {
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
        this.json(res, 200, JSON.stringify({ served_by: this.host.name, hook_id: hook, method }));
        return;
      }
      case 'management':
        this.json(res, 200, JSON.stringify({ code: 0, message: 'success', data: { served_by: this.host.name } }));
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
    if (this.host.lifecycle()?.isRunning(pluginId) === true) {
      this.host.stats.hits.set(pluginId, (this.host.stats.hits.get(pluginId) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const line = (chunk?: number): string =>
        `${JSON.stringify({ code: 0, message: '', data: { served_by: this.host.name, plugin_id: pluginId, ...(chunk === undefined ? {} : { chunk }) } })}\n`;
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
        if (res.destroyed || this.host.closed()) return;
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
    this.host.stats.misses.set(pluginId, (this.host.stats.misses.get(pluginId) ?? 0) + 1);
    this.json(res, 404, NO_RUNTIME_BODY);
  }

  private json(res: http.ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private serveStatus(route: 'metrics' | 'health' | 'ready', req: http.IncomingMessage, res: http.ServerResponse): void {
    const mode = this.host.mode();
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
        if (!res.destroyed && !this.host.closed()) this.renderStatus(route, req, res);
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
    const text = this.host.scrape();
    const mode = this.host.mode();
    if (isOversize(mode)) {
      this.sendOversize(res, text, mode.oversizeBytes);
      return;
    }
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
    const load = this.host.lifecycle()?.load() ?? { launching: 0, queued: 0, running: 0 };
    const busy = 2 + load.launching + load.running + this.host.activeDispatch();
    return JSON.stringify({
      status: 'ok',
      pool_status: { free: POOL_TOTAL - busy, busy, total: POOL_TOTAL },
      version: this.host.version,
      build_time: BUILD_TIME,
      platform: 'local',
      active_requests: this.host.activeRequests(),
      active_dispatch_requests: this.host.activeDispatch(),
    });
  }

  /** PR #600 handler shapes: 200 without detail when ready, 503 with the snapshot otherwise. */
  private readyAnswer(): { status: number; body: string } {
    const detail = this.host.lifecycle()?.readinessDetail();
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
}
