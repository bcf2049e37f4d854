/**
 * One load step against a server process: h2load at a fixed rate (open loop)
 * or as fast as answers come (closed loop), with the server's CPU and RSS
 * watched from /proc and, for the gate, its decision counters compared before
 * and after, then printed as figures.
 */
import { join } from 'node:path';
import type { BenchContext } from '../context.js';
import { countDelta, decisionCounts } from './gate.js';
import { runH2load, type H2Result, type H2Run } from './h2load.js';
import { watchProcess } from './proc.js';
import { mb, sig } from './report.js';

export interface Step {
  /** Label prefix, e.g. "gate open 2k/s". */
  readonly name: string;
  /** Total target rate; undefined = closed loop. */
  readonly rate: number | undefined;
  readonly clients: number;
  readonly streams: number;
}

export interface Target {
  readonly bench: string;
  readonly pid: number;
  readonly url: string;
  readonly headers: readonly string[];
  readonly dataFile?: string;
  readonly h1?: boolean;
  /** Set for the gate: its decision counters are checked. */
  readonly admin?: { readonly port: number; readonly key: string };
}

export interface StepResult {
  readonly h2: H2Result;
  readonly cpuPct: number;
  readonly cpuUsPerReq: number;
  readonly peakRss: number;
}

/** The h2load run of a step against a target. */
function runOf(ctx: BenchContext, t: Target, s: Step, durationS: number, warmupS: number): H2Run {
  return {
    url: t.url,
    clients: s.clients,
    streams: s.streams,
    rpsPerClient: s.rate === undefined ? undefined : Math.max(1, Math.round(s.rate / s.clients)),
    durationS,
    warmupS,
    headers: t.headers,
    ...(t.dataFile !== undefined && { dataFile: t.dataFile }),
    ...(t.h1 === true && { h1: true }),
    logFile: join(ctx.tmp, `h2load-${process.pid}.log`),
  };
}

/**
 * The step run for `seconds` and nothing recorded: warms the server up (JIT,
 * heap, connections) before the steps that are measured.
 */
export async function warmUp(ctx: BenchContext, t: Target, s: Step, seconds: number): Promise<void> {
  await runH2load(runOf(ctx, t, s, seconds, 0));
}

export async function loadStep(ctx: BenchContext, t: Target, s: Step, durationS: number, warmupS: number): Promise<StepResult> {
  const { report } = ctx;
  const run = runOf(ctx, t, s, durationS, warmupS);
  const before = t.admin ? await decisionCounts(t.admin.port) : undefined;
  const watch = watchProcess(t.pid);
  const h2 = await runH2load(run);
  const w = watch.stop();
  const after = t.admin ? await decisionCounts(t.admin.port) : undefined;

  const served = h2.reqPerSec * (durationS + warmupS);
  const cpuPct = (w.cpuS / w.wallS) * 100;
  const cpuUsPerReq = served > 0 ? (w.cpuS / served) * 1e6 : NaN;
  const l = h2.latencyUs;
  const mode = s.rate === undefined ? `closed loop, ${s.clients} conns × ${s.streams} streams` : `open loop, ${s.clients} conns, ≤${s.streams} streams each`;
  report.line(`   ${s.name}: ${mode}; ${h2.command}`);
  const errors = h2.failed + h2.errored + h2.timeout + h2.status.s3xx + h2.status.s4xx + h2.status.s5xx + h2.badRows;
  report.figure(t.bench, `${s.name} achieved`, sig(h2.reqPerSec, 4), 'req/s', s.rate === undefined ? `${h2.done} requests in ${durationS} s` : `target ${s.rate}; ${h2.done} requests in ${durationS} s`);
  report.figure(
    t.bench,
    `${s.name} latency p50/p90/p99/max`,
    `${sig(l.p50 / 1000)} / ${sig(l.p90 / 1000)} / ${sig(l.p99 / 1000)} / ${sig(l.max / 1000)}`,
    'ms',
    `p99.9 ${sig(l.p999 / 1000)} ms; ${l.n} requests${s.rate === undefined ? '' : `; requests started per ms: median ${h2.burst.median}, max ${h2.burst.max} (connections staggered, see bench/README.md)`}`,
  );
  report.figure(
    t.bench,
    `${s.name} errors`,
    String(errors),
    'requests',
    `failed ${h2.failed}, errored ${h2.errored}, timeout ${h2.timeout}, non-2xx ${h2.status.s3xx + h2.status.s4xx + h2.status.s5xx}; ${h2.unfinished} in flight at the warm-up/stop boundary (not errors, not timed)`,
  );
  report.figure(
    t.bench,
    `${s.name} server CPU`,
    sig(cpuPct),
    '% of a core',
    `${sig(cpuUsPerReq)} µs CPU per request; RSS peak ${mb(w.peakRss)} MiB; h2load used ${sig((h2.h2loadCpuS / w.wallS) * 100)} % of a core`,
  );
  if (s.rate !== undefined && h2.reqPerSec < s.rate * 0.97) report.note(`achieved ${sig(h2.reqPerSec, 4)} req/s < target ${s.rate}: saturated`);
  if (errors > 0) report.problem(t.bench, `${s.name}: ${errors} requests failed or were not 2xx`);
  if (before !== undefined && after !== undefined && t.admin !== undefined) {
    const d = countDelta(before, after);
    const good = d.get(t.admin.key) ?? 0;
    const other = [...d].filter(([k]) => k !== t.admin!.key);
    if (good < h2.done) report.problem(t.bench, `${s.name}: gate counted ${good} ${t.admin.key} decisions for ${h2.done} requests`);
    if (other.length > 0) report.problem(t.bench, `${s.name}: unexpected decisions ${JSON.stringify(Object.fromEntries(other))}`);
  }
  return { h2, cpuPct, cpuUsPerReq, peakRss: w.peakRss };
}

/** An exact validation: n requests, every one must be a 2xx counted as `key` by the gate. */
export async function validateExact(ctx: BenchContext, t: Target & { admin: { port: number; key: string } }, n: number): Promise<boolean> {
  const before = await decisionCounts(t.admin.port);
  const h2 = await runH2load({
    url: t.url,
    clients: 4,
    streams: t.h1 === true ? 1 : 16,
    rpsPerClient: undefined,
    durationS: 0,
    warmupS: 0,
    headers: t.headers,
    ...(t.dataFile !== undefined && { dataFile: t.dataFile }),
    ...(t.h1 === true && { h1: true }),
    logFile: join(ctx.tmp, `h2load-validate-${process.pid}.log`),
    requests: n,
  });
  const d = countDelta(before, await decisionCounts(t.admin.port));
  const ok = h2.status.s2xx === n && h2.badRows === 0 && d.get(t.admin.key) === n && d.size === 1;
  const msg = `validation: ${n} requests → ${h2.status.s2xx} HTTP 2xx; gate counted ${JSON.stringify(Object.fromEntries(d))}`;
  if (ok) ctx.report.note(`${msg}: every request was a real ${t.admin.key.split('/')[1]} decision`);
  else ctx.report.problem(t.bench, msg);
  return ok;
}
