/**
 * Throwaway PKI for TLS tests, made at test time with the openssl CLI (EC P-256
 * keys: a handful of certificates costs tens of milliseconds). Nothing here is
 * ever used outside a temporary directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
  /** The PEM texts, for clients built in memory. */
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
}

const OPENSSL_TIMEOUT_MS = 10_000;

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: OPENSSL_TIMEOUT_MS });
}

export class TestPki {
  readonly dir: string;
  private serial = 1000;

  constructor(prefix = 'pg-tls-') {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
  }

  /** A self-signed CA; `name` names its files and its CN. */
  ca(name: string): CertFiles {
    const cert = join(this.dir, `${name}.crt`);
    const key = join(this.dir, `${name}.key`);
    openssl(
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      ],
      this.dir,
    );
    return files(cert, key);
  }

  /**
   * A leaf signed by `ca`: a server certificate for 127.0.0.1 and localhost,
   * or a client certificate. Each gets a distinct serial.
   */
  leaf(name: string, ca: CertFiles, usage: 'server' | 'client'): CertFiles {
    const cert = join(this.dir, `${name}.crt`);
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const ext = join(this.dir, `${name}.ext`);
    writeFileSync(
      ext,
      usage === 'server'
        ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n'
        : 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n',
    );
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], this.dir);
    openssl(
      ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(++this.serial), '-days', '2', '-extfile', ext, '-out', cert],
      this.dir,
    );
    return files(cert, key);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function files(cert: string, key: string): CertFiles {
  return { cert, key, certPem: readFileSync(cert), keyPem: readFileSync(key) };
}
