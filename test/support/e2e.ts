/**
 * Shared pieces of the end-to-end tests (test/e2e): the gate and a simulated
 * fleet on one ManualScheduler, as in `gate.ts`, but with a logger of the
 * test's choosing (the decision log is under test there), plus small lookups.
 */
import { spawn } from 'node:child_process';
import type { DestinationStream } from 'pino';
import type { RawValues } from '../../src/config/config.js';
import type { Logger } from '../../src/observe/logger.js';
import type { SimFleet, SimFleetOptions } from '../../src/sim/fleet.js';
import { startHarness, type Harness } from './gate.js';

export interface E2eOptions {
  /** Default: silent. */
  readonly logger?: Logger;
  /** Runs after the fleet listens and before the gate starts (e.g. make a pod hang). */
  readonly beforeGate?: (fleet: SimFleet) => Promise<void> | void;
}

export function startE2e(fleetOpts: Omit<SimFleetOptions, 'scheduler'>, flags: RawValues = {}, opts: E2eOptions = {}): Promise<Harness> {
  return startHarness(fleetOpts, flags, opts.beforeGate, opts.logger);
}

/** Pod name (`pod-2`) for an `IP:port` the gate answered. */
export function podName(h: Harness, address: string | undefined): string {
  const pod = h.fleet.pods.find((p) => p.address === address);
  return pod === undefined ? `not-a-pod(${String(address)})` : pod.name;
}

/** A pino destination that keeps every line in memory. */
export class MemoryLog implements DestinationStream {
  private readonly chunks: string[] = [];
  write(msg: string): void {
    this.chunks.push(msg);
  }
  text(): string {
    return this.chunks.join('');
  }
  /** Every line parsed as JSON (pino writes one object per line). */
  records(): Record<string, unknown>[] {
    return this.text()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface ProcessResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * Runs a program to completion without blocking the event loop (the gate under
 * test lives in this process and must keep answering), feeding `input` on
 * stdin. Killed with SIGKILL after `timeoutMs`: never outlives the test.
 */
export function runProcess(
  file: string,
  args: readonly string[],
  opts: { input?: string; timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout: '', stderr: String(e), timedOut: false });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
    child.stdin.end(opts.input ?? '');
  });
}
