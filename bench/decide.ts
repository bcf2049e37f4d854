/**
 * decide: the pure decision and the in-process layers around it, on snapshots
 * built by the real FleetTracker from synthetic pod reports.
 */
import { decide, denyMessage } from '../src/decide/decide.js';
import { envelope } from '../src/decide/envelope.js';
import type { GateRequest } from '../src/decide/types.js';
import type { FleetSnapshot } from '../src/fleet/types.js';
import { GateService } from '../src/app/service.js';
import { GateMetrics } from '../src/observe/metrics.js';
import { systemScheduler } from '../src/core/clock.js';
import { HeaderCollector, makeGateRequest } from '../src/front/service.js';
import { decodeCheckRequest } from '../src/front/grpc/request.js';
import { createResponseRenderer } from '../src/front/grpc/response.js';
import { authorizationService } from '../src/front/grpc/protos.js';
import { uniqueIdentifierFor } from '../src/sim/index.js';
import type { BenchContext } from './context.js';
import { dispatchCheckRequest, encodeCheckRequest } from './lib/envoy.js';
import { micro, type MicroOptions } from './lib/micro.js';
import { rate, sig } from './lib/report.js';
import { podReport, syntheticFleet, T0, type SyntheticFleet } from './lib/synthetic.js';

const TENANT_PATH = '/plugin/6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00/dispatch/tool/invoke';

function request(path: string, headers: Record<string, string>): GateRequest {
  const h = new HeaderCollector();
  // What Envoy passes besides the plugin headers, so lookups run over a realistic map.
  const base: Record<string, string> = {
    ':authority': 'plugin-daemon:5002',
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/json',
    'user-agent': 'python-httpx/0.27.2',
    'x-api-key': 'k-0123456789abcdef',
    'x-request-id': '3b0f6c1e-8d2a-4c7b-9e5f-1a2b3c4d5e6f',
    accept: '*/*',
  };
  for (const [k, v] of Object.entries({ ...base, ...headers })) h.add(k, v);
  return makeGateRequest({ method: 'POST', path, headers: h, requestId: '3b0f6c1e-8d2a-4c7b-9e5f-1a2b3c4d5e6f' });
}

/** A power-of-two pool of requests, so the hot loop indexes with a mask. */
function pool(make: (i: number) => GateRequest, size = 64): GateRequest[] {
  return Array.from({ length: size }, (_, i) => make(i));
}

