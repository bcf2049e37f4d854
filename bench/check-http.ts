/**
 * check-http: the HTTP forward-auth face end to end on loopback, as nginx's
 * auth_request calls it (deploy/nginx): a bodiless GET of the original URI
 * with X-Original-URI / X-Original-Method, over HTTP/1.1 keep-alive
 * connections, one request in flight per connection.
 */
import type { BenchContext } from './context.js';
import { startGateCli, startSimCli, waitReady } from './lib/gate.js';
import { h2loadVersion } from './lib/h2load.js';
import { pinning, sleep } from './lib/proc.js';
import { loadStep, validateExact, type Step } from './lib/wire.js';

const PLUGIN = 'langgenius/openai';
const URI = '/plugin/6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00/dispatch/tool/invoke';
const HEADERS = [
  `x-original-uri: ${URI}`,
  'x-original-method: POST',
  `x-plugin-id: ${PLUGIN}`,
  'content-type: application/json',
  'user-agent: python-httpx/0.27.2',
  'x-request-id: 3b0f6c1e-8d2a-4c7b-9e5f-1a2b3c4d5e6f',
];

export async function benchCheckHttp(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const durationS = ctx.quick ? 2 : 5;
  const warmupS = 1;
  const rates = ctx.quick ? [2000] : [2000, 5000];
  report.section('check-http', 'HTTP forward-auth end to end (loopback, HTTP/1.1)', [
    `gate and fleet as in check-grpc; load: h2load --h1 ${pinning.available ? 'on core 0' : ''}, one request in flight per keep-alive connection (like nginx's upstream keepalive pool);`,
    `request: nginx auth_request style GET ${URI} with X-Original-URI/-Method and x-plugin-id ${PLUGIN}: a plugin_ready allow (200 + x-plugin-gate-upstream);`,
    `open loop at ${rates.join(', ')} req/s (connections = rate/50: 50 req/s each, well within what one connection carries one at a time), then closed loop on 32 connections.`,
  ]);
  if (h2loadVersion() === undefined) {
    report.problem('check-http', 'h2load not installed (apt-get install nghttp2-client): skipped');
    return;
  }
  const fleet = await startSimCli(['--pods', '3', '--scenario', 'basic']);
  let gate: Awaited<ReturnType<typeof startGateCli>> | undefined;
  try {
    gate = await startGateCli(fleet.targets);
    await waitReady(gate.adminPort, 15_000);
    const url = `http://127.0.0.1:${gate.httpPort}${URI}`;
    const deadline = Date.now() + 20_000;
    let last = '';
    for (;;) {
      const res = await fetch(url, { headers: Object.fromEntries(HEADERS.map((h) => h.split(': ') as [string, string])), signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      const reason = res.headers.get('x-plugin-gate-reason');
      const upstream = res.headers.get('x-plugin-gate-upstream');
      last = `${res.status} ${reason} ${upstream}`;
      if (res.status === 200 && reason === 'plugin_ready') {
        const onFleet = fleet.targets.split(',').includes(upstream ?? '');
        report.note(`sample request: HTTP ${res.status}, x-plugin-gate-reason ${reason}, x-plugin-gate-upstream ${upstream} (${onFleet ? 'a fleet pod' : 'NOT a fleet pod'})`);
        if (!onFleet) report.problem('check-http', `sample allow routed to ${upstream}, not a fleet pod`);
        break;
      }
      if (Date.now() > deadline) throw new Error(`no plugin_ready answer within 20 s (last: ${last})`);
      await sleep(200);
    }
    const target = { bench: 'check-http', pid: gate.child.pid, url, headers: HEADERS, h1: true, admin: { port: gate.adminPort, key: 'http/plugin_ready' } };
    await validateExact(ctx, target, 2000);
    const steps: Step[] = rates.map((r) => ({ name: `gate open ${r / 1000}k/s`, rate: r, clients: Math.ceil(r / 50), streams: 1 }));
    steps.push({ name: 'gate closed loop', rate: undefined, clients: 32, streams: 1 });
    for (const s of steps) await loadStep(ctx, target, s, durationS, warmupS);
  } finally {
    await gate?.child.stop();
    await fleet.child.stop();
  }
}
