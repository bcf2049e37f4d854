/**
 * envoy: what the gate adds to a request through a real Envoy. h2load sends
 * dify-api-shaped dispatch calls (HTTP/1.1 POST, x-plugin-id) through Envoy to
 * one simulated daemon pod, open loop, in three set-ups of the same Envoy:
 *
 *   no ext_authz   deploy/envoy/envoy.yaml without its ext_authz filter, the
 *                  pod as a static cluster: Envoy alone, the floor;
 *   gRPC           deploy/envoy/envoy.yaml as shipped (ext_authz over gRPC,
 *                  the pod from the gate's dynamic metadata);
 *   http_service   deploy/envoy/envoy-http-service.yaml as shipped.
 *
 * The added latency is the gate set-up's percentile minus the floor's.
 */
import type { BenchContext } from './context.js';
import { DIST, startGateCli, startSimCli, waitReady } from './lib/gate.js';
import { h2loadVersion } from './lib/h2load.js';
import { pinned, pinning, sleep, spawnChild, type Child } from './lib/proc.js';
import { median, sig } from './lib/report.js';
import { loadStep, warmUp, type Step, type StepResult, type Target } from './lib/wire.js';
import { findEnvoy, startEnvoy, type RunningEnvoy } from '../test/support/envoy.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PLUGIN = 'langgenius/openai';
const PATH = '/plugin/6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00/dispatch/llm/invoke';
const GATE_GRPC = 'plugin-gate-headless:9191';
const GATE_HTTP = 'plugin-gate-headless:9192';

type Obj = Record<string, any>;

/** The shipped front proxy minus ext_authz, its daemon cluster a static one at `pod`. */
function withoutExtAuthz(pod: string): (doc: Obj) => void {
  return (doc) => {
    for (const l of doc['static_resources']['listeners'] as Obj[]) {
      const hcm = l['filter_chains'][0]['filters'][0]['typed_config'] as Obj;
      hcm['http_filters'] = (hcm['http_filters'] as Obj[]).filter((f) => f['name'] !== 'envoy.filters.http.ext_authz');
    }
    const c = (doc['static_resources']['clusters'] as Obj[]).find((x) => x['name'] === 'plugin_daemon_pod')!;
    const [address, port] = pod.split(':') as [string, string];
    c['type'] = 'STATIC';
    c['lb_policy'] = 'ROUND_ROBIN';
    delete c['original_dst_lb_config'];
    delete c['cleanup_interval'];
    c['load_assignment'] = {
      cluster_name: 'plugin_daemon_pod',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: Number(port) } } } }] }],
    };
  };
}

interface Setup {
  readonly name: string;
  readonly config: string;
  readonly addresses: Record<string, string>;
  readonly amend?: (doc: Obj) => void;
  /** The gate's decision counter that must move once per request. */
  readonly key?: string;
}

