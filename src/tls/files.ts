/**
 * The TLS files of the gRPC and HTTP faces: reading and checking the PEM
 * material once. Configuration validation (--check-config) and the reloading
 * source in src/front/tls.ts both use it, so a file is judged the same way at
 * start-up and at every reload.
 */
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/** Option keys, named in every problem line. */
export const KEY = { cert: 'tls-cert', key: 'tls-key', clientCa: 'tls-client-ca' } as const;

/** A PEM bundle is a few KiB; anything past this is not one and is not read. */
export const MAX_PEM_BYTES = 1024 * 1024;


export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  /** Set: clients must present a certificate signed by one of these CAs. */
  readonly clientCa: string | undefined;
}

/** The tls-* options as the configuration holds them (a Config is one). */
export interface TlsConfig {
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  readonly tlsClientCa?: string | undefined;
  readonly tlsReloadMs?: number | undefined;
}

/** What a certificate is, for logs and metrics: never key material. */
export interface CertInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly notAfter: string;
  /** notAfter as epoch milliseconds. */
  readonly notAfterMs: number;
  readonly fingerprint256: string;
  /** Certificates in the tls-cert chain (leaf first). */
  readonly chainLength: number;
  /** CA certificates in tls-client-ca; 0 without mutual TLS. */
  readonly clientCas: number;
}

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer | undefined;
  readonly info: CertInfo;
}

/** The files as read: bytes, or why they could not be. */
export type FileRead = { readonly ok: true; readonly bytes: Buffer } | { readonly ok: false; readonly why: string };

export interface FilesRead {
  readonly cert: FileRead;
  readonly key: FileRead;
  readonly clientCa: FileRead | undefined;
}

export function tlsFilesOf(config: TlsConfig): TlsFiles | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined;
  return { cert: config.tlsCert, key: config.tlsKey, clientCa: config.tlsClientCa };
}


/** Node's options for a TLS context serving this material. */
export function secureContextOptions(m: TlsMaterial): SecureContextOptions {
  return m.clientCa === undefined ? { cert: m.cert, key: m.key } : { cert: m.cert, key: m.key, ca: m.clientCa };
}

// ------------------------------------------------------------------ checking

/**
 * Checks the bytes of the three files: one problem line per fault, naming the
 * option key and the path. Pure apart from OpenSSL's own parsing.
 */
export function parseTlsMaterial(files: TlsFiles, read: FilesRead): { material: TlsMaterial } | { problems: string[] } {
  const problems: string[] = [];
  const where = (k: keyof typeof KEY, path: string): string => `${KEY[k]}: ${JSON.stringify(path)}`;

  let chain: X509Certificate[] | undefined;
  if (read.cert.ok) chain = certificates(where('cert', files.cert), read.cert.bytes, problems);
  else problems.push(`${where('cert', files.cert)} ${read.cert.why}`);

  let key: KeyObject | undefined;
  if (read.key.ok) key = privateKey(where('key', files.key), read.key.bytes, problems);
  else problems.push(`${where('key', files.key)} ${read.key.why}`);

  let cas: X509Certificate[] | undefined;
  if (read.clientCa !== undefined && files.clientCa !== undefined) {
    if (read.clientCa.ok) cas = certificates(where('clientCa', files.clientCa), read.clientCa.bytes, problems);
    else problems.push(`${where('clientCa', files.clientCa)} ${read.clientCa.why}`);
  }

  const leaf = chain?.[0];
  if (leaf !== undefined && key !== undefined && !leaf.checkPrivateKey(key)) {
    problems.push(`${where('key', files.key)} does not match the certificate in tls-cert (${JSON.stringify(files.cert)})`);
  }
  if (problems.length > 0 || leaf === undefined || chain === undefined || !read.cert.ok || !read.key.ok) return { problems };

  const clientCa = read.clientCa?.ok === true ? read.clientCa.bytes : undefined;
  const material: TlsMaterial = {
    cert: read.cert.bytes,
    key: read.key.bytes,
    clientCa,
    info: {
      subject: oneLine(leaf.subject),
      issuer: oneLine(leaf.issuer),
      serial: leaf.serialNumber,
      notAfter: new Date(Date.parse(leaf.validTo)).toISOString(),
      notAfterMs: Date.parse(leaf.validTo),
      fingerprint256: leaf.fingerprint256,
      chainLength: chain.length,
      clientCas: cas?.length ?? 0,
    },
  };
  // The last word is OpenSSL's: what it refuses here, setSecureContext would
  // refuse on a live server (grpc-js then drops every new connection).
  try {
    createSecureContext(secureContextOptions(material));
  } catch (err) {
    return { problems: [`${where('cert', files.cert)} is refused by TLS with its key: ${message(err)}`] };
  }
  return { material };
}

