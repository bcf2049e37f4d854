/**
 * A real nginx (Debian's nginx-light) for end-to-end tests: renders
 * deploy/nginx/nginx-e2e.conf.template into a temporary prefix, runs nginx in
 * the foreground on a loopback port, and always stops it (SIGQUIT, then
 * SIGKILL for the master and its workers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/core/package-root.js';

export const NGINX_BIN = '/usr/sbin/nginx';
export const NGINX_TEMPLATE = join(packageRoot(), 'deploy', 'nginx', 'nginx-e2e.conf.template');

export interface NginxVars {
  /** host:port of the gate's HTTP forward-auth face. */
  readonly gate: string;
  /** host:port of any daemon pod. */
  readonly daemon: string;
}

/** The template with every placeholder replaced; throws on one it does not know. */
export function renderTemplate(template: string, values: Record<string, string>): string {
  const out = template.replace(/\{\{([A-Z_]+)\}\}/g, (whole, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`nginx template: unknown placeholder ${whole}`);
    return v;
  });
  if (out.includes('{{')) throw new Error('nginx template: a placeholder is left after rendering');
  return out;
}

/** A loopback port free right now (nginx cannot report an ephemeral one back, so one is picked first). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setTimeout(500, () => sock.destroy());
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
    sock.once('close', () => resolve(false));
  });
}

/** Child processes of `pid` (nginx workers), read from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export class Nginx {
  readonly prefix: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stderr = '';
  port = 0;

  constructor(private readonly vars: NginxVars) {
    this.prefix = mkdtempSync(join(tmpdir(), 'pg-nginx-'));
  }

  /** `127.0.0.1:port` nginx listens on. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** What nginx wrote to stderr (its error log) so far. */
  log(): string {
    return this.stderr;
  }

  /** The access log lines (JSON, the template's `plugin_gate` format). */
  accessLog(): Record<string, string>[] {
    const file = join(this.prefix, 'access.log');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, string>);
  }

  /** Starts nginx and waits until it accepts connections; a lost race for the port is retried. */
  async start(): Promise<void> {
    const template = readFileSync(NGINX_TEMPLATE, 'utf8');
    let lastError = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      const conf = renderTemplate(template, {
        LISTEN: this.address,
        GATE: this.vars.gate,
        DAEMON: this.vars.daemon,
        PREFIX: this.prefix,
      });
      writeFileSync(join(this.prefix, 'nginx.conf'), conf);
      this.stderr = '';
      const child = spawn(NGINX_BIN, ['-p', this.prefix, '-c', join(this.prefix, 'nginx.conf'), '-e', 'stderr'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      this.child = child;
      let gone = false;
      this.exited = new Promise((resolve) => {
        child.once('exit', () => {
          gone = true;
          resolve();
        });
        child.once('error', (e) => {
          this.stderr += String(e);
          gone = true;
          resolve();
        });
      });
      child.stderr!.on('data', (c: Buffer) => {
        this.stderr += c.toString('utf8');
      });
      const deadline = Date.now() + 5_000;
      while (!gone && Date.now() < deadline) {
        if (await canConnect(this.port)) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      lastError = this.stderr;
      await this.stop();
      if (!/Address already in use/.test(lastError)) break;
    }
    throw new Error(`nginx did not start: ${lastError.trim() || 'no output'}`);
  }

  /** Graceful stop (SIGQUIT), then SIGKILL for the master and its workers after 3 s. Idempotent. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.pid === undefined) return;
    const pid = child.pid;
    if (child.exitCode === null && child.signalCode === null) {
      const workers = childrenOf(pid);
      child.kill('SIGQUIT');
      const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3_000).unref())]);
      if (!done) {
        for (const w of [...workers, ...childrenOf(pid)]) {
          try {
            process.kill(w, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        child.kill('SIGKILL');
        await this.exited;
      }
    }
  }

  /** Stops nginx and removes its prefix. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.prefix, { recursive: true, force: true });
  }
}
