/**
 * `npm run demo`: a simulated daemon fleet cold-starts, the gate serves it, and a
 * real gRPC client sends a steady stream of Checks. Every allowed request is then
 * really sent to the pod the gate chose, and the same request is sent to the pod
 * blind round-robin would have chosen, so the closing summary compares two
 * measured outcomes, not estimates.
 *
 * Flags: --time-scale X (daemon time per real time; default 0.04),
 * --rate N (checks per second; default 40), --duration S (default: until the
 * scenario has settled), --hold S (hold-starting: daemon seconds a request for a
 * starting plugin may wait; default off), --no-tty (print periodic tables
 * instead of redrawing), --envoy (a real Envoy in front: each request goes
 * client → Envoy → gate → pod, on deploy/envoy/envoy.yaml), --scenario cold|rolling
 * (default cold; rolling: a rolling update of a settled fleet, see rolling.ts; its
 * default time scale is 0.02).
 */
import * as grpc from '@grpc/grpc-js';
import { configFor } from '../config/config.js';
import { startGate, type RunningGate } from '../app/app.js';
import { createLogger } from '../observe/logger.js';
import { loadGatePackage } from '../front/grpc/protos.js';
import { SimFleet } from '../sim/fleet.js';
import { demoScenario } from '../sim/scenario.js';
import { systemScheduler } from '../core/clock.js';
import { runRollingDemo } from './rolling.js';
import type { SimDaemon } from '../sim/daemon.js';

interface Args {
  timeScale: number;
  rate: number;
  durationS: number | undefined;
  /** hold-starting in daemon seconds; 0 = off. */
  holdS: number;
  tty: boolean;
  envoy: boolean;
  scenario: 'cold' | 'rolling';
  timeScaleSet: boolean;
}

function parse(argv: readonly string[]): Args {
  const a: Args = { timeScale: 0.04, rate: 40, durationS: undefined, holdS: 0, tty: process.stdout.isTTY === true, envoy: false, scenario: 'cold', timeScaleSet: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n) || n <= 0) {
        process.stderr.write(`demo: ${k} needs a positive number\n`);
        process.exit(2);
      }
      i++;
      return n;
    };
    if (k === '--time-scale') {
      a.timeScale = num();
      a.timeScaleSet = true;
    } else if (k === '--scenario') {
      if (v !== 'cold' && v !== 'rolling') {
        process.stderr.write(`demo: --scenario is cold or rolling, not ${JSON.stringify(v)}\n`);
        process.exit(2);
      }
      a.scenario = v;
      i++;
    } else if (k === '--rate') a.rate = Math.min(2000, num());
    else if (k === '--duration') a.durationS = num();
    else if (k === '--hold') a.holdS = num();
    else if (k === '--no-tty') a.tty = false;
    else if (k === '--envoy') a.envoy = true;
    else {
      process.stderr.write(`demo: unknown argument ${k}\nusage: demo [--scenario cold|rolling] [--time-scale X] [--rate N] [--duration S] [--hold S] [--no-tty] [--envoy]\n`);
      process.exit(2);
    }
  }
  return a;
}

interface CheckAnswer {
  status?: { code?: number };
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string; string_value?: string }> };
  denied_response?: { status?: { code?: string | number }; headers?: { header?: { key?: string; value?: string } }[] };
}

type CheckClient = grpc.Client & {
  Check(req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: CheckAnswer) => void): void;
};

interface PluginTally {
  allow: number;
  deny: number;
  lastReason: string;
}

interface Totals {
  sent: number;
  allowed: number;
  denied: number;
  gateLanded200: number;
  gateLanded404: number;
  gateOther: number;
  blind404: number;
  blind200: number;
  blindOther: number;
  errors: number;
  /** Daemon ms each request served after a wait (hold-starting) waited. */
  heldServedMs: number[];
  reasons: Map<string, number>;
}

const NON_PLUGIN_PATH = '/plugin/demo-tenant/management/list';

/**
 * The repository's Envoy helper (test/support/envoy.ts: the pinned binary, a deploy/ file with
 * loopback addresses). --envoy is a feature of a checkout with scripts/setup.sh run, not of the
 * installed package, so it is loaded only when asked for.
 */
