/**
 * The gate as its own process (`node dist/src/cli/main.js`), for tests that
 * signal it (SIGSTOP, SIGTERM, SIGKILL) while Envoy keeps running: ports read
 * from its "plugin-gate listening" log line, its stdout kept (the decision log),
 * always killed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { packageRoot } from '../../src/core/package-root.js';

export const GATE_MAIN = join(packageRoot(), 'dist/src/cli/main.js');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class GateProcess {
  private out = '';
  private err = '';
  private readonly exitedP: Promise<void>;
  private gone = false;
  grpcPort = 0;
  adminPort = 0;
  httpPort: number | null = null;

  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (c: Buffer) => {
      this.out += c.toString('utf8');
    });
    child.stderr!.on('data', (c: Buffer) => {
      this.err = (this.err + c.toString('utf8')).slice(-16_000);
    });
    this.exitedP = new Promise((resolve) => {
      child.once('exit', () => {
        this.gone = true;
        resolve();
      });
    });
  }

  /**
   * Starts the gate with `args` (plus loopback listeners unless given) and
   * waits until it listens and, unless `waitReady` is false, until /readyz is 200.
   */
  static async start(args: readonly string[], opts: { waitReady?: boolean; timeoutMs?: number } = {}): Promise<GateProcess> {
    const has = (flag: string): boolean => args.includes(flag);
    const full = [
      GATE_MAIN,
      ...(has('--grpc-listen') ? [] : ['--grpc-listen', '127.0.0.1:0']),
      ...(has('--http-listen') ? [] : ['--http-listen', 'off']),
      ...(has('--admin-listen') ? [] : ['--admin-listen', '127.0.0.1:0']),
      ...(has('--log-level') ? [] : ['--log-level', 'info']),
      ...args,
    ];
    const child = spawn(process.execPath, full, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '' } });
    const g = new GateProcess(child);
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    try {
      for (;;) {
        const line = g.records().find((r) => r['msg'] === 'plugin-gate listening');
        if (line !== undefined) {
          g.grpcPort = Number(line['grpc']);
          g.adminPort = Number(line['admin']);
          g.httpPort = line['http'] === null ? null : Number(line['http']);
          break;
        }
        if (g.gone) throw new Error(`gate exited during start-up: ${g.err.trim()}`);
        if (Date.now() > deadline) throw new Error(`gate did not listen in time: ${g.err.trim()}`);
        await sleep(25);
      }
      if (opts.waitReady !== false) {
        while ((await g.admin('/readyz').catch(() => ({ status: 0, body: '' }))).status !== 200) {
          if (g.gone) throw new Error(`gate exited: ${g.err.trim()}`);
          if (Date.now() > deadline) throw new Error('gate not ready in time');
          await sleep(50);
        }
      }
    } catch (err) {
      await g.kill();
      throw err;
    }
    return g;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return !this.gone;
  }

  /** stdout lines that are JSON (pino), in order. */
  records(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.out.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // a line still being written
      }
    }
    return out;
  }

  stdout(): string {
    return this.out;
  }

  admin(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: this.adminPort, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(3_000, () => req.destroy(new Error(`admin ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  }

  /** Sum of plugin_gate_decisions_total over every label set, from /metrics. */
  async decisions(): Promise<number> {
    const body = (await this.admin('/metrics')).body;
    let sum = 0;
    for (const m of body.matchAll(/^plugin_gate_decisions_total\{[^}]*\} (\d+)$/gm)) sum += Number(m[1]);
    return sum;
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.gone) this.child.kill(sig);
  }

  /** Resolves when the process has exited, or false after `ms`. */
  async exited(ms: number): Promise<boolean> {
    return Promise.race([this.exitedP.then(() => true), sleep(ms).then(() => false)]);
  }

  /** SIGKILL (after SIGCONT, in case it is stopped) and wait. Idempotent. */
  async kill(): Promise<void> {
    if (this.gone) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await this.exitedP;
  }
}
