/**
 * TLS and mutual TLS on the gRPC and HTTP faces over real loopback
 * connections, with a throwaway PKI made by the openssl CLI: who gets through,
 * which certificate is served, and certificate rotation without a restart
 * (including a broken file mid-rotation, which must not take the faces down).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';
import http from 'node:http';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { startGrpcServer, type GrpcServer } from '../../src/front/grpc/server.js';
import { startHttpFace, type HttpFace } from '../../src/front/http/server.js';
import { TlsSource, type TlsLogger } from '../../src/front/tls.js';
import type { TlsFiles } from '../../src/tls/files.js';
import { TestPki, type CertFiles } from '../support/certs.js';
import { startHarness, type Harness } from '../support/gate.js';
import { ManualScheduler, advanceUntil } from '../support/manual-scheduler.js';
import { packageRoot } from '../../src/core/package-root.js';
import { allow, officialPackage, StubService } from './fixtures.js';

const LISTEN = { host: '127.0.0.1', port: 0 };
const CALL_TIMEOUT_MS = 5_000;
const RELOAD_MS = 200;
const HTTP_CONFIG = { httpDenyStatus: 503, httpPathPrefix: '', httpMaxHeaderBytes: 16_384 };
const GRPC_CONFIG = { routeHeader: undefined, grpcReflection: false };
const REQUEST = {
  attributes: {
    request: { http: { method: 'POST', path: '/plugin/t1/dispatch/tool/invoke', headers: { 'x-plugin-id': 'langgenius/openai' } } },
  },
};

// ------------------------------------------------------------------ clients

/**
 * Connect to 127.0.0.1 but verify (and send SNI for) the certificate's DNS name:
 * SNI may not carry an IP address (RFC 6066; Node warns).
 */
const CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.ssl_target_name_override': 'localhost' };

type CheckClient = grpc.Client & {
  Check: (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: any) => void) => grpc.ClientUnaryCall;
};

function grpcClient(port: number, creds: grpc.ChannelCredentials): CheckClient {
  const svc = officialPackage()['envoy.service.auth.v3.Authorization'] as protoLoader.ServiceDefinition;
  const Ctor = grpc.makeGenericClientConstructor(svc, 'Authorization');
  return new Ctor(`127.0.0.1:${port}`, creds, CHANNEL_OPTIONS) as unknown as CheckClient;
}

/** One Check on a fresh channel (so a fresh TLS handshake), closed afterwards. */
async function grpcCheck(port: number, creds: grpc.ChannelCredentials): Promise<{ code: number; details: string }> {
  const client = grpcClient(port, creds);
  try {
    return await new Promise((resolve) => {
      client.Check(REQUEST, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, res) =>
        resolve(err ? { code: err.code, details: err.details } : { code: res.status.code, details: 'ok' }),
      );
    });
  } finally {
    client.close();
  }
}

interface ClientCert {
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

function grpcTls(ca: CertFiles, client: ClientCert = {}): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(ca.certPem, client.key ?? null, client.cert ?? null);
}

interface HttpsAnswer {
  readonly status: number;
  readonly reason: string | undefined;
  readonly servedCn: string;
}

/** One forward-auth check over https on a fresh connection. */
function httpsCheck(port: number, ca: CertFiles, client: ClientCert = {}): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: 'GET',
        path: '/plugin/t1/dispatch/tool/invoke',
        headers: { 'x-plugin-id': 'langgenius/openai' },
        ca: ca.certPem,
        cert: client.cert,
        key: client.key,
        agent: false,
        timeout: CALL_TIMEOUT_MS,
      },
      (res) => {
        const servedCn = String((res.socket as tls.TLSSocket).getPeerCertificate().subject?.CN);
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, reason: res.headers['x-plugin-gate-reason'] as string | undefined, servedCn }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the error a request fails with, or rejects if it succeeds. */
async function fails(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the request to fail');
}

/**
 * The certificate a TLS listener serves to a new connection, read with a raw
 * TLS socket (ALPN h2 for the gRPC face, which refuses anything else). The
 * chain is verified against `ca`.
 */
