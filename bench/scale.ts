/**
 * scale: what polling a large fleet costs the gate. The gate runs with its
 * default polling (dist/bench/scale-gate.js) in its own process; the fleet is
 * dist/bench/scale-fleet-main.js (cheap loopback daemons) in another. Two
 * windows per fleet size: a whole-fleet cold start (every plugin on every pod
 * launching, two at a time) and the settled fleet after it.
 */
import { join } from 'node:path';
import type { BenchContext } from './context.js';
import { DIST } from './lib/gate.js';
import { pinned, pinning, sleep, spawnChild, type Child } from './lib/proc.js';
import { mb, sig } from './lib/report.js';

interface Stats {
  wallMs: number;
  cpuMs: number;
  rss: number;
  rssPeak: number;
  heapUsed: number;
  lagP50: number;
  lagP99: number;
  lagMax: number;
  lagSamples: number;
  pods: number;
  live: number;
  startup: number;
  plugins: number;
  entries: number;
  ready: number;
  version: number;
}

async function stats<T = Stats>(child: Child): Promise<T> {
  const wait = child.nextLine(/^stats (.*)$/, 30_000);
  child.cp.stdin!.write('stats\n');
  return JSON.parse((await wait)[1]!) as T;
}

interface Lag {
  lagP50: number;
  lagP99: number;
  lagMax: number;
}

/** Goals of the fleet-scale issue, printed beside the figures. */
const GOAL_CPU_PCT = 5;
const GOAL_RSS_MIB = 200;
const GOAL_LAG_P99_MS = 5;
const GOAL_LAG_MAX_MS = 50;

export async function benchScale(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const sizes: [number, number, number][] = ctx.quick ? [[20, 50, 3_000]] : [[50, 200, 15_000], [500, 200, 15_000]];
  const settledMs = ctx.quick ? 3_000 : 20_000;
  const transitionMs = ctx.quick ? 0 : 15_000;
  report.section('scale', 'polling a large fleet: gate CPU, RSS and event-loop lag', [
    'fleet: dist/bench/scale-fleet-main.js (N loopback daemons in one process; /metrics/ with Go runtime, process and HTTP families',
    'that change on every scrape, then the plugin families; /health/check); all pods start together, plugins launch 2 at a time;',
    `gate: dist/bench/scale-gate.js (startGate with default options; its log, level info, to a file)${pinning.available ? ', pinned to core 1, the fleet to core 0' : ''};`,
    'CPU = the gate process\'s own user+system time (process.cpuUsage) over the window / wall time; RSS from process.memoryUsage;',
    'lag = event-loop delay (perf_hooks.monitorEventLoopDelay, 10 ms sampling step, step subtracted); an idle process pinned beside the gate',
    'measures the same way, so that lag caused by other processes on the core can be told from lag the gate causes itself;',
    "the daemons report a process start 50 s before the fleet's own (a cold start of minutes, compressed): settled pods are past startup-grace.",
    `windows: cold start = from the gate's start until every plugin runs on every pod + one poll round; settled = ${settledMs / 1000} s, starting ${transitionMs / 1000} s after that (the transition to the settled poll interval is skipped).`,
    `goals: settled < ${GOAL_CPU_PCT} % of a core and < ${GOAL_RSS_MIB} MiB RSS at 500 pods; cold start lag p99 < ${GOAL_LAG_P99_MS} ms, max < ${GOAL_LAG_MAX_MS} ms.`,
  ]);
  for (const [pods, plugins, coldMs] of sizes) {
    const tag = `${pods}x${plugins}`;
    const [fcmd, fargs] = pinned(pinning.load, process.execPath, [join(DIST, 'bench/scale-fleet-main.js'), '--pods', String(pods), '--plugins', String(plugins), '--cold-ms', String(coldMs)]);
    const fleet = spawnChild(fcmd, fargs);
    let gate: Child | undefined;
    let control: Child | undefined;
    try {
      const targets = (await fleet.waitLine(/^targets=(.+)$/, 60_000))[1]!;
      const [gcmd, gargs] = pinned(pinning.server, process.execPath, [join(DIST, 'bench/scale-gate.js'), targets, join(ctx.tmp, `scale-gate-${tag}.log`)]);
      gate = spawnChild(gcmd, gargs, { stdio: ['pipe', 'pipe', 'pipe'] });
      await gate.waitLine(/^ready-to-poll /, 30_000);
      const [ccmd, cargs] = pinned(pinning.server, process.execPath, [join(DIST, 'bench/lag-control.js')]);
      control = spawnChild(ccmd, cargs, { stdio: ['pipe', 'pipe', 'pipe'] });
      await control.waitLine(/^ready$/, 10_000);
      await stats<Lag>(control);
      await fleet.waitLine(/^settled$/, coldMs + 60_000);
      await sleep(2_500); // one more poll round (2 s ± 10 %) sees the last launches
      const cold = await stats(gate);
      const coldControl = await stats<Lag>(control);
      // The first seconds after a cold start are a transition, not the settled state: pods move to
      // the settled poll interval one by one and the cold start's garbage is collected. Skipped.
      await sleep(transitionMs);
      await stats(gate);
      await stats<Lag>(control);
      await sleep(settledMs);
      const settled = await stats(gate);
      const settledControl = await stats<Lag>(control);
      const machine = (l: Lag): string => `an idle process on the same core saw p99 ${sig(l.lagP99)} ms, max ${sig(l.lagMax)} ms (the machine's share)`;

      const pct = (s: Stats): number => (s.cpuMs / s.wallMs) * 100;
      const coldNote = `${sig(cold.wallMs / 1000)} s window; lag p50 ${sig(cold.lagP50)} ms; peak RSS ${mb(cold.rssPeak)} MiB; ${cold.version} snapshots`;
      report.figure('scale', `cold start CPU ${tag}`, sig(pct(cold)), '% of a core', coldNote);
      report.figure('scale', `cold start lag p99 ${tag}`, sig(cold.lagP99), 'ms', `goal < ${GOAL_LAG_P99_MS} ms; ${machine(coldControl)}`);
      report.figure('scale', `cold start lag max ${tag}`, sig(cold.lagMax), 'ms', `goal < ${GOAL_LAG_MAX_MS} ms`);
      report.figure('scale', `settled CPU ${tag}`, sig(pct(settled)), '% of a core', `${sig(settled.wallMs / 1000)} s window${pods >= 500 ? `; goal < ${GOAL_CPU_PCT} %` : ''}`);
      report.figure('scale', `settled RSS ${tag}`, mb(settled.rss), 'MiB', `heap used ${mb(settled.heapUsed)} MiB; peak ${mb(settled.rssPeak)} MiB${pods >= 500 ? `; goal < ${GOAL_RSS_MIB} MiB` : ''}`);
      report.figure('scale', `settled lag p99 / max ${tag}`, `${sig(settled.lagP99)} / ${sig(settled.lagMax)}`, 'ms', `p50 ${sig(settled.lagP50)} ms; ${machine(settledControl)}`);
      const want = pods * plugins;
      if (settled.live !== pods || settled.ready !== want) {
        report.problem('scale', `${tag}: the gate saw ${settled.live}/${pods} pods live and ${settled.ready}/${want} pod×plugin pairs ready at the end`);
      }
      gate.cp.stdin!.write('quit\n');
      await Promise.race([gate.exited, sleep(5_000)]);
    } finally {
      await control?.stop();
      await gate?.stop();
      await fleet.stop();
    }
  }
}
