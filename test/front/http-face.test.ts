/**
 * The HTTP forward-auth face on loopback: each gateway's convention, the
 * allow/deny shapes, broken requests, and bodies that are never waited for.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startHttpFace, type HttpFace } from '../../src/front/http/server.js';
import { allow, deny, StubService } from './fixtures.js';

const LISTEN = { host: '127.0.0.1', port: 0 };
const TIMEOUT_MS = 5000;
const MAX_HEADER = 4096;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Writes a raw request and reads until the server closes or the answer head + body arrive. */
function raw(port: number, data: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('raw request timed out: ' + text));
    }, TIMEOUT_MS);
    socket.setEncoding('latin1');
    socket.on('data', (c) => (text += c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.write(data);
  });
}

describe('HTTP face', () => {
  const stub = new StubService();
  const logs: { obj: any; msg: string }[] = [];
  let face: HttpFace;

  before(async () => {
    face = await startHttpFace({
      listen: LISTEN,
      service: stub,
      config: { httpDenyStatus: 503, httpPathPrefix: '/ext-authz', httpMaxHeaderBytes: MAX_HEADER },
      logger: { error: (obj, msg) => logs.push({ obj, msg }) },
    });
  });

  after(() => face.close(500));

  const last = () => stub.calls.at(-1)!;

  it('nginx auth_request convention', async () => {
    stub.answer = allow();
    await request(face.port, 'GET', '/_plugin_gate', {
      'X-Original-URI': '/plugin/t1/dispatch/llm/invoke',
      'X-Original-Method': 'POST',
      'X-Plugin-ID': 'langgenius/openai',
      'X-Request-ID': 'r-1',
    });
    assert.equal(last().face, 'http');
    assert.equal(last().req.method, 'POST');
    assert.equal(last().req.path, '/plugin/t1/dispatch/llm/invoke');
    assert.equal(last().req.header('x-plugin-id'), 'langgenius/openai');
    assert.equal(last().req.requestId, 'r-1');
  });

  it('ingress-nginx convention', async () => {
    await request(face.port, 'GET', '/auth', { 'X-Original-URL': 'https://api.example.com/v2/invoke/extract?x=1', 'X-Original-Method': 'GET' });
    assert.equal(last().req.method, 'GET');
    assert.equal(last().req.path, '/v2/invoke/extract?x=1');
    assert.equal(last().req.header('host'), 'api.example.com');
  });

  it('Traefik ForwardAuth convention', async () => {
    await request(face.port, 'GET', '/', { 'X-Forwarded-Method': 'POST', 'X-Forwarded-Uri': '/plugin/t/dispatch/tool/invoke', 'X-Forwarded-Host': 'dify.local' });
    assert.equal(last().req.method, 'POST');
    assert.equal(last().req.path, '/plugin/t/dispatch/tool/invoke');
    assert.equal(last().req.header('host'), 'dify.local');
  });

  it('Envoy http_service convention: own method and path, prefix stripped', async () => {
    await request(face.port, 'POST', '/ext-authz/plugin/t/dispatch/tool/invoke?a=1', { 'x-plugin-id': 'a/b' });
    assert.equal(last().req.method, 'POST');
    assert.equal(last().req.path, '/plugin/t/dispatch/tool/invoke?a=1');
  });

  it('reserved-looking paths are still checks', async () => {
    const n = stub.calls.length;
    for (const p of ['/healthz', '/metrics', '/status', '/readyz']) await request(face.port, 'GET', p);
    assert.equal(stub.calls.length, n + 4);
    assert.equal(last().req.path, '/readyz');
  });

  it('allow: 200, routing headers, empty body', async () => {
    stub.answer = allow();
    const a = await request(face.port, 'GET', '/x');
    assert.equal(a.status, 200);
    assert.equal(a.headers['x-plugin-gate-upstream'], '10.0.0.7:5002');
    assert.equal(a.headers['x-plugin-gate-reason'], 'plugin_ready');
    assert.match(String(a.headers['x-plugin-gate-decision-id']), /^test-\d+$/);
    assert.equal(a.body, '');
  });

  it('allow routed nowhere: no upstream header', async () => {
    stub.answer = allow({ reason: 'route_bypass', upstream: undefined });
    const a = await request(face.port, 'GET', '/x');
    assert.equal(a.status, 200);
    assert.equal(a.headers['x-plugin-gate-upstream'], undefined);
    assert.equal(a.headers['x-plugin-gate-reason'], 'route_bypass');
  });

  it('deny: deny status, retry-after, JSON envelope body', async () => {
    const d = deny();
    stub.answer = d;
    const a = await request(face.port, 'POST', '/x');
    assert.equal(a.status, 503);
    assert.equal(a.headers['retry-after'], '5');
    assert.equal(a.headers['content-type'], 'application/json');
    assert.equal(a.headers['x-plugin-gate-reason'], 'plugin_starting');
    assert.ok(a.headers['x-plugin-gate-decision-id']);
    assert.equal(a.body, d.body);
    assert.equal(JSON.parse(a.body).code, -500);
  });

  it('deny 400 stays 400 (no retry-after) when the deny status is not 401/403', async () => {
    stub.answer = deny({ reason: 'invalid_plugin_id', httpStatus: 400, retryAfterS: undefined });
    const a = await request(face.port, 'GET', '/x');
    assert.equal(a.status, 400);
    assert.equal(a.headers['retry-after'], undefined);
  });

  it('a throwing service answers 500 with an envelope, is logged, and the face keeps serving', async () => {
    stub.throwOnCheck = new Error('bug');
    const a = await request(face.port, 'GET', '/x');
    stub.throwOnCheck = undefined;
    assert.equal(a.status, 500);
    assert.equal(JSON.parse(a.body).code, -500);
    assert.equal(logs.at(-1)!.obj.err.code, 'internal');
    stub.answer = allow();
    assert.equal((await request(face.port, 'GET', '/x')).status, 200);
  });

  it('oversized request head: 431, and the face keeps serving', async () => {
    const n = stub.calls.length;
    const out = await raw(face.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(MAX_HEADER * 4)}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 431 /);
    assert.match(out, /"code":-400/);
    assert.equal(stub.calls.length, n, 'no decision for a request that could not be read');
    assert.equal((await request(face.port, 'GET', '/x')).status, 200);
  });

  it('malformed request: 400, and the face keeps serving', async () => {
    const out = await raw(face.port, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.equal((await request(face.port, 'GET', '/x')).status, 200);
  });

  it('auto: a client copy of another gateway convention (X-Original-URL beside nginx X-Original-URI) is refused with 400, not obeyed', async () => {
    const n = stub.calls.length;
    const out = await request(face.port, 'GET', '/_plugin_gate', {
      'X-Original-URI': '/plugin/t1/dispatch/llm/invoke',
      'X-Original-URL': 'http://x/health/check',
      'X-Plugin-ID': 'langgenius/openai',
    });
    assert.equal(out.status, 400);
    assert.match(out.body, /ambiguous original request: x-original-uri and x-original-url are both present; set http-request-from/);
    assert.equal(stub.calls.length, n, 'no decision was made from either');
    assert.equal((await request(face.port, 'GET', '/x')).status, 200);
  });

  it('CONNECT gets a clear answer (405 with an envelope) instead of a closed socket, and the face keeps serving', async () => {
    const n = stub.calls.length;
    const out = await raw(face.port, 'CONNECT 10.0.0.1:5002 HTTP/1.1\r\nHost: 10.0.0.1:5002\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(out, /\r\nallow: GET, HEAD, POST/);
    assert.match(out, /"code":-400.*CONNECT is not checked/);
    assert.equal(stub.calls.length, n);
    assert.equal((await request(face.port, 'GET', '/x')).status, 200);
  });

  it('a large streamed body is never waited for', async () => {
    stub.answer = deny();
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: face.port, method: 'POST', path: '/x', agent: false, headers: { 'content-length': String(64 * 1024 * 1024) } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (body += c));
          res.on('end', () => {
            resolve({ status: res.statusCode!, headers: res.headers, body });
            req.destroy();
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new Error('no answer while the body was still streaming')), TIMEOUT_MS);
      req.on('close', () => clearTimeout(timer));
      req.on('error', (e) => (e.message.startsWith('no answer') ? reject(e) : undefined));
      // One chunk of a 64 MiB body, and the rest never comes: an answer can
      // only arrive if the face did not wait for the body.
      req.write(Buffer.alloc(64 * 1024));
    });
    assert.equal(answer.status, 503);
    assert.equal(answer.body, deny().body);
  });

  it('Expect: 100-continue is answered with the decision, not 100', async () => {
    stub.answer = allow();
    const out = await raw(face.port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(out, /100 Continue/);
  });
});

describe('HTTP face for nginx (deny status 403)', () => {
  it('every deny, 400 included, arrives as 403', async () => {
    const stub = new StubService();
    const face = await startHttpFace({ listen: LISTEN, service: stub, config: { httpDenyStatus: 403, httpPathPrefix: '', httpMaxHeaderBytes: 16384 } });
    try {
      stub.answer = deny();
      const a = await request(face.port, 'GET', '/x');
      assert.equal(a.status, 403);
      assert.equal(a.headers['retry-after'], '5');
      stub.answer = deny({ httpStatus: 400, reason: 'invalid_plugin_id', retryAfterS: undefined });
      assert.equal((await request(face.port, 'GET', '/x')).status, 403);
    } finally {
      await face.close(500);
    }
  });
});
