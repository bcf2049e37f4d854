/**
 * Steady traffic through the gate for the demo and the pod-loss benchmark: real
 * gRPC Checks at a fixed rate, and every allowed request really sent to the pod
 * the gate chose, the way Envoy's ORIGINAL_DST cluster would send it. Each
 * request is also sent where blind round robin would have sent it (over the
 * targets a plain gateway balances over), so the two outcomes are measured the
 * same way, not estimated.
 */
import * as grpc from '@grpc/grpc-js';
import { loadGatePackage } from '../front/grpc/protos.js';

/** What happened to a request sent to a pod. */
export type Landing = 'served' | 'not_running' | 'dead' | 'other';

export interface TrafficRecord {
  /** performance.now() when the gate's answer arrived (the decision was made before). */
  readonly at: number;
  readonly pluginId: string;
  readonly allowed: boolean;
  readonly reason: string;
  /** The pod the gate routed to (allowed requests). */
  readonly upstream: string | undefined;
  /** What the pod the gate chose answered. */
  landed: Landing | undefined;
  /** Where blind round robin sent the same request, and what happened there. */
  readonly blindTarget: string | undefined;
  blindLanded: Landing | undefined;
}

export interface TrafficOptions {
  readonly grpcPort: number;
  /** Plugins requested, in turn. */
  readonly plugins: readonly string[];
  /** Checks per second (open loop). */
  readonly rate: number;
  /** Addresses blind round robin balances over right now (e.g. the kubelet's Ready endpoints); omit for none. */
  readonly blindTargets?: () => readonly string[];
  /** Timeout of one forwarded request, ms; default 2000. */
  readonly forwardTimeoutMs?: number;
}

/** Requests leave in ticks of this many ms. */
const TICK_MS = 10;
/** A tick this much later than due counts as time the process did not run. */
const STALL_MS = 20;

type CheckClient = grpc.Client & {
  Check(req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: CheckAnswer) => void): void;
};
interface CheckAnswer {
  status?: { code?: number };
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string; string_value?: string }> };
}

export class Traffic {
  readonly records: TrafficRecord[] = [];
  errors = 0;
  /** Event-loop gaps over STALL_MS while sending: [from, to] in performance.now() ms. */
  readonly stalls: [number, number][] = [];
  private lastTick = 0;
  private readonly client: CheckClient;
  private readonly inflight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private rr = 0;

  constructor(private readonly opts: TrafficOptions) {
    const pkg = grpc.loadPackageDefinition(loadGatePackage()) as unknown as {
      envoy: { service: { auth: { v3: { Authorization: { service: grpc.ServiceDefinition } } } } };
    };
    const Ctor = grpc.makeClientConstructor(pkg.envoy.service.auth.v3.Authorization.service, 'Authorization');
    this.client = new Ctor(`127.0.0.1:${opts.grpcPort}`, grpc.credentials.createInsecure(), { 'grpc.enable_http_proxy': 0 }) as unknown as CheckClient;
  }

  /** Starts sending; requests leave in 10 ms ticks so the rate holds even when the loop is late. */
  start(): void {
    const started = performance.now();
    let sent = 0;
    this.lastTick = started;
    this.timer = setInterval(() => {
      // This process not running for a while (the machine busy elsewhere) delays everything in it,
      // the gate's reaction included: kept so figures can say how much of a window was that.
      const now = performance.now();
      if (now - this.lastTick > TICK_MS + STALL_MS) this.stalls.push([this.lastTick + TICK_MS, now]);
      this.lastTick = now;
      const due = Math.floor(((performance.now() - started) / 1000) * this.opts.rate);
      for (; sent < due; sent++) this.track(this.one());
    }, TICK_MS);
  }

  /** Milliseconds of [from, to] during which this process did not run (see `stalls`). */
  stalledWithin(from: number, to: number): number {
    let total = 0;
    for (const [a, b] of this.stalls) total += Math.max(0, Math.min(b, to) - Math.max(a, from));
    return total;
  }

