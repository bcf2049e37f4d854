import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { GateError } from '../core/errors.js';
import { TlsSource, type TlsLogger } from './tls.js';
import { MAX_PEM_BYTES, tlsFileProblems, type TlsFiles } from '../tls/files.js';
import { TestPki, type CertFiles } from '../../test/support/certs.js';

interface Line {
  level: 'info' | 'warn';
  obj: any;
  msg: string;
}

function captureLogger(): TlsLogger & { lines: Line[] } {
  const lines: Line[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
  };
}

/** A day is far more than any test runs: the timer never fires, reloads are driven by hand. */
const MANUAL = 86_400_000;

describe('TLS material', () => {
  let pki: TestPki;
  let ca: CertFiles;
  let a: CertFiles;
  let b: CertFiles;

  before(() => {
    pki = new TestPki('pg-tls-spec-');
    ca = pki.ca('spec-ca');
    a = pki.leaf('gate-a', ca, 'server');
    b = pki.leaf('gate-b', ca, 'server');
  });
  after(() => pki.remove());

  /** Served paths holding a copy of `from`, so a test can rotate them. */
  function served(name: string, from: CertFiles, clientCa?: string): TlsFiles {
    const cert = pki.path(`${name}.served.crt`);
    const key = pki.path(`${name}.served.key`);
    copyFileSync(from.cert, cert);
    copyFileSync(from.key, key);
    return { cert, key, clientCa };
  }

  it('describes the served certificate without key material', () => {
    const log = captureLogger();
    const files = served('describe', a, ca.cert);
    const src = TlsSource.open(files, { reloadMs: MANUAL, logger: log });
    try {
      const info = src.material.info;
      assert.equal(info.subject, 'CN=gate-a');
      assert.equal(info.issuer, 'CN=spec-ca');
      assert.equal(info.chainLength, 1);
      assert.equal(info.clientCas, 1);
      assert.ok(info.notAfterMs > Date.now() && info.notAfterMs < Date.now() + 3 * 86_400_000, info.notAfter);
      assert.equal(new Date(info.notAfter).getTime(), info.notAfterMs);
      assert.equal(src.mutual, true);
      assert.deepEqual(log.lines.map((l) => [l.level, l.msg]), [['info', 'TLS on the gRPC and HTTP faces']]);
      assert.equal(log.lines[0]!.obj.subject, 'CN=gate-a');
      assertNoKeyMaterial(log.lines, a);
    } finally {
      src.close();
    }
  });

  it('accepts a chain (leaf first, then its CA) and a multi-CA client bundle', () => {
    const chain = pki.path('chain.crt');
    writeFileSync(chain, Buffer.concat([a.certPem, ca.certPem]));
    const bundle = pki.path('bundle.crt');
    writeFileSync(bundle, Buffer.concat([ca.certPem, pki.ca('spec-ca-2').certPem]));
    const src = TlsSource.open({ cert: chain, key: a.key, clientCa: bundle }, { reloadMs: MANUAL });
    src.close();
    assert.equal(src.material.info.chainLength, 2);
    assert.equal(src.material.info.clientCas, 2);
  });

  it('names what is wrong with a file that is not usable', () => {
    const write = (name: string, data: string | Buffer): string => {
      const p = pki.path(name);
      writeFileSync(p, data);
      return p;
    };
    const pem = a.certPem.toString();
    const cases: [TlsFiles, RegExp][] = [
      [{ cert: write('half.crt', pem.slice(0, pem.length / 2)), key: a.key, clientCa: undefined }, /^tls-cert: ".*half\.crt" has an unterminated PEM certificate/],
      [{ cert: write('der.crt', readFileSync(a.cert).subarray(30)), key: a.key, clientCa: undefined }, /^tls-cert: ".*der\.crt" holds no PEM certificate/],
      [
        { cert: write('garbled.crt', pem.replace(/\n[A-Za-z0-9+/]{20}/, '\n' + '!'.repeat(20))), key: a.key, clientCa: undefined },
        /^tls-cert: ".*garbled\.crt" certificate #1 does not parse: /,
      ],
      [{ cert: a.cert, key: write('nokey.key', 'hello\n'), clientCa: undefined }, /^tls-key: ".*nokey\.key" holds no PEM private key/],
      [{ cert: a.cert, key: write('big.key', Buffer.alloc(MAX_PEM_BYTES + 1, 0x41)), clientCa: undefined }, /^tls-key: ".*big\.key" is larger than/],
      [{ cert: a.cert, key: pki.dir, clientCa: undefined }, /^tls-key: ".*" cannot be read: not a regular file/],
      [{ cert: a.cert, key: a.key, clientCa: write('empty-ca.crt', '') }, /^tls-client-ca: ".*empty-ca\.crt" holds no PEM certificate/],
    ];
    for (const [files, want] of cases) {
      const p = tlsFileProblems(files);
      assert.equal(p.length, 1, p.join('\n'));
      assert.match(p[0]!, want);
      assert.ok(!p[0]!.includes('\n'));
    }
  });

  it('refuses an encrypted key (the gate has no passphrase to open it)', () => {
    const enc = pki.path('enc.key');
    execFileSync('openssl', ['pkcs8', '-topk8', '-in', a.key, '-out', enc, '-passout', 'pass:secret'], { stdio: 'ignore', timeout: 10_000 });
    assert.match(tlsFileProblems({ cert: a.cert, key: enc, clientCa: undefined })[0]!, /^tls-key: ".*enc\.key" is an encrypted private key/);
  });

  it('open() throws config_invalid listing the problems', () => {
    assert.throws(
      () => TlsSource.open({ cert: a.cert, key: b.key, clientCa: undefined }, { reloadMs: MANUAL }),
      (err: unknown) => err instanceof GateError && err.code === 'config_invalid' && /^tls-key: .* does not match the certificate in tls-cert/.test(err.message),
    );
  });

  it('reload: unchanged files cost nothing; a valid new set replaces the material and is announced', async () => {
    const log = captureLogger();
    const files = served('rotate', a);
    const src = TlsSource.open(files, { reloadMs: MANUAL, logger: log });
    try {
      const seen: string[] = [];
      src.onChange((m) => seen.push(m.info.subject));
      assert.equal(await src.reload(), 'unchanged');
      assert.equal(log.lines.length, 1);

      copyFileSync(b.cert, files.cert);
      copyFileSync(b.key, files.key);
      assert.equal(await src.reload(), 'reloaded');
      assert.equal(src.material.info.subject, 'CN=gate-b');
      assert.notEqual(src.material.info.serial, '');
      assert.deepEqual(seen, ['CN=gate-b']);
      const last = log.lines.at(-1)!;
      assert.equal(last.level, 'info');
      assert.equal(last.msg, 'TLS certificate reloaded');
      assert.equal(last.obj.subject, 'CN=gate-b');
      assert.equal(last.obj.not_after, src.material.info.notAfter);
      assertNoKeyMaterial(log.lines, a);
      assertNoKeyMaterial(log.lines, b);
    } finally {
      src.close();
    }
  });

  it('reload: a broken or mismatched set keeps the old material and warns once per distinct content', async () => {
    const log = captureLogger();
    const files = served('broken', a);
    const src = TlsSource.open(files, { reloadMs: MANUAL, logger: log });
    try {
      const before = src.material;
      let changes = 0;
      src.onChange(() => changes++);

      // Half-written certificate.
      writeFileSync(files.cert, b.certPem.subarray(0, 200));
      assert.equal(await src.reload(), 'rejected');
      assert.equal(src.material, before);
      assert.equal(await src.reload(), 'unchanged', 'the same broken content is not reported again');
      // Certificate rotated, key not yet: mismatch.
      copyFileSync(b.cert, files.cert);
      assert.equal(await src.reload(), 'rejected');
      // Key truncated to nothing (the writer has opened it, not yet written).
      writeFileSync(files.key, '');
      assert.equal(await src.reload(), 'rejected');
      assert.equal(src.material, before);
      assert.equal(changes, 0);

      const warns = log.lines.filter((l) => l.level === 'warn');
      assert.equal(warns.length, 3);
      assert.match(warns[0]!.obj.problems[0], /^tls-cert: .* unterminated PEM certificate/);
      assert.match(warns[1]!.obj.problems[0], /^tls-key: .* does not match the certificate in tls-cert/);
      assert.match(warns[2]!.obj.problems[0], /^tls-key: .* holds no PEM private key/);
      for (const w of warns) assert.equal(w.obj.serving.subject, 'CN=gate-a');

      copyFileSync(b.key, files.key);
      assert.equal(await src.reload(), 'reloaded');
      assert.equal(src.material.info.subject, 'CN=gate-b');
      assert.equal(changes, 1);
    } finally {
      src.close();
    }
  });

  it("a missing file (a Secret's symlinks being swapped) is a rejected reload, not a crash", async () => {
    const log = captureLogger();
    const dir = pki.path('gone');
    mkdirSync(dir);
    const files: TlsFiles = { cert: `${dir}/tls.crt`, key: `${dir}/tls.key`, clientCa: undefined };
    copyFileSync(a.cert, files.cert);
    copyFileSync(a.key, files.key);
    const src = TlsSource.open(files, { reloadMs: MANUAL, logger: log });
    try {
      rmSync(files.cert);
      assert.equal(await src.reload(), 'rejected');
      assert.match(log.lines.at(-1)!.obj.problems[0], /^tls-cert: .* cannot be read: ENOENT/);
      assert.equal(src.material.info.subject, 'CN=gate-a');
    } finally {
      src.close();
    }
  });

  it('concurrent reloads share one read', async () => {
    const files = served('concurrent', a);
    const src = TlsSource.open(files, { reloadMs: MANUAL });
    try {
      copyFileSync(b.cert, files.cert);
      copyFileSync(b.key, files.key);
      const [x, y] = [src.reload(), src.reload()];
      assert.equal(x, y);
      assert.equal(await x, 'reloaded');
    } finally {
      src.close();
    }
  });

  it('as a grpc-js certificate provider: first update on a later tick, then every reload', async () => {
    const files = served('provider', a, ca.cert);
    const src = TlsSource.open(files, { reloadMs: MANUAL });
    try {
      const identities: string[] = [];
      const cas: (Buffer | undefined)[] = [];
      const onIdentity = (u: { certificate: Buffer } | null): void => {
        identities.push(u === null ? 'null' : u.certificate.toString());
      };
      src.addIdentityCertificateListener(onIdentity);
      src.addCaCertificateListener((u) => cas.push(u?.caCertificate));
      // grpc-js registers its own watcher only after subscribing: a synchronous
      // first update would be lost.
      assert.deepEqual(identities, []);
      await new Promise((r) => process.nextTick(r));
      assert.deepEqual(identities, [a.certPem.toString()]);
      assert.deepEqual(cas, [ca.certPem]);

      copyFileSync(b.cert, files.cert);
      copyFileSync(b.key, files.key);
      assert.equal(await src.reload(), 'reloaded');
      assert.deepEqual(identities, [a.certPem.toString(), b.certPem.toString()]);
      assert.equal(cas.length, 2);

      src.removeIdentityCertificateListener(onIdentity);
      copyFileSync(a.cert, files.cert);
      copyFileSync(a.key, files.key);
      assert.equal(await src.reload(), 'reloaded');
      assert.equal(identities.length, 2);
    } finally {
      src.close();
    }
  });
});

function assertNoKeyMaterial(lines: readonly Line[], c: CertFiles): void {
  const text = JSON.stringify(lines);
  assert.ok(!text.includes('PRIVATE KEY'));
  const body = c.keyPem.toString().split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
  for (const l of body) assert.ok(!text.includes(l), 'key material in the log');
}
