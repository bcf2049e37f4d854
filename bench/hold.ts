/**
 * hold: what hold-starting buys and what it costs.
 *
 * 1. Cold-start replay. The demo fleet (3 pods, a dozen plugins: one never
 *    starts, one starts after four failed launches, one is installed at run
 *    time) cold-starts in virtual time (one ManualScheduler for daemons, gate
 *    and hold timers: 25 min of daemon time, polled every 2 s as in
 *    production), while dispatch Checks for every plugin go over real gRPC on
 *    loopback at a steady virtual rate. Every allowed request is really sent to
 *    the pod the gate chose. Played twice, holding off and on (30 s), and
 *    counted: served, held-then-served (median and max wait), denied by reason,
 *    misrouted (allowed to a pod that answers 404), and denied although the
 *    plugin started on some pod within the budget.
 *
 * 2. Cost. The gate CLI (pinned like check-grpc) with a plugin_ready Check
 *    under h2load at a fixed rate, first with nothing held, then with thousands
 *    of Checks held for a plugin that stays starting: p50/p99 of the not-held
 *    Checks, and the gate's RSS per held request.
 */
import type { BenchContext } from './context.js';
import { startHarness, type Harness } from '../test/support/gate.js';
import { demoScenario } from '../src/sim/scenario.js';
import type { SimEvent } from '../src/sim/daemon.js';
import { check, checkClient, CHECK_PATH, dispatchCheckRequest, encodeCheckRequest, grpcFrame, metadataOf, type CheckClient } from './lib/envoy.js';
import { adminText, startGateCli, startSimCli, waitReady } from './lib/gate.js';
import { h2loadVersion } from './lib/h2load.js';
import { rss, sleep } from './lib/proc.js';
import { median, sig } from './lib/report.js';
import { loadStep, warmUp, type StepResult } from './lib/wire.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const BENCH = 'hold';
const HOLD_MS = 30_000;
const POLL_MS = 2_000;
const STEP_MS = 250;

export async function benchHold(ctx: BenchContext): Promise<void> {
  await coldStartReplay(ctx);
  await costWhileHolding(ctx);
}

// ------------------------------------------------------------ 1. cold start

interface ReplayResult {
  sent: number;
  served: number;
  heldServed: number[];
  misrouted: number;
  denied: Map<string, number>;
  errors: number;
  /** Denied although the plugin was ready on some pod within the budget of the request. */
  missed: number;
  /** …and even allowing the gate one poll interval to see it. */
  missedBeyondPoll: number;
}

async function coldStartReplay(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const ratePerS = ctx.quick ? 2 : 6;
  const scenario = demoScenario(1);
  const endMs = scenario.settledByMs + 60_000;
  report.section(BENCH, 'cold-start replay, holding off and on', [
    `fleet: the demo scenario (3 pods, ${scenario.fleet.plugins.length + 1} plugins), daemon time 1:1 in virtual time; gate polls every ${POLL_MS / 1000} s (virtual);`,
    `load: ${ratePerS} dispatch Checks per virtual second over real gRPC, round-robin over the plugins, for ${Math.round(endMs / 60_000)} min of daemon time;`,
    'every allow is sent to the pod the gate chose (served = 200 there, misrouted = 404 "plugin runtime not found");',
    `holding on: hold-starting ${HOLD_MS / 1000}s${ctx.quick ? '' : ' (and 120s)'}; waits are in daemon time.`,
  ]);
  // A longer budget in full runs: the demo's plugins take 45-240 s each, launched two at a time.
  for (const holdMs of ctx.quick ? [0, HOLD_MS] : [0, HOLD_MS, 120_000]) {
    const r = await replay(scenario, holdMs, ratePerS, endMs);
    const tag = holdMs === 0 ? 'holding off' : `holding ${holdMs / 1000}s`;
    const deniedTotal = [...r.denied.values()].reduce((a, b) => a + b, 0);
    const waits = [...r.heldServed].sort((a, b) => a - b);
    report.figure(BENCH, `${tag}: served`, `${r.served} of ${r.sent}`, '', `${sig((100 * r.served) / r.sent)} %`);
    report.figure(BENCH, `${tag}: held then served`, String(waits.length), '', waits.length === 0 ? 'none' : `wait median ${sig(median(waits) / 1000)} s, max ${sig(waits.at(-1)! / 1000)} s`);
    report.figure(BENCH, `${tag}: denied`, String(deniedTotal), '', [...r.denied].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', '));
    report.figure(BENCH, `${tag}: misrouted`, String(r.misrouted), '');
    report.figure(
      BENCH,
      `${tag}: denied though the plugin started within the budget`,
      String(r.missed),
      '',
      `${r.missedBeyondPoll} even allowing one poll interval for the gate to see the start`,
    );
    if (r.errors > 0) report.problem(BENCH, `${tag}: ${r.errors} Checks failed as RPC errors`);
    if (r.misrouted > 0) report.problem(BENCH, `${tag}: ${r.misrouted} requests misrouted`);
  }
}