export async function benchEnvoy(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const durationS = ctx.quick ? 2 : 5;
  const warmupS = 1;
  const rates = ctx.quick ? [1000] : [1000, 5000];
  const rounds = ctx.quick ? 1 : 3;
  const warmS = ctx.quick ? 1 : 5;
  const envoy = findEnvoy();
  report.section('envoy', 'what the gate adds through a real Envoy (loopback, HTTP/1.1 clients)', [
    `Envoy ${envoy.ok ? envoy.version : '(missing)'} (one worker${pinning.available ? ', on core 0 with h2load and the fleet' : ''}), the gate CLI${pinning.available ? ' on core 1' : ''}, one simulated pod (sim CLI, scenario basic);`,
    `request: POST ${PATH} with x-plugin-id ${PLUGIN} (ready on the pod), 24-byte JSON body, one request in flight per keep-alive connection (rate/50 connections), as dify-api's httpx pool;`,
    'set-ups: Envoy without ext_authz (the shipped envoy.yaml minus the filter, the pod as a static cluster); the shipped envoy.yaml with an ext_authz floor (bench/baseline-main.js grpc-js: same codec as the gate, a canned allow to the pod, nothing decided); the shipped envoy.yaml (gRPC ext_authz to the gate, pod from dynamic metadata); the shipped envoy-http-service.yaml (gate with --http-request-from request --http-deny-status 429);',
    `open loop at ${rates.join(', ')} req/s (connections made staggered over one h2load tick, so requests leave evenly); each set-up first runs ${warmS} s unrecorded, then ${warmupS} s warm-up + ${durationS} s per round, the set-ups taking turns for ${rounds} round(s); added latency = median percentile with the gate − the same median without ext_authz.`,
  ]);
  if (h2loadVersion() === undefined) {
    report.problem('envoy', 'h2load not installed (apt-get install nghttp2-client): skipped');
    return;
  }
  if (!envoy.ok) {
    report.problem('envoy', `${envoy.problem}: skipped`);
    return;
  }
  const fleet = await startSimCli(['--pods', '1', '--scenario', 'basic', '--time-scale', '0.001']);
  let gate: Awaited<ReturnType<typeof startGateCli>> | undefined;
  let floor: Child | undefined;
  const body = join(ctx.tmp, 'dispatch.json');
  writeFileSync(body, '{"model":"gpt-4o-mini"}\n');
  try {
    gate = await startGateCli(fleet.targets, ['--http-request-from', 'request', '--http-deny-status', '429']);
    await waitReady(gate.adminPort, 15_000);
    const pod = fleet.targets.split(',')[0]!;
    // The floor for ext_authz itself: a grpc-js server with the gate's codec answering every Check
    // with the same canned allow to the pod (deciding nothing). What Envoy's ext_authz costs on the
    // shared core shows as floor − no ext_authz; what the gate's decisions and bookkeeping add, as
    // gRPC − floor.
    const [fcmd, fargs] = pinned(pinning.server, process.execPath, [join(DIST, 'bench/baseline-main.js'), 'grpc-js', fleet.targets.split(',')[0]!]);
    floor = spawnChild(fcmd, fargs);
    const floorPort = Number((await floor.waitLine(/^port=(\d+)$/, 10_000))[1]);
    const setups: Setup[] = [
      { name: 'no ext_authz', config: 'deploy/envoy/envoy.yaml', addresses: { [GATE_GRPC]: `127.0.0.1:${gate.grpcPort}` }, amend: withoutExtAuthz(pod) },
      { name: 'ext_authz floor', config: 'deploy/envoy/envoy.yaml', addresses: { [GATE_GRPC]: `127.0.0.1:${floorPort}` } },
      { name: 'gRPC', config: 'deploy/envoy/envoy.yaml', addresses: { [GATE_GRPC]: `127.0.0.1:${gate.grpcPort}` }, key: 'grpc/plugin_ready' },
      { name: 'http_service', config: 'deploy/envoy/envoy-http-service.yaml', addresses: { [GATE_HTTP]: `127.0.0.1:${gate.httpPort}` }, key: 'http/plugin_ready' },
    ];
    // All three Envoys run at once (idle ones cost nothing) and the set-ups take turns, round
    // after round: a noisy moment on this shared machine then hits one round of one set-up,
    // and the figures are medians over rounds.
    const proxies: RunningEnvoy[] = [];
    const results = new Map<string, StepResult[]>();
    try {
      const urls: string[] = [];
      for (const s of setups) {
        const proxy = await startEnvoy({
          config: s.config,
          addresses: s.addresses,
          ...(s.amend !== undefined && { amend: s.amend }),
          commandPrefix: pinning.load,
          accessLog: 'discard',
        });
        proxies.push(proxy);
        const url = `http://${proxy.listener('plugin_daemon')}${PATH}`;
        urls.push(url);
        // The plugin must be ready on the pod and the route complete before measuring.
        const deadline = Date.now() + 30_000;
        for (;;) {
          const res = await fetch(url, { method: 'POST', headers: { 'x-plugin-id': PLUGIN, 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(5000) });
          const text = await res.text();
          if (res.status === 200 && text.includes('served_by')) break;
          if (Date.now() > deadline) throw new Error(`${s.name}: no 200 through Envoy within 30 s (last: ${res.status} ${text.slice(0, 200)})`);
          await sleep(200);
        }
      }
      const headers = [`x-plugin-id: ${PLUGIN}`, 'content-type: application/json', 'user-agent: python-httpx/0.27.2'];
      const target = (i: number, s: Setup): Target => ({
        bench: 'envoy',
        pid: proxies[i]!.child.pid!,
        url: urls[i]!,
        headers,
        dataFile: body,
        h1: true,
        ...(s.key !== undefined && { admin: { port: gate!.adminPort, key: s.key } }),
      });
      // One request in flight per keep-alive connection, rate/50 connections (dify-api's httpx pool).
      const step = (r: number, name: string): Step => ({ name, rate: r, clients: Math.ceil(r / 50), streams: 1 });
      for (const r of rates) {
        // Every set-up runs warmS at this rate before its first measured round, unrecorded: a gate
        // in production is long past JIT warm-up, and without this the first gRPC round measured the
        // gate's first thousand Checks ever (its p99 twice that of later rounds).
        for (const [i, s] of setups.entries()) await warmUp(ctx, target(i, s), step(r, 'warm-up'), warmS);
        for (let round = 1; round <= rounds; round++) {
          for (const [i, s] of setups.entries()) {
            const res = await loadStep(ctx, target(i, s), step(r, `${s.name} ${r / 1000}k/s round ${round}`), durationS, warmupS);
            const k = `${s.name} ${r}`;
            results.set(k, [...(results.get(k) ?? []), res]);
          }
        }
      }
    } finally {
      for (const p of proxies) await p.dispose();
    }
    const med = (k: string, q: 'p50' | 'p99'): number | undefined => {
      const rs = results.get(k);
      return rs === undefined || rs.length === 0 ? undefined : median(rs.map((x) => x.h2.latencyUs[q]));
    };
    for (const r of rates) {
      for (const name of ['no ext_authz', 'ext_authz floor', 'gRPC', 'http_service']) {
        const p50 = med(`${name} ${r}`, 'p50');
        const p99 = med(`${name} ${r}`, 'p99');
        if (p50 === undefined || p99 === undefined) continue;
        const each = results.get(`${name} ${r}`)!.map((x) => sig(x.h2.latencyUs.p99 / 1000)).join(', ');
        report.figure('envoy', `${name} ${r / 1000}k/s p50/p99 (median of ${rounds} rounds)`, `${sig(p50 / 1000)} / ${sig(p99 / 1000)}`, 'ms', `p99 per round: ${each} ms`);
      }
      const c50 = med(`ext_authz floor ${r}`, 'p50');
      const c99 = med(`ext_authz floor ${r}`, 'p99');
      const g50 = med(`gRPC ${r}`, 'p50');
      const g99 = med(`gRPC ${r}`, 'p99');
      if (c50 !== undefined && c99 !== undefined && g50 !== undefined && g99 !== undefined) {
        report.figure(
          'envoy',
          `added by the gate over the ext_authz floor, gRPC ${r / 1000}k/s p50/p99`,
          `${sig((g50 - c50) / 1000)} / ${sig((g99 - c99) / 1000)}`,
          'ms',
          `medians over ${rounds} rounds: with the gate p50 ${sig(g50 / 1000)} / p99 ${sig(g99 / 1000)} ms, with the floor (canned allow, same codec) ${sig(c50 / 1000)} / ${sig(c99 / 1000)} ms`,
        );
      }
      const f50 = med(`no ext_authz ${r}`, 'p50');
      const f99 = med(`no ext_authz ${r}`, 'p99');
      for (const name of ['gRPC', 'http_service']) {
        const l50 = med(`${name} ${r}`, 'p50');
        const l99 = med(`${name} ${r}`, 'p99');
        if (f50 === undefined || f99 === undefined || l50 === undefined || l99 === undefined) continue;
        report.figure(
          'envoy',
          `added by the gate, ${name} ${r / 1000}k/s p50/p99`,
          `${sig((l50 - f50) / 1000)} / ${sig((l99 - f99) / 1000)}`,
          'ms',
          `medians over ${rounds} rounds: with the gate p50 ${sig(l50 / 1000)} / p99 ${sig(l99 / 1000)} ms, without ext_authz ${sig(f50 / 1000)} / ${sig(f99 / 1000)} ms`,
        );
      }
    }
  } finally {
    await floor?.stop();
    await gate?.child.stop();
    await fleet.child.stop();
  }
}
