/**
 * Tiny loopback servers for the status-reader tests: each route is a handler,
 * so one test can serve a daemon answer, a hang, a reset or a flood.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface TestServer {
  /** `127.0.0.1:port` */
  readonly address: string;
  readonly server: Server;
  /** Requests seen, by path. */
  readonly hits: Map<string, number>;
  /** Bytes the server managed to write, per path (flood handlers count here). */
  readonly written: Map<string, number>;
  route(path: string, handler: Handler): void;
  close(): Promise<void>;
}

export async function startServer(routes: Record<string, Handler> = {}): Promise<TestServer> {
  const table = new Map<string, Handler>(Object.entries(routes));
  const hits = new Map<string, number>();
  const written = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const h = table.get(path);
    if (h === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
      return;
    }
    h(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    server,
    hits,
    written,
    route(path, handler) {
      table.set(path, handler);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function text(status: number, body: string, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', ...headers }).end(body);
  };
}

export function json(status: number, body: unknown): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  };
}

/** Accepts the request and never answers. */
export const hang: Handler = () => {};

/** Destroys the connection without a response. */
export const reset: Handler = (req) => {
  req.socket.destroy();
};

/**
 * Streams up to `total` bytes in 16 KiB chunks, honouring back-pressure, and
 * records in `server.written` how much it got to write before the client went away.
 */
export function flood(srv: () => TestServer, path: string, total: number, withLength: boolean): Handler {
  return (_req, res) => {
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    if (withLength) headers['content-length'] = String(total);
    res.writeHead(200, headers);
    const chunk = Buffer.alloc(16 * 1024, 'x');
    let sent = 0;
    const record = (): void => {
      srv().written.set(path, sent);
    };
    const pump = (): void => {
      while (sent < total && !res.destroyed) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        record();
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      if (sent >= total) res.end();
    };
    res.on('close', record);
    pump();
  };
}

/** A port that was free a moment ago and has nothing listening now. */
export async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A raw TCP server that answers every connection with `bytes` and closes. */
export async function startRawServer(bytes: string): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const s = createNetServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.end(bytes);
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      for (const x of sockets) x.destroy();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
