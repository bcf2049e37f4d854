/**
 * Admin HTTP: / (the fleet view as a page), /healthz (the process answers), /readyz (200 only once the first
 * complete poll round is done — never before, or the gate repeats the daemon's
 * own "ready at second 0" bug — and 503 again while draining), /status (the
 * fleet view as JSON), /metrics (Prometheus).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../core/clock.js';
import type { HostPort } from '../core/address.js';
import type { FleetSnapshot } from '../fleet/types.js';
import type { GateMetrics } from '../observe/metrics.js';
import { statusDocument } from './status.js';
import { statusPage } from './page.js';

export interface AdminDeps {
  readonly snapshot: () => FleetSnapshot;
  readonly serving: () => boolean;
  readonly draining: () => boolean;
  readonly metrics: GateMetrics;
  readonly clock: Clock;
  /** Requests held now per plugin (hold-starting). */
  readonly held?: () => ReadonlyMap<string, number>;
}

/** A small HTTP/1.1 listener for people and probes: the admin face and `plugin-gate probe`. */
export interface PlainServer {
  readonly port: number;
  close(): Promise<void>;
}

export type AdminServer = PlainServer;

export function startAdmin(listen: HostPort, deps: AdminDeps): Promise<AdminServer> {
  return startPlainServer(listen, (req, res) => handle(req, res, deps));
}

/**
 * Bounded header and request time, short keep-alive, and a handler that throws still answers 500:
 * these faces are read by kubelets and browsers, never on the Check path.
 */
export async function startPlainServer(
  listen: HostPort,
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): Promise<PlainServer> {
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 10_000 }, (req, res) => {
    handler(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  });
  server.keepAliveTimeout = 5_000;
  await listenOn(server, listen);
  return {
    port: (server.address() as AddressInfo).port,
    close: () => closeServer(server),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, deps: AdminDeps): Promise<void> {
  const url = req.url ?? '/';
  const path = url.split('?', 1)[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  switch (path) {
    case '/healthz':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    case '/readyz': {
      const snap = deps.snapshot();
      if (deps.serving()) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
      } else {
        const why = deps.draining() ? 'draining' : snap.complete ? 'not serving' : 'first poll round not complete';
        res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${why}\n`);
      }
      return;
    }
    case '/status': {
      const body = JSON.stringify(statusDocument(deps.snapshot(), deps.clock.now(), deps.draining(), deps.held?.()), null, 2);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body + '\n');
      return;
    }
    case '/metrics': {
      const text = await deps.metrics.text();
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(text);
      return;
    }
    case '/':
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" })
        .end(statusPage(deps.snapshot(), deps.clock.now(), deps.draining(), deps.held?.()));
      return;
    default:
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try / /healthz /readyz /status /metrics\n');
  }
}

function listenOn(server: Server, listen: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(listen.port, listen.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Connections still busy after a short grace are cut: close must not hang.
    setTimeout(() => server.closeAllConnections(), 1_000).unref();
  });
}
