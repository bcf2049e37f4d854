/**
 * The probe's HTTP face, for the kubelet and for people: /readyz (200 or 503,
 * the verdict in one line and what is missing below it), /status (the same
 * status code, JSON for the daemon), /metrics, /healthz (the probe answers).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HostPort } from '../core/address.js';
import { startPlainServer, type PlainServer } from '../admin/server.js';
import { podJson } from '../admin/status.js';
import type { PodView } from '../fleet/types.js';
import type { Latch, Missing, ReadinessPolicy, Verdict } from './policy.js';
import type { ProbeMetrics } from './metrics.js';

export interface ProbeServerDeps {
  readonly target: string;
  readonly policy: ReadinessPolicy;
  /** Evaluates readiness now. */
  readonly evaluate: () => Verdict;
  readonly view: () => PodView | undefined;
  readonly latch: () => Latch | undefined;
  readonly metrics: ProbeMetrics;
  readonly now: () => number;
}

export type ProbeServer = PlainServer;

export function startProbeServer(listen: HostPort, deps: ProbeServerDeps): Promise<ProbeServer> {
  return startPlainServer(listen, (req, res) => handle(req, res, deps));
}

async function handle(req: IncomingMessage, res: ServerResponse, deps: ProbeServerDeps): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  switch (path) {
    case '/healthz':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    case '/readyz': {
      const v = deps.evaluate();
      const lines = [v.message, ...v.missing.map((m) => `  ${m.pluginId ?? 'daemon'}: ${m.state}: ${m.why}`)];
      res.writeHead(v.ready ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(lines.join('\n') + '\n');
      return;
    }
    case '/status': {
      const v = deps.evaluate();
      res
        .writeHead(v.ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(JSON.stringify(probeStatus(deps, v), null, 2) + '\n');
      return;
    }
    case '/metrics': {
      const text = await deps.metrics.text();
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(text);
      return;
    }
    default:
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /readyz /status /metrics /healthz\n');
  }
}

/** `/status` of the probe: the verdict, what is missing, the latch, the policy and the daemon's view. */
export function probeStatus(deps: Pick<ProbeServerDeps, 'target' | 'policy' | 'view' | 'latch' | 'now'>, v: Verdict): unknown {
  const latch = deps.latch();
  const view = deps.view();
  return {
    target: deps.target,
    ready: v.ready,
    reason: v.reason,
    message: v.message,
    missing: v.missing.map(missingJson),
    counts: v.counts,
    latch: latch === undefined ? null : { since: new Date(latch.at).toISOString(), process_start: latch.processStartMs === undefined ? null : new Date(latch.processStartMs).toISOString() },
    policy: {
      rule: deps.policy.require.length > 0 || deps.policy.minRunning !== undefined ? 'explicit' : 'all-settled',
      require: deps.policy.require,
      min_running: deps.policy.minRunning ?? null,
      failed: deps.policy.failed,
      latch: deps.policy.latch,
    },
    daemon: view === undefined ? null : podJson(view, deps.now()),
  };
}

function missingJson(m: Missing): unknown {
  return { plugin_id: m.pluginId ?? null, state: m.state, why: m.why };
}
