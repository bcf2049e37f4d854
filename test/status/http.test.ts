import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GateError, type ErrorCode } from '../../src/core/errors.js';
import { StatusHttp, type GetTextOptions } from '../../src/status/http.js';
import { closedPort, flood, hang, reset, startRawServer, startServer, text, type TestServer } from './servers.js';

const TIMEOUT = 300;
const opts: GetTextOptions = { timeoutMs: TIMEOUT, maxBytes: 64 * 1024 };

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<GateError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof GateError, `expected GateError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

describe('StatusHttp.getText against loopback servers', () => {
  let srv: TestServer;
  let resetOnce = 0;
  let other: TestServer;
  let http: StatusHttp;
  const BIG = 256 * 1024 * 1024;

  before(async () => {
    srv = await startServer({
      '/ok': text(200, 'hello\n', { 'x-extra': 'yes' }),
      '/metrics': (_req, res) => res.writeHead(301, { location: '/metrics/' }).end('<a href="/metrics/">Moved Permanently</a>.'),
      '/metrics/': text(200, 'up 1\n'),
      '/loop': (_req, res) => res.writeHead(301, { location: '/loop2' }).end(),
      '/loop2': (_req, res) => res.writeHead(302, { location: '/loop-end' }).end(),
      '/loop-end': text(200, 'too far'),
      '/offsite': (_req, res) => res.writeHead(301, { location: `http://${other.address}/ok` }).end(),
      '/hang': hang,
      '/reset': reset,
      // Drops the first request it sees, answers the next: a daemon restarting under a pooled socket.
      '/reset-once': (req, res) => {
        if (resetOnce++ === 0) reset(req, res);
        else text(200, 'after restart')(req, res);
      },
      '/error': text(500, 'internal error'),
      '/unavailable': text(503, '{"ready":false}'),
      '/exact': text(200, 'x'.repeat(64 * 1024)),
      '/big-cl': flood(() => srv, '/big-cl', BIG, true),
      '/big-chunked': flood(() => srv, '/big-chunked', BIG, false),
      '/utf8': text(200, 'plugin “ü” ✓'),
    });
    other = await startServer({ '/ok': text(200, 'elsewhere') });
    http = new StatusHttp({ timeoutMs: TIMEOUT });
  });

  after(async () => {
    await http.close();
    await srv.close();
    await other.close();
  });

  it('returns status, body and headers of a 200', async () => {
    const r = await http.getText(`http://${srv.address}/ok`, opts);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hello\n');
    assert.equal(r.headers['x-extra'], 'yes');
  });

  it('decodes the body as UTF-8', async () => {
    assert.equal((await http.getText(`http://${srv.address}/utf8`, opts)).body, 'plugin “ü” ✓');
  });

  it('follows the daemon’s /metrics → /metrics/ redirect', async () => {
    const r = await http.getText(`http://${srv.address}/metrics`, opts);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'up 1\n');
  });

  it('follows at most one redirect', async () => {
    const e = await rejectsWith(http.getText(`http://${srv.address}/loop`, opts), 'status_http_error');
    assert.match(e.message, /302/);
    assert.equal(srv.hits.get('/loop2'), 1);
    assert.equal(srv.hits.get('/loop-end') ?? 0, 0);
  });

  it('does not follow a redirect to another origin', async () => {
    await rejectsWith(http.getText(`http://${srv.address}/offsite`, opts), 'status_http_error');
    assert.equal(other.hits.get('/ok') ?? 0, 0);
  });

  it('a server that never answers → status_timeout', async () => {
    const e = await rejectsWith(http.getText(`http://${srv.address}/hang`, opts), 'status_timeout');
    assert.match(e.message, /300ms/);
  });

  it('a closed port → status_refused', async () => {
    await rejectsWith(http.getText(`http://127.0.0.1:${await closedPort()}/ok`, opts), 'status_refused');
  });

  it('a server that drops the connection → status_reset', async () => {
    await rejectsWith(http.getText(`http://${srv.address}/reset`, opts), 'status_reset');
  });

  it('sends a GET once more when its connection was reset, then answers', async () => {
    resetOnce = 0;
    const r = await http.getText(`http://${srv.address}/reset-once`, opts);
    assert.equal(r.body, 'after restart');
    assert.equal(resetOnce, 2);
  });

  it('HTTP 500 → status_http_error naming the status', async () => {
    const e = await rejectsWith(http.getText(`http://${srv.address}/error`, opts), 'status_http_error');
    assert.match(e.message, /HTTP 500/);
  });

  it('a status outside acceptStatus → status_http_error; inside it is an answer', async () => {
    await rejectsWith(http.getText(`http://${srv.address}/unavailable`, opts), 'status_http_error');
    const r = await http.getText(`http://${srv.address}/unavailable`, { ...opts, acceptStatus: [200, 503] });
    assert.equal(r.status, 503);
    assert.equal(r.body, '{"ready":false}');
  });

  it('a body of exactly maxBytes is read', async () => {
    assert.equal((await http.getText(`http://${srv.address}/exact`, opts)).body.length, 64 * 1024);
  });

  for (const [path, what] of [
    ['/big-cl', 'with Content-Length'],
    ['/big-chunked', 'chunked, without Content-Length'],
  ] as const) {
    it(`an oversized body ${what} → status_too_large, without reading it all`, async () => {
      await rejectsWith(http.getText(`http://${srv.address}${path}`, { ...opts, timeoutMs: 5000 }), 'status_too_large');
      // The server stops as soon as its socket closes; wait for that, bounded.
      const deadline = Date.now() + 5000;
      while ((srv.written.get(path) ?? 0) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50));
      const written = srv.written.get(path) ?? 0;
      assert.ok(written < BIG / 4, `server wrote ${written} of ${BIG} bytes`);
    });
  }

  it('an answer that is not HTTP → status_unparseable', async () => {
    const raw = await startRawServer('SSH-2.0-OpenSSH_9.6\r\n\r\n');
    try {
      await rejectsWith(http.getText(`http://${raw.address}/metrics/`, opts), 'status_unparseable');
    } finally {
      await raw.close();
    }
  });

  it('an aborted signal ends a hanging request at once', async () => {
    const ac = new AbortController();
    const p = http.getText(`http://${srv.address}/hang`, { ...opts, timeoutMs: 10_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    const e = await rejectsWith(p, 'status_timeout');
    assert.match(e.message, /aborted/);
  });

  it('keeps connections alive between polls', async () => {
    const s = await startServer({ '/ok': text(200, 'ok') });
    let connections = 0;
    s.server.on('connection', () => connections++);
    const h = new StatusHttp({ timeoutMs: TIMEOUT });
    try {
      for (let i = 0; i < 3; i++) {
        await h.getText(`http://${s.address}/ok`, opts);
        // Polls are seconds apart; one tick lets the pool see the socket idle again.
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(connections, 1);
    } finally {
      await h.close();
      await s.close();
    }
  });

  it('after close(), calls fail with status_unreachable', async () => {
    const h = new StatusHttp({ timeoutMs: TIMEOUT });
    await h.close();
    await rejectsWith(h.getText(`http://${srv.address}/ok`, opts), 'status_unreachable');
  });
});

describe('StatusHttp.onConnectionLost: the pooled connections watch the pod', () => {
  /** A server whose idle sockets the test can close from the server side. */
  async function watched(extra: Record<string, Parameters<typeof startServer>[0] extends infer R ? R extends Record<string, infer H> ? H : never : never> = {}) {
    const serverSockets = new Set<import('node:net').Socket>();
    const s = await startServer({ '/ok': text(200, 'ok'), ...extra });
    // Like the daemon (Go net/http without IdleTimeout): idle keep-alives are never closed by the server.
    s.server.keepAliveTimeout = 0;
    s.server.on('connection', (sock) => {
      serverSockets.add(sock);
      sock.on('close', () => serverSockets.delete(sock));
    });
    return { s, serverSockets };
  }
  const until = async (what: string, check: () => boolean): Promise<void> => {
    const deadline = Date.now() + 5_000;
    while (!check()) {
      if (Date.now() > deadline) assert.fail(`${what}: not within 5 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  it('reports the pod closing an idle connection (FIN) or resetting it (RST), by the address the readers use', async () => {
    const { s, serverSockets } = await watched();
    const h = new StatusHttp({ timeoutMs: TIMEOUT });
    const lost: [string, string][] = [];
    h.onConnectionLost((address, code) => lost.push([address, code]));
    try {
      await h.getText(`http://${s.address}/ok`, opts);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(lost, [], 'an answered poll loses nothing');
      for (const sock of serverSockets) sock.end(); // FIN, as a process exit closes its sockets
      await until('a FIN is reported', () => lost.length === 1);
      assert.deepEqual(lost[0], [s.address, 'status_reset']);
      await h.getText(`http://${s.address}/ok`, opts);
      await new Promise((r) => setImmediate(r));
      for (const sock of serverSockets) sock.resetAndDestroy(); // RST
      await until('an RST is reported', () => lost.length === 2);
      assert.deepEqual(lost[1], [s.address, 'status_reset']);
    } finally {
      await h.close();
      await s.close();
    }
  });

  it('does not report closes of its own making: idle timeout, an aborted or oversized read, Connection: close, close()', async () => {
    const { s, serverSockets } = await watched({
      '/hang': hang,
      '/close': text(200, 'bye', { connection: 'close' }),
      '/big': text(200, 'x'.repeat(4096)),
    });
    const h = new StatusHttp({ timeoutMs: TIMEOUT, keepAliveMs: 50 });
    const lost: string[] = [];
    h.onConnectionLost((address) => lost.push(address));
    try {
      await h.getText(`http://${s.address}/ok`, opts);
      await until('the idle socket times out on our side', () => serverSockets.size === 0);
      await rejectsWith(h.getText(`http://${s.address}/hang`, { ...opts, timeoutMs: 50 }), 'status_timeout');
      await rejectsWith(h.getText(`http://${s.address}/big`, { ...opts, maxBytes: 1024 }), 'status_too_large');
      await h.getText(`http://${s.address}/close`, opts);
      await h.getText(`http://${s.address}/ok`, opts);
      await new Promise((r) => setTimeout(r, 100));
      await h.close();
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(lost, []);
    } finally {
      await h.close();
      await s.close();
    }
  });
});
