/**
 * The real `plugin-gate` command as a child process, for tests about the
 * process itself (signals, stdout, exit): ports found free just before, stdout
 * and stderr collected unless the test wants stdout left unread.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../../src/core/package-root.js';

export const MAIN = join(packageRoot(), 'dist/src/cli/main.js');

/** A loopback port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  const port = typeof a === 'object' && a !== null ? a.port : 0;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface GateProcess {
  readonly child: ChildProcess;
  readonly adminPort: number;
  readonly httpPort: number;
  /** Everything written so far (stdout empty when left unread). */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Is the process still running? */
  alive(): boolean;
  kill(): void;
}

export interface GateProcessOptions {
  /** Extra flags after the defaults (targets, loopback ports). */
  readonly args?: readonly string[];
  /** Node options before the script (e.g. --inspect-port=0). */
  readonly nodeArgs?: readonly string[];
  /** Leave stdout unread: the pipe fills and blocks the writer, as `| sleep 100` would. */
  readonly blockStdout?: boolean;
}

export async function startGateProcess(opts: GateProcessOptions = {}): Promise<GateProcess> {
  const adminPort = await freePort();
  const httpPort = await freePort();
  const args = [
    ...(opts.nodeArgs ?? []),
    MAIN,
    '--targets', '127.0.0.1:9',
    '--admin-listen', `127.0.0.1:${adminPort}`,
    '--grpc-listen', '127.0.0.1:0',
    '--http-listen', `127.0.0.1:${httpPort}`,
    '--poll-timeout', '200ms',
    ...(opts.args ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '' } });
  let out = '';
  let err = '';
  if (opts.blockStdout === true) child.stdout!.pause();
  else child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running = false;
      resolve({ code, signal });
    }),
  );
  const gp: GateProcess = {
    child,
    adminPort,
    httpPort,
    stdout: () => out,
    stderr: () => err,
    exited,
    alive: () => running,
    kill: () => {
      if (running) child.kill('SIGKILL');
    },
  };
  const deadline = Date.now() + 15_000;
  let ready = 0;
  while (running && Date.now() < deadline && ready !== 200) {
    ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0);
    if (ready !== 200) await new Promise((r) => setTimeout(r, 50));
  }
  if (ready !== 200) {
    gp.kill();
    throw new Error(`gate not ready (exit ${running ? 'none' : 'early'}); stderr: ${err}`);
  }
  return gp;
}

/** Resolves true once `check` holds, false after `ms` (real time; generous bounds only). */
export async function within(ms: number, check: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/** The value of an unlabelled series in a Prometheus text page. */
export function metricValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}
