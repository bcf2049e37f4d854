/**
 * Where the Kubernetes API is and how to authenticate to it, for
 * `discovery=kubernetes`: in a pod, the service account (token, CA, namespace
 * files and KUBERNETES_SERVICE_HOST/PORT); outside, a kubeconfig. Read once at
 * start-up, so configuration validation (--check-config) reports an unusable
 * file like any bad value; only the token is read again, before every request,
 * because the kubelet rotates it in place (a bound token lives about an hour).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';

/** Where the kubelet mounts the service account in every pod that has one. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A token, a CA bundle, a namespace or a kubeconfig is a few KiB; nothing larger is read. */
const MAX_FILE_BYTES = 1024 * 1024;

export interface KubeCredentials {
  /** `https://host:port` of the API server, no trailing slash. */
  readonly server: string;
  /** PEM CA bundle the server's certificate must chain to; undefined = the system CAs. */
  readonly ca: Buffer | undefined;
  /** kubeconfig `insecure-skip-tls-verify`. */
  readonly insecure: boolean;
  readonly clientCert: Buffer | undefined;
  readonly clientKey: Buffer | undefined;
  /** The bearer token for the next request; a token file is read again on every call (rotation). */
  token(): Promise<string | undefined>;
  /** The namespace the credentials imply (the pod's own, or the kubeconfig context's). */
  readonly namespace: string | undefined;
  /** For logs: `in-cluster` or `kubeconfig PATH (context NAME)`; never secret material. */
  readonly describe: string;
}

export interface CredentialInput {
  /** The `kubeconfig` option; unset = in-cluster. */
  readonly kubeconfig: string | undefined;
  readonly env: NodeJS.ProcessEnv;
  /** Tests point this at a directory of their own. */
  readonly serviceAccountDir?: string;
}

