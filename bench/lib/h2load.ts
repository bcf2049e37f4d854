/**
 * h2load (nghttp2's C load generator) as the client of the wire benchmarks.
 * Its summary gives throughput and status counts; its per-request log
 * (`--log-file`: start µs, status, µs to end of response) gives the latency
 * percentiles, which the summary does not print.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { cpuSeconds, pinned, pinning, spawnChild } from './proc.js';
import { percentile } from './report.js';

export const H2LOAD = '/usr/bin/h2load';

export function h2loadVersion(): string | undefined {
  if (!existsSync(H2LOAD)) return undefined;
  try {
    return execFileSync(H2LOAD, ['--version'], { encoding: 'utf8', timeout: 5000 }).trim();
  } catch {
    return undefined;
  }
}

export interface H2Run {
  readonly url: string;
  readonly clients: number;
  /** Max concurrent streams per connection (HTTP/1.1: pipelined requests; keep 1). */
  readonly streams: number;
  /** Requests per second per client; undefined for closed loop (as fast as answers come back). */
  readonly rpsPerClient: number | undefined;
  readonly durationS: number;
  readonly warmupS: number;
  readonly headers: readonly string[];
  readonly dataFile?: string;
  readonly h1?: boolean;
  readonly logFile: string;
  /** A fixed number of requests instead of a timed run (durationS and warmupS are then ignored). */
  readonly requests?: number;
}

export interface H2Result {
  readonly command: string;
  readonly reqPerSec: number;
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly status: { readonly s2xx: number; readonly s3xx: number; readonly s4xx: number; readonly s5xx: number };
  /** From the per-request log, µs. */
  readonly latencyUs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly p999: number; readonly max: number; readonly n: number };
  /** Requests h2load started in the same millisecond: its pacing granularity. */
  readonly burst: { readonly median: number; readonly max: number };
  /** Rows of the log with a status other than the expected one (and other than 0 and -1). */
  readonly badRows: number;
  /**
   * Rows with status 0 or -1: requests in flight when the warm-up ended (logged
   * with status 0) or when the run stopped (-1). Reset streams also log -1;
   * h2load's summary counts those as failed, so errors are not lost.
   */
  readonly unfinished: number;
  readonly h2loadCpuS: number;
  readonly raw: string;
}

const num = (s: string | undefined): number => (s === undefined ? NaN : Number(s));

export function parseSummary(out: string): Omit<H2Result, 'latencyUs' | 'burst' | 'badRows' | 'unfinished' | 'h2loadCpuS' | 'command'> {
  const fin = out.match(/finished in [\d.]+m?s, ([\d.]+) req\/s/);
  const req = out.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/);
  const st = out.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/);
  if (!fin || !req || !st) throw new Error(`h2load output not understood:\n${out.slice(-1500)}`);
  return {
    reqPerSec: num(fin[1]),
    done: num(req[3]),
    succeeded: num(req[4]),
    failed: num(req[5]),
    errored: num(req[6]),
    timeout: num(req[7]),
    status: { s2xx: num(st[1]), s3xx: num(st[2]), s4xx: num(st[3]), s5xx: num(st[4]) },
    raw: out,
  };
}

export function parseLog(path: string, expectStatus = 200): Pick<H2Result, 'latencyUs' | 'burst' | 'badRows' | 'unfinished'> {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const lat: number[] = [];
  const perMs = new Map<number, number>();
  let bad = 0;
  let unfinished = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [start, status, us] = line.split('\t');
    const code = Number(status);
    if (code === -1 || code === 0) {
      unfinished++;
      continue;
    }
    if (code !== expectStatus) bad++;
    lat.push(Number(us));
    const k = Math.floor(Number(start) / 1000);
    perMs.set(k, (perMs.get(k) ?? 0) + 1);
  }
  const sorted = Float64Array.from(lat).sort();
  const bursts = Float64Array.from(perMs.values()).sort();
  return {
    latencyUs: {
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
      p999: percentile(sorted, 0.999),
      max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
      n: sorted.length,
    },
    burst: { median: percentile(bursts, 0.5), max: bursts.length === 0 ? NaN : bursts[bursts.length - 1]! },
    badRows: bad,
    unfinished,
  };
}

/**
 * How an open-loop run is paced. h2load's `--rps` timer ticks every
 * max(10 ms, 1/rps) per connection, from the moment the connection is made;
 * in timed mode (`-D`) every connection is made at once, so every connection
 * ticks in the same instant and the whole rate leaves in synchronised bursts
 * (100 connections at 10 req/s each: 100 requests every 100 ms). No real
 * client population does that, and the queue each burst builds shows up as
 * latency of whatever is measured. Open-loop runs therefore make their
 * connections at a fixed rate (`-r` per 1 ms `--rate-period`) spread over
 * one tick, so the ticks, and the requests, are spread evenly. h2load
 * forbids `-r` with `-D`, so such a run is a fixed number of requests
 * (rate × duration), after a separate warm-up run whose figures are dropped.
 */
export function staggerArgs(clients: number, rpsPerClient: number): string[] {
  const tickMs = Math.max(10, 1000 / rpsPerClient);
  return ['-r', String(Math.max(1, Math.ceil(clients / tickMs))), '--rate-period', '1ms'];
}

export async function runH2load(run: H2Run, expectStatus = 200): Promise<H2Result> {
  if (run.rpsPerClient !== undefined && run.requests === undefined) {
    // Open loop: warm up, then measure a fixed number of requests, both staggered (see staggerArgs).
    const perSecond = run.rpsPerClient * run.clients;
    if (run.warmupS > 0) await runH2load({ ...run, requests: Math.max(run.clients, Math.round(perSecond * run.warmupS)) }, expectStatus);
    return runH2load({ ...run, requests: Math.max(run.clients, Math.round(perSecond * run.durationS)) }, expectStatus);
  }
  rmSync(run.logFile, { force: true });
  const args = [
    '-c', String(run.clients),
    '-m', String(run.streams),
    ...(run.requests !== undefined ? ['-n', String(run.requests)] : ['-D', String(run.durationS), '--warm-up-time', String(run.warmupS)]),
    ...(run.requests !== undefined && run.rpsPerClient !== undefined ? staggerArgs(run.clients, run.rpsPerClient) : []),
    // A stalled connection must not hang the run.
    '-N', '30',
    `--log-file=${run.logFile}`,
  ];
  if (run.rpsPerClient !== undefined) args.push(`--rps=${run.rpsPerClient}`);
  if (run.h1 === true) args.push('--h1');
  if (run.dataFile !== undefined) args.push('-d', run.dataFile);
  for (const h of run.headers) args.push('-H', h);
  args.push(run.url);
  const [cmd, full] = pinned(pinning.load, H2LOAD, args);
  const child = spawnChild(cmd, full);
  let cpu = 0;
  // Sample its CPU while it runs; /proc is gone once it has exited.
  const sampler = setInterval(() => {
    try {
      cpu = cpuSeconds(child.pid);
    } catch {
      // exited
    }
  }, 250);
  const killer = setTimeout(() => void child.stop(1000), (run.durationS + run.warmupS + 60) * 1000);
  const code = await child.exited;
  clearInterval(sampler);
  clearTimeout(killer);
  const out = child.lines.join('\n');
  if (code !== 0) throw new Error(`h2load exited ${code}: ${child.stderr().slice(-800)}\n${out.slice(-800)}`);
  const summary = parseSummary(out);
  const log = parseLog(run.logFile, expectStatus);
  rmSync(run.logFile, { force: true });
  return { ...summary, ...log, h2loadCpuS: cpu, command: `h2load ${args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}` };
}