const CERT_BEGIN = '-----BEGIN CERTIFICATE-----';
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function certificates(where: string, bytes: Buffer, problems: string[]): X509Certificate[] | undefined {
  const text = bytes.toString('latin1');
  const begins = text.split(CERT_BEGIN).length - 1;
  const blocks = text.match(CERT_BLOCK) ?? [];
  if (begins === 0) {
    problems.push(`${where} holds no PEM certificate (${CERT_BEGIN})`);
    return undefined;
  }
  if (blocks.length !== begins) {
    problems.push(`${where} has an unterminated PEM certificate (a file still being written?)`);
    return undefined;
  }
  const out: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      out.push(new X509Certificate(block));
    } catch (err) {
      problems.push(`${where} certificate #${i + 1} does not parse: ${message(err)}`);
      return undefined;
    }
  }
  return out;
}

function privateKey(where: string, bytes: Buffer, problems: string[]): KeyObject | undefined {
  const text = bytes.toString('latin1');
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    problems.push(`${where} is an encrypted private key; the gate needs it unencrypted`);
    return undefined;
  }
  if (!/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(text)) {
    problems.push(`${where} holds no PEM private key (-----BEGIN PRIVATE KEY-----)`);
    return undefined;
  }
  try {
    return createPrivateKey({ key: bytes, format: 'pem' });
  } catch (err) {
    problems.push(`${where} does not parse as a private key: ${message(err)}`);
    return undefined;
  }
}

export function oneLine(dn: string): string {
  return dn.split('\n').filter((p) => p !== '').join(', ');
}

export function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
}

function readWhy(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return `cannot be read: ${code ?? message(err)}`;
}

function readSync(path: string): FileRead {
  try {
    const st = statSync(path);
    if (!st.isFile()) return { ok: false, why: 'cannot be read: not a regular file' };
    if (st.size > MAX_PEM_BYTES) return { ok: false, why: `is larger than ${MAX_PEM_BYTES} bytes: not a PEM bundle` };
    return { ok: true, bytes: readFileSync(path) };
  } catch (err) {
    return { ok: false, why: readWhy(err) };
  }
}

async function readAsync(path: string, timeoutMs: number): Promise<FileRead> {
  try {
    const st = await stat(path);
    if (!st.isFile()) return { ok: false, why: 'cannot be read: not a regular file' };
    if (st.size > MAX_PEM_BYTES) return { ok: false, why: `is larger than ${MAX_PEM_BYTES} bytes: not a PEM bundle` };
    return { ok: true, bytes: await readFile(path, { signal: AbortSignal.timeout(timeoutMs) }) };
  } catch (err) {
    return { ok: false, why: readWhy(err) };
  }
}

export function readFilesSync(files: TlsFiles): FilesRead {
  return { cert: readSync(files.cert), key: readSync(files.key), clientCa: files.clientCa === undefined ? undefined : readSync(files.clientCa) };
}

export async function readFilesAsync(files: TlsFiles, timeoutMs: number): Promise<FilesRead> {
  const [cert, key, clientCa] = await Promise.all([
    readAsync(files.cert, timeoutMs),
    readAsync(files.key, timeoutMs),
    files.clientCa === undefined ? undefined : readAsync(files.clientCa, timeoutMs),
  ]);
  return { cert, key, clientCa };
}

/** Identifies what was read, so unchanged files cost nothing and a broken set is reported once. */
export function fingerprint(read: FilesRead): string {
  const h = createHash('sha256');
  for (const r of [read.cert, read.key, read.clientCa]) {
    if (r === undefined) h.update('-');
    else if (r.ok) h.update('+').update(r.bytes);
    else h.update('!').update(r.why);
    h.update('\0');
  }
  return h.digest('hex');
}

/** Start-up check of the files (plugin-gate --check-config): one line per problem, [] when usable. */
export function tlsFileProblems(files: TlsFiles): string[] {
  const r = parseTlsMaterial(files, readFilesSync(files));
  return 'problems' in r ? r.problems : [];
}