async function replay(scenario: ReturnType<typeof demoScenario>, holdMs: number, ratePerS: number, endMs: number): Promise<ReplayResult> {
  const firstReady = new Map<string, number>();
  let t0 = 0;
  const onEvent = (e: SimEvent): void => {
    if (e.kind === 'ready' && e.pluginId !== undefined && !firstReady.has(e.pluginId)) firstReady.set(e.pluginId, e.at - t0);
  };
  const h: Harness = await startHarness(
    { ...scenario.fleet, onEvent },
    { 'hold-starting': `${holdMs}ms`, 'poll-interval': `${POLL_MS}ms`, 'max-held': '100000' },
  );
  t0 = h.sched.now();
  const client: CheckClient = checkClient(h.gate.grpcPort, { 'grpc.use_local_subchannel_pool': 1 });
  const plugins = [...scenario.fleet.plugins.map((p) => p.id), scenario.runtimeInstalled];
  const r: ReplayResult = { sent: 0, served: 0, heldServed: [], misrouted: 0, denied: new Map(), errors: 0, missed: 0, missedBeyondPoll: 0 };
  let answered = 0;
  let forwarding = 0;
  const denials: { plugin: string; at: number }[] = [];
  try {
    await h.gate.whenReady();
    const perStep = (ratePerS * STEP_MS) / 1000;
    let credit = 0;
    for (let now = 0; now <= endMs; now += STEP_MS) {
      if (now > 0) h.sched.advance(STEP_MS);
      if (now % POLL_MS === 0) await h.poll();
      credit += perStep;
      for (; credit >= 1; credit--) {
        const plugin = plugins[r.sent % plugins.length]!;
        const sentAt = now;
        r.sent++;
        void check(client, dispatchCheckRequest({ pluginId: plugin }), 600_000).then(async ({ err, res }) => {
          if (err !== null) {
            r.errors++;
            answered++;
            return;
          }
          const md = metadataOf(res);
          const heldMs = res?.dynamic_metadata?.fields?.['held_ms']?.string_value ?? res?.dynamic_metadata?.fields?.['held_ms']?.stringValue;
          if (md.code === 0 && md.upstream !== undefined) {
            forwarding++;
            answered++;
            const status = await dispatchStatus(md.upstream, plugin);
            forwarding--;
            if (status === 200) {
              r.served++;
              if (heldMs !== undefined) r.heldServed.push(Number(heldMs));
            } else if (status === 404) r.misrouted++;
            else r.errors++;
            return;
          }
          answered++;
          const reason = md.reason ?? 'unknown';
          r.denied.set(reason, (r.denied.get(reason) ?? 0) + 1);
          denials.push({ plugin, at: sentAt });
        });
      }
      // Virtual time moves on only once every request sent so far has reached the gate
      // (answered or held) and every allow has been tried on its pod.
      const deadline = Date.now() + 30_000;
      while (answered + h.gate.service.heldCount() < r.sent || forwarding > 0) {
        if (Date.now() > deadline) throw new Error(`replay stalled at ${now} ms: sent ${r.sent}, answered ${answered}, held ${h.gate.service.heldCount()}`);
        await new Promise((res) => setImmediate(res));
      }
    }
    h.sched.advance(holdMs + 1);
    const deadline = Date.now() + 30_000;
    while (answered < r.sent || forwarding > 0) {
      if (Date.now() > deadline) throw new Error('replay: answers missing at the end');
      await sleep(10);
    }
    for (const d of denials) {
      const ready = firstReady.get(d.plugin);
      if (ready === undefined) continue;
      if (ready <= d.at + holdMs) r.missed++;
      if (ready + POLL_MS <= d.at + holdMs) r.missedBeyondPoll++;
    }
    return r;
  } finally {
    client.close();
    await h.close();
  }
}