async function envoySupport(): Promise<typeof import('../../test/support/envoy.js')> {
  try {
    return await import('../../test/support/envoy.js');
  } catch {
    process.stderr.write('demo: --envoy runs from a checkout of the repository (npm run build), with Envoy installed by `bash scripts/setup.sh`\n');
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  if (args.scenario === 'rolling') {
    if (args.envoy) {
      process.stderr.write('demo: --envoy runs with the cold scenario only\n');
      process.exit(2);
    }
    await runRollingDemo({ timeScale: args.timeScaleSet ? args.timeScale : 0.02, rate: args.rate, durationS: args.durationS, tty: args.tty });
    return;
  }
  const envoyKit = args.envoy ? await envoySupport() : undefined;
  if (envoyKit !== undefined) {
    const found = envoyKit.findEnvoy();
    if (!found.ok) {
      process.stderr.write(`demo: --envoy: ${found.problem}\n`);
      process.exit(2);
    }
  }
  const scenario = demoScenario(args.timeScale);
  const fleet = new SimFleet({ ...scenario.fleet, scheduler: systemScheduler });
  await fleet.start();
  const ts = args.timeScale;
  // The gate runs in real time while the fleet runs in compressed daemon time:
  // scale the time-based settings the same way so the story is the same.
  const sec = (s: number): string => `${Math.max(1, Math.round(s * 1000))}ms`;
  const config = configFor({
    targets: fleet.targets,
    'grpc-listen': '127.0.0.1:0',
    'http-listen': '127.0.0.1:0',
    'admin-listen': '127.0.0.1:0',
    'poll-interval': '500ms',
    'poll-timeout': '400ms',
    'stale-after': '3s',
    'startup-grace': sec(Math.max(1, 60 * ts)),
    'startup-max': sec(Math.max(5, 1200 * ts)),
    'retry-after': '2s',
    'hold-starting': args.holdS > 0 ? sec(args.holdS * ts) : '0s',
    'log-level': 'silent',
    'decision-log': 'none',
    drain: '0ms',
  });
  const gate = await startGate(config, { logger: createLogger('silent') });
  const Ctor = grpc.makeClientConstructor(
    (grpc.loadPackageDefinition(loadGatePackage()) as unknown as { envoy: { service: { auth: { v3: { Authorization: { service: grpc.ServiceDefinition } } } } } }).envoy.service.auth.v3.Authorization.service,
    'Authorization',
  );
  const client = new Ctor(`127.0.0.1:${gate.grpcPort}`, grpc.credentials.createInsecure()) as unknown as CheckClient;
  // With --envoy: the shipped front proxy, only its addresses moved to loopback; requests go to it.
  const envoy = envoyKit === undefined ? undefined : await envoyKit.startEnvoy({ config: 'deploy/envoy/envoy.yaml', addresses: { 'plugin-gate-headless:9191': `127.0.0.1:${gate.grpcPort}` }, accessLog: 'discard' });
  const front = envoy?.listener('plugin_daemon');

  const plugins = [...scenario.fleet.plugins.map((p) => p.id), scenario.runtimeInstalled];
  const tallies = new Map<string, PluginTally>(plugins.map((p) => [p, { allow: 0, deny: 0, lastReason: '' }]));
  const totals: Totals = { sent: 0, allowed: 0, denied: 0, gateLanded200: 0, gateLanded404: 0, gateOther: 0, blind404: 0, blind200: 0, blindOther: 0, errors: 0, heldServedMs: [], reasons: new Map() };
  const started = Date.now();
  const settleS = (scenario.settledByMs * ts) / 1000 + 3;
  const durationS = args.durationS ?? settleS;
  let rr = 0;
  let seq = 0;
  const inflight = new Set<Promise<void>>();

  const sendOne = async (): Promise<void> => {
    const n = seq++;
    const path = n % 10 === 9 ? NON_PLUGIN_PATH : '/plugin/demo-tenant/dispatch/llm/invoke';
    const pluginId = plugins[n % plugins.length]!;
    const headers: Record<string, string> = { 'x-api-key': 'demo-secret', 'content-type': 'application/json' };
    if (path !== NON_PLUGIN_PATH) headers['x-plugin-id'] = pluginId;
    const req = { attributes: { request: { http: { id: `demo-${n}`, method: 'POST', path, host: 'plugin-daemon:5002', headers } } } };
    totals.sent++;
    // Blind round-robin over pods that are up: what a Service without the gate does.
    const blindPod = fleet.pods[rr++ % fleet.pods.length]!;
    const blind = forward(blindPod.address, path, headers);
    if (front !== undefined) {
      // client → Envoy → gate → pod: what the client gets is the whole story.
      const r = await viaEnvoy(front, path, headers, 2000 + args.holdS * ts * 1000);
      const blindStatus = await blind;
      if (blindStatus === 404) totals.blind404++;
      else if (blindStatus === 200) totals.blind200++;
      else totals.blindOther++;
      const t = path === NON_PLUGIN_PATH ? undefined : tallies.get(pluginId);
      const gateReason = r.reason;
      if (r.status === 200 || r.status === 404) {
        totals.allowed++;
        if (r.status === 200) totals.gateLanded200++;
        else totals.gateLanded404++;
        totals.reasons.set('allowed', (totals.reasons.get('allowed') ?? 0) + 1);
        if (t) {
          t.allow++;
          t.lastReason = `allowed → ${r.pod ?? '?'}`;
        }
      } else if (gateReason !== undefined) {
        totals.denied++;
        totals.reasons.set(gateReason, (totals.reasons.get(gateReason) ?? 0) + 1);
        if (t) {
          t.deny++;
          t.lastReason = `${r.status} ${gateReason}`;
        }
      } else {
        totals.errors++;
      }
      return;
    }
    const res = await new Promise<CheckAnswer | undefined>((resolve) => {
      // A held Check waits up to hold-starting: the deadline is that plus a margin, as Envoy's timeout would be.
      client.Check(req, { deadline: Date.now() + 1000 + args.holdS * ts * 1000 }, (err, r) => resolve(err === null ? r : undefined));
    });
    const blindStatus = await blind;
    if (blindStatus === 404) totals.blind404++;
    else if (blindStatus === 200) totals.blind200++;
    else totals.blindOther++;
    if (res === undefined) {
      totals.errors++;
      return;
    }
    const md = res.dynamic_metadata?.fields ?? {};
    const str = (k: string): string | undefined => md[k]?.stringValue ?? md[k]?.string_value;
    const reason = str('reason') ?? 'unknown';
    totals.reasons.set(reason, (totals.reasons.get(reason) ?? 0) + 1);
    const t = path === NON_PLUGIN_PATH ? undefined : tallies.get(pluginId);
    if ((res.status?.code ?? 0) === 0) {
      totals.allowed++;
      if (t) {
        t.allow++;
        t.lastReason = reason;
      }
      const upstream = str('upstream_host');
      if (upstream !== undefined) {
        const st = await forward(upstream, path, headers);
        if (st === 200) totals.gateLanded200++;
        const heldMs = str('held_ms');
        if (st === 200 && heldMs !== undefined) totals.heldServedMs.push(Number(heldMs) / ts);
        else if (st === 404) totals.gateLanded404++;
        else totals.gateOther++;
      }
    } else {
      totals.denied++;
      if (t) {
        t.deny++;
        t.lastReason = reason;
      }
    }
  };

  const interval = 1000 / args.rate;
  let nextAt = Date.now();
  let lastDraw = 0;
  while ((Date.now() - started) / 1000 < durationS) {
    const now = Date.now();
    while (nextAt <= now) {
      const p = sendOne().catch(() => {
        totals.errors++;
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      nextAt += interval;
    }
    if (now - lastDraw >= (args.tty ? 500 : 5000)) {
      lastDraw = now;
      draw(args.tty, gate, fleet, tallies, totals, (now - started) / 1000, ts, durationS, front);
    }
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(50, nextAt - Date.now()))));
  }
  await Promise.allSettled([...inflight]);
  draw(args.tty, gate, fleet, tallies, totals, (Date.now() - started) / 1000, ts, durationS, front);
  process.stdout.write('\n' + summary(totals, (Date.now() - started) / 1000, args.holdS) + '\n');
  if (front === undefined) process.stdout.write('  (npm run demo -- --envoy: the same with a real Envoy in front, client → Envoy → gate → pod; Envoy comes from `bash scripts/setup.sh`)\n');
  client.close();
  await envoy?.dispose();
  await gate.close();
  await fleet.close();
}