export async function benchDecide(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const opts: MicroOptions = ctx.quick ? { warmupMs: 30, roundMs: 15, rounds: 3 } : { warmupMs: 300, roundMs: 100, rounds: 9 };
  const scales: [number, number][] = ctx.quick ? [[10, 200]] : [[10, 200], [50, 1000], [1000, 300]];
  report.section('decide', 'the pure decision and the in-process check path', [
    'snapshots: synthetic pod reports (91 % of plugins running, 5 % launching, 2 % given up, 2 % retrying;',
    'every 7th running plugin still launching on one pod) fed through the real FleetTracker;',
    `timing: ${opts.warmupMs} ms warm-up, then ${opts.rounds} rounds of ~${opts.roundMs} ms each; figure = median ns/op, spread = min–max over rounds;`,
    'requests are pre-built GateRequests (64 distinct plugins per scenario, cycled), as the faces hand them over.',
  ]);

  for (const [pods, plugins] of scales) {
    const fleet = syntheticFleet(pods, plugins);
    const tag = `${pods}x${plugins}`;
    const snap = fleet.tracker.snapshot();
    const now = T0 + 1000;
    const cfg = fleet.config;
    report.note(`snapshot ${tag}: ${snap.pods.size} pods, ${snap.plugins.size} plugins, ${snap.livePods.length} live, complete=${snap.complete}`);

    const ready = fleet.ids.ready.filter((_, i) => i % 7 !== 0);
    const scenarios: { name: string; reason: string; reqs: GateRequest[]; note: string; snap?: FleetSnapshot }[] = [
      {
        name: 'plugin_ready',
        reason: 'plugin_ready',
        reqs: pool((i) => request(TENANT_PATH, { 'x-plugin-id': ready[(i * 7) % ready.length]! })),
        note: 'x-plugin-id, allow + route',
      },
      {
        name: 'plugin_ready (v2 unique id)',
        reason: 'plugin_ready',
        reqs: pool((i) =>
          request('/v2/invoke/dispatch/tool/invoke', { 'x-plugin-unique-identifier': uniqueIdentifierFor(ready[(i * 7) % ready.length]!, '0.2.1') }),
        ),
        note: 'unique-id parse',
      },
      {
        name: 'plugin_starting',
        reason: 'plugin_starting',
        reqs: pool((i) => request(TENANT_PATH, { 'x-plugin-id': fleet.ids.starting[i % fleet.ids.starting.length]! })),
        note: 'deny, answer and body memoised per snapshot',
      },
      {
        name: 'not_plugin_scoped',
        reason: 'not_plugin_scoped',
        reqs: pool((i) => request(`/plugin/6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00/management/list?page=${i}`, {})),
        note: 'any live pod',
      },
      {
        name: 'invalid_plugin_id',
        reason: 'invalid_plugin_id',
        reqs: pool((i) => request(TENANT_PATH, { 'x-plugin-id': `Not A Valid Id ${i}!` })),
        note: 'deny 400, cached',
      },
    ];

    // A fleet restarted a moment ago: every pod in start-up, so a plugin no pod
    // reports yet may be queued behind a launch limit (maybeQueued).
    const young = syntheticFleet(pods, plugins, {}, 5_000);
    const youngSnap = young.tracker.snapshot();
    scenarios.push({
      name: 'plugin_starting (queued, fleet in start-up)',
      reason: 'plugin_starting',
      reqs: pool((i) => request(TENANT_PATH, { 'x-plugin-id': `author-${i % 37}/not-reported-${i}` })),
      note: `${youngSnap.startupPods.length} pods in start-up; deny memoised per snapshot`,
      snap: youngSnap,
    });

    for (const s of scenarios) {
      const snap = s.snap ?? fleet.tracker.snapshot();
      const got = decide(s.reqs[0]!, snap, cfg, now, 0).reason;
      if (got !== s.reason) report.problem('decide', `${s.name} at ${tag}: expected ${s.reason}, decision was ${got}`);
      const reqs = s.reqs;
      const r = micro((n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          const d = decide(reqs[i & 63]!, snap, cfg, now, i);
          acc += d.allow ? 1 : 2;
        }
        return acc;
      }, opts);
      report.figure('decide', `${s.name} ${tag}`, sig(r.median), 'ns/op', `${rate(1e9 / r.median)} ops/s; spread ${sig(r.min)}–${sig(r.max)} ns; ${s.note}`);
    }

    // The miss that the deny memo saves: message + envelope, once per (snapshot, reason, plugin, wait).
    {
      const ids = fleet.ids.starting;
      const r = micro((n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          const m = denyMessage(snap, 'plugin_starting', ids[i % ids.length], 5);
          acc += envelope(-500, 'PluginDaemonInternalServerError', m).length;
        }
        return acc;
      }, opts);
      report.figure('decide', `plugin_starting uncached ${tag}`, sig(r.median), 'ns/op', `denyMessage + envelope: the first deny per snapshot; spread ${sig(r.min)}–${sig(r.max)}`);
    }

    // GateService.check: decide + decision id + metrics counter + histogram (decision log off).
    {
      const metrics = new GateMetrics(
        () => fleet.tracker.snapshot(),
        () => 0,
      );
      const service = new GateService(() => fleet.tracker.snapshot(), { ...cfg, decisionLog: 'none' }, { ...systemScheduler, now: () => now }, metrics, undefined);
      const reqs = scenarios[0]!.reqs;
      const r = micro((n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += service.check(reqs[i & 63]!, 'grpc').decisionId.length;
        return acc;
      }, opts);
      report.figure('decide', `GateService.check plugin_ready ${tag}`, sig(r.median), 'ns/op', `${rate(1e9 / r.median)} ops/s; + counter + histogram + decision id, no log; spread ${sig(r.min)}–${sig(r.max)}`);

      // Everything a gRPC Check costs outside grpc-js: decode, check, encode (the gate's own codec).
      const svc = authorizationService();
      const method = svc['Check']!;
      const render = createResponseRenderer({ routeHeader: undefined });
      const bytes = ready.slice(0, 64).map((id) => encodeCheckRequest(dispatchCheckRequest({ pluginId: id })));
      const first = service.check(decodeCheckRequest(bytes[0]!), 'grpc');
      if (first.decision.reason !== 'plugin_ready') report.problem('decide', `front path at ${tag}: decision was ${first.decision.reason}`);
      const front = micro((n) => {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          const { decision, decisionId } = service.check(decodeCheckRequest(bytes[i & 63]!), 'grpc');
          acc += render(decision, decisionId).length;
        }
        return acc;
      }, opts);
      report.figure(
        'decide',
        `front path plugin_ready ${tag}`,
        sig(front.median),
        'ns/op',
        `${rate(1e9 / front.median)} ops/s; CheckRequest bytes (${bytes[0]!.length}) → GateRequest → check → CheckResponse bytes: all per-call work but grpc-js/HTTP/2; spread ${sig(front.min)}–${sig(front.max)}`,
      );
      if (pods === scales[0]![0]) {
        // What the codec replaced: protobufjs (proto-loader) decoding the same request and encoding the same answer as objects.
        const answers = bytes.map((b) => {
          const { decision, decisionId } = service.check(decodeCheckRequest(b), 'grpc');
          return method.responseDeserialize(render(decision, decisionId));
        });
        const codec = micro((n) => {
          let acc = 0;
          for (let i = 0; i < n; i++) {
            const msg = method.requestDeserialize(bytes[i & 63]!) as object;
            acc += Object.keys(msg).length + method.responseSerialize(answers[i & 63]!).length;
          }
          return acc;
        }, opts);
        report.figure('decide', `protobufjs decode + encode alone ${tag}`, sig(codec.median), 'ns/op', `for comparison: what the gate's codec replaced, decode of the same CheckRequest and encode of the same answer as message objects`);
      }
    }

    benchIngest(ctx, fleet, tag);
  }
}

/**
 * The poll path: every pod report makes the tracker build a whole new snapshot
 * (all pods × all plugins), so a poll round costs pods × build.
 */
function benchIngest(ctx: BenchContext, fleet: SyntheticFleet, tag: string): void {
  const { report } = ctx;
  const pods = fleet.addresses.length;
  const rounds = ctx.quick ? 2 : 5;
  const perRound: number[] = [];
  let at = T0;
  // One untimed round first (JIT warm-up).
  for (let r = -1; r < rounds; r++) {
    at += 2000;
    fleet.clock.set(at);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < pods; i++) fleet.tracker.ingest(podReport(fleet.addresses[i]!, fleet.metrics[i]!, at));
    const dt = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r >= 0) perRound.push(dt / pods);
  }
  perRound.sort((a, b) => a - b);
  const med = perRound[Math.floor(perRound.length / 2)]!;
  const roundMs = med * pods;
  report.figure(
    'decide',
    `tracker.ingest ${tag}`,
    sig(med),
    'ms/report',
    `one pod report → new snapshot of all ${pods} pods; a poll round = ${pods} reports = ${sig(roundMs)} ms every 2 s ≈ ${sig((roundMs / 2000) * 100)} % of a core`,
  );
}