async function dispatchStatus(address: string, plugin: string): Promise<number> {
  try {
    const res = await fetch(`http://${address}/plugin/bench-tenant/dispatch/llm/invoke`, {
      method: 'POST',
      headers: { 'x-plugin-id': plugin, 'content-type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(5_000),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

// ------------------------------------------------------------ 2. cost

const READY = 'langgenius/openai';
/** Not installed anywhere: while the pods are in start-up it may be queued, so it is plugin_starting. */
const HELD = 'bench/held';
const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers', 'user-agent: envoy/1.33 h2load'];
/** The gate allows 1 000 streams per connection: one client (own connection) per 900 held Checks. */
const PER_CONNECTION = 900;

async function costWhileHolding(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const held = ctx.quick ? 1_000 : 5_000;
  const rate = 2_000;
  const durationS = ctx.quick ? 2 : 5;
  const rounds = ctx.quick ? 1 : 3;
  report.section(BENCH, `not-held Checks while ${held} are held`, [
    'gate: node dist/src/cli/main.js --hold-starting 10m (decision-log none), pinned as in check-grpc; fleet: sim --scenario basic;',
    `load: h2load, a plugin_ready Check at ${rate} req/s over 8 connections, ${durationS} s after 1 s warm-up: once with nothing held, once with`,
    `${held} Checks held (a plugin every pod may still be launching: startup-grace 10m keeps the pods in start-up), on ${Math.ceil(held / PER_CONNECTION)} more connections.`,
  ]);
  if (h2loadVersion() === undefined) {
    report.problem(BENCH, 'h2load not installed (apt-get install nghttp2-client): cost part skipped');
    return;
  }
  const fleet = await startSimCli(['--pods', '3', '--scenario', 'basic']);
  let gate: Awaited<ReturnType<typeof startGateCli>> | undefined;
  const clients: CheckClient[] = [];
  try {
    gate = await startGateCli(fleet.targets, ['--hold-starting', '10m', '--max-held', '100000', '--startup-grace', '10m', '--startup-max', '15m']);
    await waitReady(gate.adminPort, 15_000);
    const probe = checkClient(gate.grpcPort);
    clients.push(probe);
    const req = dispatchCheckRequest({ pluginId: READY });
    for (let deadline = Date.now() + 20_000; ; ) {
      const { err, res } = await check(probe, req);
      if (err === null && metadataOf(res).reason === 'plugin_ready') break;
      if (Date.now() > deadline) throw new Error(`no plugin_ready for ${READY} within 20 s`);
      await sleep(200);
    }
    const dataFile = join(ctx.tmp, 'hold-check-request.grpc');
    writeFileSync(dataFile, grpcFrame(encodeCheckRequest(req)));
    const target = { bench: BENCH, pid: gate.child.pid, url: `http://127.0.0.1:${gate.grpcPort}${CHECK_PATH}`, headers: GRPC_HEADERS, dataFile };
    const step = { rate, clients: 8, streams: 100 };

    // Heap in use, the least of a few scrapes a little apart: garbage not yet collected only ever adds.
    const heapUsed = async (): Promise<number> => {
      let least = Infinity;
      for (let i = 0; i < 8; i++) {
        const v = Number(/^plugin_gate_nodejs_heap_size_used_bytes (\S+)/m.exec(await adminText(gate!.adminPort, '/metrics'))?.[1] ?? NaN);
        if (v < least) least = v;
        await sleep(250);
      }
      return least;
    };
    const heldReq = dispatchCheckRequest({ pluginId: HELD });
    const heldNow = async (): Promise<number> => Number(/^plugin_gate_held_requests (\d+)/m.exec(await adminText(gate!.adminPort, '/metrics'))?.[1] ?? NaN);
    /** Holds `held` Checks, each client on its own connection; returns once the gate holds them all. */
    const holdAll = async (): Promise<{ drop(): Promise<void> }> => {
      const mine: CheckClient[] = [];
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < held; i++) {
        if (i % PER_CONNECTION === 0) mine.push(checkClient(gate!.grpcPort, { 'grpc.use_local_subchannel_pool': 1 }));
        pending.push(check(mine.at(-1)!, heldReq, 15 * 60_000));
      }
      clients.push(...mine);
      for (let deadline = Date.now() + 30_000; (await heldNow()) < held; ) {
        if (Date.now() > deadline) throw new Error(`only ${await heldNow()} of ${held} Checks held after 30 s`);
        await sleep(200);
      }
      return {
        // Callers gone: the gate drops them at once.
        async drop() {
          for (const c of mine) c.close();
          await Promise.allSettled(pending);
          for (let deadline = Date.now() + 30_000; (await heldNow()) > 0; ) {
            if (Date.now() > deadline) throw new Error(`${await heldNow()} Checks still held 30 s after their callers left`);
            await sleep(200);
          }
        },
      };
    };

    // Memory first, before any load step: the garbage of 10 000 answered Checks would drown the held ones.
    const rssBefore = rss(gate.child.pid).rss;
    const heapBefore = await heapUsed();
    let round = await holdAll();
    const rssHeld = rss(gate.child.pid).rss;
    const heapHeld = await heapUsed();
    await round.drop();

    // Warm the gate up first (unrecorded): the first thousands of Checks of a process are JIT warm-up,
    // not what holding costs. Then rounds, each a step without held Checks and one with them, so that
    // a noisy moment on the shared machine hits one round; the figures are medians over rounds.
    await warmUp(ctx, target, { ...step, name: 'warm-up' }, 5);
    const idle: StepResult[] = [];
    const busy: StepResult[] = [];
    let stillHeld = held;
    for (let r = 1; r <= rounds; r++) {
      idle.push(await loadStep(ctx, target, { ...step, name: `open ${rate / 1000}k/s, 0 held, round ${r}` }, durationS, 1));
      round = await holdAll();
      busy.push(await loadStep(ctx, target, { ...step, name: `open ${rate / 1000}k/s, ${held} held, round ${r}` }, durationS, 1));
      stillHeld = Math.min(stillHeld, await heldNow());
      await round.drop();
    }
    if (stillHeld !== held) report.problem(BENCH, `${held - stillHeld} held Checks ended during a load step`);

    const q = (rs: readonly StepResult[], k: 'p50' | 'p99'): number => median(rs.map((x) => x.h2.latencyUs[k]));
    const pp = (rs: readonly StepResult[]): string => `${sig(q(rs, 'p50') / 1000)} / ${sig(q(rs, 'p99') / 1000)}`;
    const each = (rs: readonly StepResult[]): string => rs.map((x) => sig(x.h2.latencyUs.p99 / 1000)).join(', ');
    report.figure(
      BENCH,
      `not-held p50 / p99 at ${rate / 1000}k/s: 0 held, ${held} held (medians of ${rounds} rounds)`,
      `${pp(idle)}, ${pp(busy)}`,
      'ms',
      `p99 per round: 0 held ${each(idle)} ms; ${held} held ${each(busy)} ms`,
    );
    report.figure(
      BENCH,
      'gate memory per held request',
      sig((heapHeld - heapBefore) / held / 1024),
      'KiB heap',
      `${sig((rssHeld - rssBefore) / held / 1024)} KiB RSS; heap in use (least of 8 scrapes) / held Checks: the gate's waiter plus grpc-js's call and HTTP/2 stream`,
    );
  } finally {
    for (const c of clients) c.close();
    await gate?.child.stop();
    await fleet.child.stop();
  }
}