/** Thrown with one line per problem, each naming the option it concerns. */
export class CredentialError extends Error {
  override readonly name = 'CredentialError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

/** The credentials, or a CredentialError saying what is missing or unreadable. */
export function kubeCredentials(input: CredentialInput): KubeCredentials {
  return input.kubeconfig !== undefined ? fromKubeconfig(input.kubeconfig) : inCluster(input.env, input.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
}

/** Problem lines for configuration validation; empty when the credentials are usable. */
export function kubeCredentialProblems(input: CredentialInput): string[] {
  try {
    kubeCredentials(input);
    return [];
  } catch (err) {
    return err instanceof CredentialError ? [...err.problems] : [`discovery: kubernetes credentials: ${(err as Error).message}`];
  }
}

function inCluster(env: NodeJS.ProcessEnv, dir: string): KubeCredentials {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (host === undefined || host === '') {
    throw new CredentialError([
      'kubeconfig: (unset) is required with discovery=kubernetes outside a pod: KUBERNETES_SERVICE_HOST is not set, so there is no in-cluster API server',
    ]);
  }
  const problems: string[] = [];
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) problems.push(`discovery: KUBERNETES_SERVICE_PORT ${JSON.stringify(port)} is not a port number`);
  const tokenPath = join(dir, 'token');
  const caPath = join(dir, 'ca.crt');
  const ca = readSmall(caPath);
  if (!ca.ok) problems.push(`discovery: in-cluster CA ${caPath}: ${ca.why} (does the pod mount a service account token?)`);
  const token = readSmall(tokenPath);
  if (!token.ok) problems.push(`discovery: in-cluster token ${tokenPath}: ${token.why} (automountServiceAccountToken must not be false)`);
  if (problems.length > 0) throw new CredentialError(problems);
  const ns = readSmall(join(dir, 'namespace'));
  return {
    server: `https://${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
    ca: ca.ok ? ca.bytes : undefined,
    insecure: false,
    clientCert: undefined,
    clientKey: undefined,
    token: () => readToken(tokenPath),
    namespace: ns.ok ? ns.bytes.toString('utf8').trim() || undefined : undefined,
    describe: 'in-cluster',
  };
}

type Obj = Record<string, unknown>;

function fromKubeconfig(path: string): KubeCredentials {
  const key = 'kubeconfig';
  const file = readSmall(path);
  if (!file.ok) throw new CredentialError([`${key}: ${JSON.stringify(path)} cannot be read: ${file.why}`]);
  let doc: unknown;
  try {
    doc = parseYaml(file.bytes.toString('utf8'));
  } catch (err) {
    throw new CredentialError([`${key}: ${JSON.stringify(path)} is not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (!isObj(doc)) throw new CredentialError([`${key}: ${JSON.stringify(path)} is not a kubeconfig (a mapping with clusters, users and contexts)`]);
  const base = dirname(path);
  const contextName = str(doc['current-context']);
  if (contextName === undefined) throw new CredentialError([`${key}: ${JSON.stringify(path)} has no current-context`]);
  const context = named(doc['contexts'], contextName, 'context');
  if (context === undefined) throw new CredentialError([`${key}: ${JSON.stringify(path)}: current-context ${JSON.stringify(contextName)} is not among its contexts`]);
  const clusterName = str(context['cluster']);
  const userName = str(context['user']);
  const cluster = clusterName === undefined ? undefined : named(doc['clusters'], clusterName, 'cluster');
  if (cluster === undefined) throw new CredentialError([`${key}: ${JSON.stringify(path)}: context ${JSON.stringify(contextName)} names no cluster of the file`]);
  const user = userName === undefined ? {} : (named(doc['users'], userName, 'user') ?? {});
  const problems: string[] = [];
  const where = `${key}: ${JSON.stringify(path)} context ${JSON.stringify(contextName)}`;

  const server = str(cluster['server'])?.replace(/\/+$/, '');
  if (server === undefined || !/^https:\/\/[^/]+$/.test(server)) {
    problems.push(`${where}: cluster server ${JSON.stringify(server ?? null)} must be an https://host:port URL (no path)`);
  }
  const material = (dataKey: string, fileKey: string, owner: Obj): Buffer | undefined => {
    const data = str(owner[dataKey]);
    if (data !== undefined) return Buffer.from(data, 'base64');
    const f = str(owner[fileKey]);
    if (f === undefined) return undefined;
    const full = isAbsolute(f) ? f : join(base, f);
    const r = readSmall(full);
    if (!r.ok) problems.push(`${where}: ${fileKey} ${JSON.stringify(full)}: ${r.why}`);
    return r.ok ? r.bytes : undefined;
  };
  const ca = material('certificate-authority-data', 'certificate-authority', cluster);
  const clientCert = material('client-certificate-data', 'client-certificate', user);
  const clientKey = material('client-key-data', 'client-key', user);
  if ((clientCert === undefined) !== (clientKey === undefined)) problems.push(`${where}: a client certificate needs its key and a key its certificate`);
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    problems.push(`${where}: user ${JSON.stringify(userName)} authenticates through an exec or auth-provider plugin, which plugin-gate does not run; use a token, tokenFile or client certificate`);
  }
  const staticToken = str(user['token']);
  const tokenFileRaw = str(user['tokenFile']);
  const tokenFile = tokenFileRaw === undefined ? undefined : isAbsolute(tokenFileRaw) ? tokenFileRaw : join(base, tokenFileRaw);
  if (tokenFile !== undefined) {
    const r = readSmall(tokenFile);
    if (!r.ok) problems.push(`${where}: tokenFile ${JSON.stringify(tokenFile)}: ${r.why}`);
  }
  if (problems.length > 0) throw new CredentialError(problems);
  return {
    server: server!,
    ca,
    insecure: cluster['insecure-skip-tls-verify'] === true,
    clientCert,
    clientKey,
    token: tokenFile !== undefined ? () => readToken(tokenFile) : () => Promise.resolve(staticToken),
    namespace: str(context['namespace']),
    describe: `kubeconfig ${path} (context ${contextName})`,
  };
}

/** The token file as it is now; a rotated token is picked up by the next request. */
async function readToken(path: string): Promise<string | undefined> {
  const text = (await readFile(path, 'utf8')).trim();
  if (text.length > MAX_FILE_BYTES) throw new Error(`token file ${path} is larger than ${MAX_FILE_BYTES} bytes`);
  return text === '' ? undefined : text;
}

type Read = { readonly ok: true; readonly bytes: Buffer } | { readonly ok: false; readonly why: string };

function readSmall(path: string): Read {
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_FILE_BYTES) return { ok: false, why: `larger than ${MAX_FILE_BYTES} bytes` };
    return { ok: true, bytes };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return { ok: false, why: code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message };
  }
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** `contexts: [{name, context: {...}}]` → the inner mapping of the entry called `name`. */
function named(list: unknown, name: string, inner: string): Obj | undefined {
  if (!Array.isArray(list)) return undefined;
  for (const e of list) {
    if (isObj(e) && e['name'] === name) {
      const v = e[inner];
      return isObj(v) ? v : {};
    }
  }
  return undefined;
}