function servedCertificate(port: number, ca: CertFiles, alpn: string[] | undefined, client: ClientCert = {}): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, cert: client.cert, key: client.key, ALPNProtocols: alpn, timeout: CALL_TIMEOUT_MS });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      if (alpn !== undefined && socket.alpnProtocol !== alpn[0]) reject(new Error(`ALPN ${String(socket.alpnProtocol)}`));
      else resolve(cert);
      socket.destroy();
    });
    socket.once('timeout', () => socket.destroy(new Error('tls connect timed out')));
    socket.once('error', reject);
  });
}

function captureLogger(): TlsLogger & { error(obj: object, msg: string): void; lines: { level: string; obj: any; msg: string }[] } {
  const lines: { level: string; obj: any; msg: string }[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
  };
}

/** Re-runs an async probe, moving the reload clock one interval each time, until it holds (bounded in real time). */
async function until(sched: ManualScheduler, what: string, probe: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${ms}ms`);
    sched.advance(RELOAD_MS);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves at the next successful reload of `source` (bounded). */
function nextReload(source: TlsSource): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('no reload within 5s'));
    }, 5_000);
    const off = source.onChange((m) => {
      clearTimeout(timer);
      off();
      resolve(m.info.subject);
    });
  });
}

// ------------------------------------------------------------------ tests

/** Both faces on one TLS source, as the app runs them. */
async function startFaces(stub: StubService, source: TlsSource): Promise<{ grpcServer: GrpcServer; httpFace: HttpFace }> {
  const grpcServer = await startGrpcServer({ listen: LISTEN, service: stub, config: GRPC_CONFIG, tls: source });
  const httpFace = await startHttpFace({ listen: LISTEN, service: stub, config: HTTP_CONFIG, tls: source });
  return { grpcServer, httpFace };
}

async function closeFaces(grpcServer: GrpcServer, httpFace: HttpFace, source: TlsSource): Promise<void> {
  await Promise.all([grpcServer.close(0), httpFace.close(0)]);
  source.close();
}

describe('TLS on the wire faces', () => {
  let pki: TestPki;
  let ca: CertFiles;
  let otherCa: CertFiles;
  let gateA: CertFiles;
  let gateB: CertFiles;
  let envoy: CertFiles;
  let intruder: CertFiles;

  before(() => {
    pki = new TestPki();
    ca = pki.ca('test-ca');
    otherCa = pki.ca('other-ca');
    gateA = pki.leaf('gate-a', ca, 'server');
    gateB = pki.leaf('gate-b', ca, 'server');
    envoy = pki.leaf('envoy', ca, 'client');
    intruder = pki.leaf('intruder', otherCa, 'client');
  });
  after(() => pki.remove());

  /** Fresh served paths holding gate-a, for a test that rotates them. */
  function servedFiles(name: string, clientCa?: CertFiles): TlsFiles {
    const cert = pki.path(`${name}.crt`);
    const key = pki.path(`${name}.key`);
    copyFileSync(gateA.cert, cert);
    copyFileSync(gateA.key, key);
    return { cert, key, clientCa: clientCa?.cert };
  }

  describe('server TLS (no client certificate)', () => {
    const stub = new StubService();
    let source: TlsSource;
    let grpcServer: GrpcServer;
    let httpFace: HttpFace;

    before(async () => {
      stub.answer = allow();
      source = TlsSource.open(servedFiles('server-tls'), { reloadMs: 86_400_000 });
      ({ grpcServer, httpFace } = await startFaces(stub, source));
    });
    after(() => closeFaces(grpcServer, httpFace, source));

    it('gRPC Check succeeds for a client that trusts the CA; the served certificate is the configured one', async () => {
      assert.deepEqual(await grpcCheck(grpcServer.port, grpcTls(ca)), { code: 0, details: 'ok' });
      assert.equal(stub.calls.at(-1)!.face, 'grpc');
      const served = await servedCertificate(grpcServer.port, ca, ['h2']);
      assert.equal(served.subject.CN, 'gate-a');
    });

    it('gRPC: a plaintext client and a client trusting another CA get no answer', async () => {
      const before = stub.calls.length;
      const plain = await grpcCheck(grpcServer.port, grpc.credentials.createInsecure());
      assert.equal(plain.code, grpc.status.UNAVAILABLE, plain.details);
      const wrongCa = await grpcCheck(grpcServer.port, grpcTls(otherCa));
      assert.equal(wrongCa.code, grpc.status.UNAVAILABLE, wrongCa.details);
      assert.equal(stub.calls.length, before, 'no Check reached the service');
    });

    it('HTTP face answers over https; plain HTTP to it gets no decision', async () => {
      const a = await httpsCheck(httpFace.port, ca);
      assert.deepEqual(a, { status: 200, reason: 'plugin_ready', servedCn: 'gate-a' });
      assert.equal(stub.calls.at(-1)!.face, 'http');

      const before = stub.calls.length;
      const plain = await new Promise<number | Error>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: httpFace.port, path: '/', agent: false, timeout: CALL_TIMEOUT_MS }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', resolve);
      });
      assert.ok(plain instanceof Error, `plain HTTP got status ${String(plain)}`);
      assert.equal(stub.calls.length, before);
      await fails(httpsCheck(httpFace.port, otherCa));
    });
  });

  describe('mutual TLS', () => {
    const stub = new StubService();
    let source: TlsSource;
    let grpcServer: GrpcServer;
    let httpFace: HttpFace;

    before(async () => {
      stub.answer = allow();
      source = TlsSource.open(servedFiles('mtls', ca), { reloadMs: 86_400_000 });
      ({ grpcServer, httpFace } = await startFaces(stub, source));
    });
    after(() => closeFaces(grpcServer, httpFace, source));

    it('gRPC: no client certificate, or one from another CA, is refused; a good one is served', async () => {
      const before = stub.calls.length;
      const none = await grpcCheck(grpcServer.port, grpcTls(ca));
      assert.equal(none.code, grpc.status.UNAVAILABLE, none.details);
      const foreign = await grpcCheck(grpcServer.port, grpcTls(ca, { cert: intruder.certPem, key: intruder.keyPem }));
      assert.equal(foreign.code, grpc.status.UNAVAILABLE, foreign.details);
      assert.equal(stub.calls.length, before, 'no refused client reached the service');

      assert.deepEqual(await grpcCheck(grpcServer.port, grpcTls(ca, { cert: envoy.certPem, key: envoy.keyPem })), { code: 0, details: 'ok' });
      assert.equal(stub.calls.length, before + 1);
    });

    it('HTTP face: no client certificate, or one from another CA, is refused; a good one is served', async () => {
      const before = stub.calls.length;
      await fails(httpsCheck(httpFace.port, ca));
      await fails(httpsCheck(httpFace.port, ca, { cert: intruder.certPem, key: intruder.keyPem }));
      assert.equal(stub.calls.length, before);
      assert.deepEqual(await httpsCheck(httpFace.port, ca, { cert: envoy.certPem, key: envoy.keyPem }), {
        status: 200,
        reason: 'plugin_ready',
        servedCn: 'gate-a',
      });
    });
  });

  describe('rotation without restart', () => {
    const stub = new StubService();
    const log = captureLogger();
    let files: TlsFiles;
    let source: TlsSource;
    let grpcServer: GrpcServer;
    let httpFace: HttpFace;
    const good = (): ClientCert => ({ cert: envoy.certPem, key: envoy.keyPem });
    // Reloads happen when the test moves this clock, never on their own.
    const sched = new ManualScheduler(Date.now());

    before(async () => {
      stub.answer = allow();
      files = servedFiles('rotate', ca);
      source = TlsSource.open(files, { reloadMs: RELOAD_MS, logger: log, scheduler: sched });
      ({ grpcServer, httpFace } = await startFaces(stub, source));
    });
    after(() => closeFaces(grpcServer, httpFace, source));

    it('new connections on both faces get the new certificate after the reload interval', async () => {
      const oldHttp = await servedCertificate(httpFace.port, ca, undefined, good());
      const oldGrpc = await servedCertificate(grpcServer.port, ca, ['h2'], good());
      assert.equal(oldHttp.subject.CN, 'gate-a');
      assert.equal(oldGrpc.serialNumber, oldHttp.serialNumber);

      const reloaded = nextReload(source);
      // Two separate writes, as a rotating tool does: the reload between them sees
      // a mismatched pair and keeps gate-a; the next one takes gate-b.
      copyFileSync(gateB.cert, files.cert);
      sched.advance(RELOAD_MS);
      assert.equal(await source.reload(), 'rejected', 'the reload the timer started sees the new cert with the old key');
      assert.equal((await servedCertificate(httpFace.port, ca, undefined, good())).subject.CN, 'gate-a');
      copyFileSync(gateB.key, files.key);
      sched.advance(RELOAD_MS);
      assert.equal(await reloaded, 'CN=gate-b');

      const newHttp = await servedCertificate(httpFace.port, ca, undefined, good());
      const newGrpc = await servedCertificate(grpcServer.port, ca, ['h2'], good());
      assert.equal(newHttp.subject.CN, 'gate-b');
      assert.equal(newGrpc.subject.CN, 'gate-b');
      assert.notEqual(newHttp.serialNumber, oldHttp.serialNumber);
      assert.equal(newGrpc.serialNumber, newHttp.serialNumber);
      // Still the same client CA: checks keep flowing on fresh connections.
      assert.deepEqual(await grpcCheck(grpcServer.port, grpcTls(ca, good())), { code: 0, details: 'ok' });
      assert.equal((await httpsCheck(httpFace.port, ca, good())).servedCn, 'gate-b');
      const info = log.lines.filter((l) => l.msg === 'TLS certificate reloaded').at(-1)!;
      assert.equal(info.obj.subject, 'CN=gate-b');
      assert.match(info.obj.not_after, /^\d{4}-\d\d-\d\dT/);
    });

    it('a broken file during reload keeps the old credentials serving', async () => {
      const warned = log.lines.filter((l) => l.level === 'warn').length;
      writeFileSync(files.cert, gateA.certPem.subarray(0, gateA.certPem.length >> 1));
      await advanceUntil(sched, 'the broken file is noticed', () => log.lines.filter((l) => l.level === 'warn').length > warned, RELOAD_MS);
      const warn = log.lines.filter((l) => l.level === 'warn').at(-1)!;
      assert.match(warn.obj.problems.join('\n'), /^tls-cert: .* unterminated PEM certificate/m);
      assert.equal(warn.obj.serving.subject, 'CN=gate-b');

      assert.equal((await servedCertificate(httpFace.port, ca, undefined, good())).subject.CN, 'gate-b');
      assert.equal((await servedCertificate(grpcServer.port, ca, ['h2'], good())).subject.CN, 'gate-b');
      assert.deepEqual(await grpcCheck(grpcServer.port, grpcTls(ca, good())), { code: 0, details: 'ok' });
      assert.equal((await httpsCheck(httpFace.port, ca, good())).status, 200);

      // Repaired: the next valid set is taken as usual.
      const reloaded = nextReload(source);
      copyFileSync(gateA.key, files.key);
      copyFileSync(gateA.cert, files.cert);
      sched.advance(RELOAD_MS);
      assert.equal(await reloaded, 'CN=gate-a');
      assert.equal((await servedCertificate(grpcServer.port, ca, ['h2'], good())).subject.CN, 'gate-a');
    });
  });

  it('a face given only tls-* settings serves TLS from its own source and reloads it', async () => {
    const stub = new StubService();
    stub.answer = allow();
    const files = servedFiles('owned');
    const config = { tlsCert: files.cert, tlsKey: files.key, tlsReloadMs: RELOAD_MS };
    const logger = captureLogger();
    const sched = new ManualScheduler(Date.now());
    const grpcServer = await startGrpcServer({ listen: LISTEN, service: stub, config: { ...GRPC_CONFIG, ...config }, logger, scheduler: sched });
    const httpFace = await startHttpFace({ listen: LISTEN, service: stub, config: { ...HTTP_CONFIG, ...config }, logger, scheduler: sched });
    try {
      assert.deepEqual(await grpcCheck(grpcServer.port, grpcTls(ca)), { code: 0, details: 'ok' });
      assert.equal((await httpsCheck(httpFace.port, ca)).servedCn, 'gate-a');
      copyFileSync(gateB.key, files.key);
      copyFileSync(gateB.cert, files.cert);
      await until(sched, 'both faces serve gate-b', async () => {
        const grpcCn = (await servedCertificate(grpcServer.port, ca, ['h2'])).subject.CN;
        const httpCn = (await servedCertificate(httpFace.port, ca, undefined)).subject.CN;
        return grpcCn === 'gate-b' && httpCn === 'gate-b';
      });
      assert.deepEqual(await grpcCheck(grpcServer.port, grpcTls(ca)), { code: 0, details: 'ok' });
      assert.ok(logger.lines.some((l) => l.level === 'info' && l.msg === 'TLS certificate reloaded'));
    } finally {
      await Promise.all([grpcServer.close(0), httpFace.close(0)]);
    }
  });

  describe('the gate with TLS settings', () => {
    let h: Harness | undefined;
    after(async () => h?.close());

    it('serves both faces over mutual TLS, keeps admin on plain HTTP and exports the certificate expiry', async () => {
      h = await startHarness(
        { pods: 1, plugins: [{ id: 'a/one', launchMs: 0 }] },
        { 'tls-cert': gateA.cert, 'tls-key': gateA.key, 'tls-client-ca': ca.cert },
      );
      await h.gate.whenReady();
      await h.poll();
      const good = { cert: envoy.certPem, key: envoy.keyPem };

      const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
      const hc = new Health(`127.0.0.1:${h.gate.grpcPort}`, grpcTls(ca, good), CHANNEL_OPTIONS) as any;
      try {
        const status = await new Promise<string>((resolve) =>
          hc.check({ service: '' }, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err: grpc.ServiceError | null, res: any) =>
            resolve(err ? `error:${err.code}` : res.status),
          ),
        );
        assert.equal(status, 'SERVING');
      } finally {
        hc.close();
      }
      assert.equal((await grpcCheck(h.gate.grpcPort, grpcTls(ca))).code, grpc.status.UNAVAILABLE);
      assert.equal((await httpsCheck(h.gate.httpPort!, ca, good)).servedCn, 'gate-a');

      const metrics = await (await fetch(`http://127.0.0.1:${h.gate.adminPort}/metrics`)).text();
      const m = /^plugin_gate_tls_cert_expiry_seconds (\d+)$/m.exec(metrics);
      assert.ok(m, 'expiry gauge exported');
      const notAfter = Date.parse(new X509Certificate(gateA.certPem).validTo) / 1000;
      assert.equal(Number(m[1]), notAfter);
    });
  });

  it('plugin-gate --check-config reports an unusable TLS file as a config error (exit 2)', () => {
    const bad = pki.path('not-a-cert.pem');
    writeFileSync(bad, 'hello\n');
    const main = join(packageRoot(), 'dist/src/cli/main.js');
    const r = spawnSync(process.execPath, [main, '--check-config', '--targets', '10.0.0.1:5002', '--tls-cert', bad, '--tls-key', gateA.key], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^plugin-gate: config: tls-cert: ".*not-a-cert\.pem" holds no PEM certificate/m);

    const ok = spawnSync(process.execPath, [main, '--check-config', '--targets', '10.0.0.1:5002', '--tls-cert', gateA.cert, '--tls-key', gateA.key], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(ok.status, 0, ok.stderr);
  });
});