/** One request through Envoy: status, the pod that served it, the gate's reason on a denial. */
async function viaEnvoy(front: string, path: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; pod?: string; reason?: string }> {
  try {
    const res = await fetch(`http://${front}${path}`, { method: 'POST', headers, body: '{}', signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    const pod = res.headers.get('x-sim-pod') ?? undefined;
    const reason = res.headers.get('x-plugin-gate-reason') ?? undefined;
    return { status: res.status, ...(pod !== undefined && { pod }), ...(reason !== undefined && { reason }) };
  } catch {
    return { status: 0 };
  }
}

async function forward(address: string, path: string, headers: Record<string, string>): Promise<number> {
  try {
    const res = await fetch(`http://${address}${path}`, { method: 'POST', headers, body: '{}', signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

const SHORT: Record<string, string> = { ready: 'ready', starting: 'start', failed: 'FAILED', absent: '·' };

function draw(tty: boolean, gate: RunningGate, fleet: SimFleet, tallies: Map<string, PluginTally>, t: Totals, elapsedS: number, ts: number, durationS: number, front?: string): void {
  const snap = gate.snapshot();
  const pods = fleet.pods as readonly SimDaemon[];
  const lines: string[] = [];
  const daemonS = Math.round(elapsedS / ts);
  lines.push(`plugin-gate demo — ${elapsedS.toFixed(0)}s of ${durationS.toFixed(0)}s (daemon time ${Math.floor(daemonS / 60)}m${String(daemonS % 60).padStart(2, '0')}s)   admin http://127.0.0.1:${gate.adminPort}/status`);
  if (front !== undefined) lines.push(`client → Envoy http://${front} (deploy/envoy/envoy.yaml) → gate gRPC 127.0.0.1:${gate.grpcPort} → pod`);
  lines.push(`${front === undefined ? 'checks' : 'requests'} ${t.sent}   allowed ${t.allowed}   denied ${t.denied}   held now ${gate.service.heldCount()}   ${front === undefined ? 'gRPC errors' : 'errors'} ${t.errors}`);
  lines.push('');
  const podCells = pods.map((p) => {
    const v = snap.pods.get(p.address);
    return `${p.name} ${v?.state ?? '?'}${v?.inStartup ? ' (starting plugins)' : ''}`;
  });
  lines.push('pods: ' + podCells.join('   '));
  lines.push('');
  lines.push(`${'plugin'.padEnd(26)}${pods.map((p) => p.name.padEnd(8)).join('')}${'ready pods'.padEnd(12)}${'allow/deny'.padEnd(12)}last decision`);
  for (const [id, tally] of tallies) {
    const cells = pods.map((p) => (SHORT[snap.pods.get(p.address)?.plugins.get(id)?.state ?? 'absent'] ?? '?').padEnd(8)).join('');
    const ready = snap.plugins.get(id)?.readyPods.length ?? 0;
    lines.push(`${id.padEnd(26)}${cells}${String(ready).padEnd(12)}${`${tally.allow}/${tally.deny}`.padEnd(12)}${tally.lastReason}`);
  }
  lines.push('');
  lines.push(`through the gate: ${t.gateLanded200} landed on a pod running their plugin, ${t.gateLanded404} got a 404`);
  lines.push(`blind round-robin: ${t.blind404} of ${t.blind404 + t.blind200 + t.blindOther} hit a pod where their plugin was not running (404)`);
  if (tty) process.stdout.write('\x1b[H\x1b[2J' + lines.join('\n') + '\n');
  else process.stdout.write(lines.join('\n') + '\n\n');
}

function heldLine(waits: readonly number[], holdS: number): string {
  const w = [...waits].sort((a, b) => a - b);
  const med = w.length === 0 ? 0 : w[Math.floor((w.length - 1) / 2)]!;
  const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  return `                      held up to ${holdS} s: ${w.length} requests served after waiting for their plugin instead of failing${w.length === 0 ? '' : ` (wait median ${s(med)}, max ${s(w.at(-1)!)}, daemon time)`}`;
}

function pct(a: number, b: number): string {
  return b === 0 ? '0%' : `${((100 * a) / b).toFixed(1)}%`;
}

function summary(t: Totals, elapsedS: number, holdS: number): string {
  const blindTotal = t.blind404 + t.blind200 + t.blindOther;
  const reasons = [...t.reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(', ');
  return [
    `summary after ${elapsedS.toFixed(0)} s, ${t.sent} requests (${t.sent - Math.floor(t.sent / 10)} plugin dispatches, ${Math.floor(t.sent / 10)} management calls)`,
    `  with plugin-gate:   ${t.allowed} allowed, ${t.denied} denied with 503 + Retry-After + daemon envelope`,
    `                      every decision by reason: ${reasons}`,
    `                      of the allowed, ${t.gateLanded200} reached a pod running their plugin, ${t.gateLanded404} got "plugin runtime not found" (${pct(t.gateLanded404, t.allowed)})`,
    holdS > 0 ? heldLine(t.heldServedMs, holdS) : `                      (--hold 30 holds requests for starting plugins up to 30 s instead of denying them)`,
    `  blind round-robin:  ${t.blind404} of ${blindTotal} requests (${pct(t.blind404, blindTotal)}) hit a pod where their plugin was not running and got 404 "no available node, plugin runtime not found"`,
    `                      (${t.blind200} succeeded; without the gate, dify-api gets each of those 404s as a hard error, with no Retry-After)`,
  ].join('\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