  /** Stops sending and waits for every request in flight. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  close(): void {
    this.client.close();
  }

  private track(p: Promise<void>): void {
    const q = p.catch(() => {
      this.errors++;
    });
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }

  private async one(): Promise<void> {
    const n = this.seq++;
    const pluginId = this.opts.plugins[n % this.opts.plugins.length]!;
    const path = '/plugin/demo-tenant/dispatch/llm/invoke';
    const headers: Record<string, string> = { 'x-plugin-id': pluginId, 'content-type': 'application/json' };
    const targets = this.opts.blindTargets?.() ?? [];
    const blindTarget = targets.length === 0 ? undefined : targets[this.rr++ % targets.length];
    const blind = blindTarget === undefined ? Promise.resolve(undefined) : this.forward(blindTarget, path, headers);
    const req = { attributes: { request: { http: { id: `traffic-${n}`, method: 'POST', path, host: 'plugin-daemon:5002', headers } } } };
    const res = await new Promise<CheckAnswer>((resolve, reject) => {
      this.client.Check(req, { deadline: Date.now() + 2_000 }, (err, r) => (err === null && r !== undefined ? resolve(r) : reject(err ?? new Error('no answer'))));
    });
    const at = performance.now();
    const md = res.dynamic_metadata?.fields ?? {};
    const str = (k: string): string | undefined => md[k]?.stringValue ?? md[k]?.string_value;
    const allowed = (res.status?.code ?? 0) === 0;
    const upstream = allowed ? str('upstream_host') : undefined;
    const record: TrafficRecord = { at, pluginId, allowed, reason: str('reason') ?? 'unknown', upstream, landed: undefined, blindTarget, blindLanded: undefined };
    this.records.push(record);
    const [landed, blindLanded] = await Promise.all([upstream === undefined ? undefined : this.forward(upstream, path, headers), blind]);
    record.landed = landed;
    record.blindLanded = blindLanded;
  }

  private async forward(address: string, path: string, headers: Record<string, string>): Promise<Landing> {
    try {
      const res = await fetch(`http://${address}${path}`, {
        method: 'POST',
        headers,
        body: '{}',
        signal: AbortSignal.timeout(this.opts.forwardTimeoutMs ?? 2_000),
      });
      await res.arrayBuffer();
      if (res.status === 200) return 'served';
      if (res.status === 404) return 'not_running';
      return 'other';
    } catch (err) {
      // fetch wraps the socket error: nothing listening (refused) or the process dying under the request (reset).
      const code = (err as { cause?: { code?: unknown } }).cause?.code;
      return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'dead' : 'other';
    }
  }
}

/** A pod's exit, with the time the pod came back at the same address (a crash), if it did. */
export interface Exit {
  readonly address: string;
  /** performance.now() at the exit. */
  readonly at: number;
  /** performance.now() when it listened again; undefined: gone for good. */
  backAt?: number;
}

export interface LossFigures {
  /** Allowed and sent to a pod where the plugin was not running (404). */
  readonly misrouted: number;
  /** Sent to a pod whose process had exited (refused or reset). */
  readonly toDeadPod: number;
  /** Per exit: from the exit to the last request routed to that pod before it came back (0: none). */
  readonly windowsMs: readonly number[];
  readonly sent: number;
}

/** The figures of one run, for the gate's choices (`who: 'gate'`) or blind round robin's. */
export function lossFigures(records: readonly TrafficRecord[], exits: readonly Exit[], who: 'gate' | 'blind'): LossFigures {
  const target = (r: TrafficRecord): string | undefined => (who === 'gate' ? r.upstream : r.blindTarget);
  const landing = (r: TrafficRecord): Landing | undefined => (who === 'gate' ? r.landed : r.blindLanded);
  let misrouted = 0;
  let toDeadPod = 0;
  let sent = 0;
  for (const r of records) {
    if (target(r) === undefined) continue;
    sent++;
    if (landing(r) === 'not_running') misrouted++;
    else if (landing(r) === 'dead') toDeadPod++;
  }
  const windowsMs = exits.map((e) => {
    let last = e.at;
    for (const r of records) {
      if (target(r) !== e.address || r.at < e.at || (e.backAt !== undefined && r.at >= e.backAt)) continue;
      if (r.at > last) last = r.at;
    }
    return last - e.at;
  });
  return { misrouted, toDeadPod, windowsMs, sent };
}
