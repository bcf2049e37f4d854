/**
 * Prometheus metrics (prom-client, own registry). Hot-path work is a counter
 * increment on a pre-bound child and one histogram observation; every label
 * value comes from a closed set (faces, reasons, sources, error codes) or from
 * what the daemons report (pods, plugins, already capped by the tracker) —
 * never from request input. Fleet gauges are computed at scrape time.
 */
import client from 'prom-client';
import { systemScheduler, type Clock } from '../core/clock.js';
import { ERROR_CODES, type ErrorCode } from '../core/errors.js';
import { ALLOW_REASONS, REASONS, type Decision, type Reason } from '../decide/types.js';
import type { FleetSnapshot, PodView } from '../fleet/types.js';
import type { PodReport, SourceName, SourceResult } from '../status/types.js';
import { HOLD_OUTCOMES, type HoldOutcome } from '../app/hold.js';

export type Face = 'grpc' | 'http';

/** Where background work runs: the label set of plugin_gate_background_errors_total. */
export type BackgroundSource = 'poller' | 'discovery' | 'tracker' | 'ticker';

export class GateMetrics {
  readonly registry = new client.Registry();
  private readonly decisionChildren = new Map<string, client.Counter.Internal>();
  private readonly latency: client.Histogram;
  private readonly pollCount: PollCounter;
  private readonly discoveryErrors: client.Counter;
  private readonly backgroundErrors: client.Counter<'source' | 'code'>;
  private readonly logSuppressed: client.Counter;
  private readonly grpcRefused = new client.Counter({
    name: 'plugin_gate_grpc_connections_refused_total',
    help: 'gRPC connections refused because grpc-max-connections were open.',
    registers: [this.registry],
  });
  private readonly stateSuppressed = new client.Counter({
    name: 'plugin_gate_state_log_suppressed_total',
    help: 'Plugin state change log lines dropped by state-log-rate (the states themselves are in /status).',
    registers: [this.registry],
  });
  private readonly connectionLosses: client.Counter;
  private readonly holdOutcomes = new Map<HoldOutcome, client.Counter.Internal>();
  private readonly holdWait: client.Histogram;
  private heldNow: () => number = () => 0;

  constructor(snapshot: () => FleetSnapshot, droppedPlugins: () => number, clock: Clock = systemScheduler) {
    const decisions = new client.Counter({
      name: 'plugin_gate_decisions_total',
      help: 'Check decisions by face, decision (allow/deny) and reason.',
      labelNames: ['face', 'decision', 'reason'] as const,
      registers: [this.registry],
    });
    for (const face of ['grpc', 'http'] as const) {
      for (const reason of REASONS) {
        const decision = isAllowReason(reason) ? 'allow' : 'deny';
        this.decisionChildren.set(face + reason, decisions.labels(face, decision, reason));
      }
    }
    this.latency = new client.Histogram({
      name: 'plugin_gate_check_duration_seconds',
      help: 'Time to decide one Check, from request parsed to answer built.',
      buckets: [5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2],
      registers: [this.registry],
    });
    this.pollCount = new PollCounter(this.registry);
    this.logSuppressed = new client.Counter({
      name: 'plugin_gate_decision_log_suppressed_total',
      help: 'Decision log lines dropped by decision-log-rate (the decisions themselves are counted above).',
      registers: [this.registry],
    });
    this.connectionLosses = new client.Counter({
      name: 'plugin_gate_connection_losses_total',
      help: 'Status connections a daemon pod closed (FIN or RST); each asks for a poll of that pod at once (rate-limited per pod).',
      registers: [this.registry],
    });
    const outcomes = new client.Counter({
      name: 'plugin_gate_hold_outcomes_total',
      help: 'Held requests (hold-starting) by how the wait ended: released (allowed), denied (the plugin failed or lost its pods), expired, shed (max-held), cancelled (caller gone), drained.',
      labelNames: ['outcome'] as const,
      registers: [this.registry],
    });
    for (const o of HOLD_OUTCOMES) this.holdOutcomes.set(o, outcomes.labels(o));
    this.holdWait = new client.Histogram({
      name: 'plugin_gate_hold_wait_seconds',
      help: 'How long held requests waited, by outcome (shed requests never wait).',
      labelNames: ['outcome'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers: [this.registry],
    });
    const held = (): number => this.heldNow();
    new client.Gauge({
      name: 'plugin_gate_held_requests',
      help: 'Requests held now, waiting for their plugin to start (hold-starting).',
      registers: [this.registry],
      collect() {
        this.set(held());
      },
    });
    this.backgroundErrors = new client.Counter({
      name: 'plugin_gate_background_errors_total',
      help: 'Failures of background work that were caught and survived, by where (poller, discovery, tracker, ticker) and error code.',
      labelNames: ['source', 'code'],
      registers: [this.registry],
    });
    this.discoveryErrors = new client.Counter({
      name: 'plugin_gate_discovery_errors_total',
      help: 'Failed discovery rounds (the last good set of pods is kept).',
      registers: [this.registry],
    });

    const reg = [this.registry];
    new client.Gauge({
      name: 'plugin_gate_ready',
      help: '1 once the first complete poll round has finished.',
      registers: reg,
      collect() {
        this.set(snapshot().complete ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_pod_live',
      help: 'Per daemon pod: 1 live, 0 otherwise (state label says which; pod_name when discovery knows it).',
      labelNames: ['pod', 'pod_name', 'state'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const p of snapshot().pods.values()) this.set(podLabels(p, { state: p.state }), p.state === 'live' ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_pod_report_age_seconds',
      help: 'Per daemon pod: seconds since the last good status report.',
      labelNames: ['pod', 'pod_name'] as const,
      registers: reg,
      collect() {
        this.reset();
        const now = clock.now();
        for (const p of snapshot().pods.values()) {
          if (p.lastSuccessAt !== undefined) this.set(podLabels(p, {}), (now - p.lastSuccessAt) / 1000);
        }
      },
    });
    new client.Gauge({
      name: 'plugin_gate_pod_in_startup',
      help: 'Per live daemon pod: 1 while it is still launching plugins.',
      labelNames: ['pod', 'pod_name'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const p of snapshot().livePods) this.set(podLabels(p, {}), p.inStartup ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_plugin_pods',
      help: 'Per plugin: live pods where it is ready, starting or failed (labels only for plugins the daemons report, capped by max-plugins).',
      labelNames: ['plugin_id', 'state'] as const,
      registers: reg,
      collect() {
        this.reset();
        for (const pv of snapshot().plugins.values()) {
          this.labels(pv.id, 'ready').set(pv.readyPods.length);
          this.labels(pv.id, 'starting').set(pv.startingPods.length);
          this.labels(pv.id, 'failed').set(pv.failedPods.length);
        }
      },
    });
    new client.Gauge({
      name: 'plugin_gate_plugins_unlabelled',
      help: 'Plugin sightings past max-plugins in the latest snapshot (counted, not indexed or labelled).',
      registers: reg,
      collect() {
        this.set(droppedPlugins());
      },
    });
    client.collectDefaultMetrics({ register: this.registry, prefix: 'plugin_gate_' });
  }

  decision(face: Face, d: Decision, seconds: number): void {
    this.decisionChildren.get(face + d.reason)?.inc();
    this.latency.observe(seconds);
  }

  report(r: PodReport): void {
    this.pollCount.report(r);
  }

  /** The source of plugin_gate_held_requests (0 until set). */
  heldRequests(count: () => number): void {
    this.heldNow = count;
  }

  /** A held request's wait ended; seconds undefined for a shed request, which never waited. */
  holdEnded(outcome: HoldOutcome, seconds: number | undefined): void {
    this.holdOutcomes.get(outcome)?.inc();
    if (seconds !== undefined) this.holdWait.labels(outcome).observe(seconds);
  }

  /** A gRPC connection refused at grpc-max-connections. */
  grpcConnectionRefused(): void {
    this.grpcRefused.inc();
  }

  /** Plugin state change lines dropped by state-log-rate. */
  stateLogSuppressed(n: number): void {
    this.stateSuppressed.inc(n);
  }

  decisionLogSuppressed(n: number): void {
    this.logSuppressed.inc(n);
  }

  connectionLost(): void {
    this.connectionLosses.inc();
  }

  discoveryError(): void {
    this.discoveryErrors.inc();
  }

  /** A failure of background work (see BackgroundErrors), by where it happened and its code: both bounded sets. */
  backgroundError(source: BackgroundSource, code: ErrorCode): void {
    this.backgroundErrors.inc({ source, code });
  }

  /**
   * Registers plugin_gate_tls_cert_expiry_seconds, read at scrape time so it
   * follows certificate reloads. Only called when TLS is on: without TLS the
   * series is absent rather than a misleading 0.
   */
  tlsCertificate(notAfterMs: () => number): void {
    new client.Gauge({
      name: 'plugin_gate_tls_cert_expiry_seconds',
      help: 'Unix time at which the certificate served on the gRPC and HTTP faces expires.',
      registers: [this.registry],
      collect() {
        this.set(notAfterMs() / 1000);
      },
    });
  }

  /** Registers the log sink's series, read at scrape time: lines dropped, bytes waiting for stdout. */
  logSink(stats: () => { readonly dropped: number; readonly buffered: number }): void {
    new client.Counter({
      name: 'plugin_gate_log_lines_dropped_total',
      help: 'Log lines dropped because stdout did not keep up (log-buffer-bytes full) or was gone.',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(stats().dropped);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_log_buffer_bytes',
      help: 'Log bytes written but not yet taken by the reader of stdout (at most log-buffer-bytes).',
      registers: [this.registry],
      collect() {
        this.set(stats().buffered);
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * `plugin_gate_polls_total{source,code}`: every status read by source and
 * result, children bound up front. Shared by the gate and the probe.
 */
export class PollCounter {
  private readonly children = new Map<string, client.Counter.Internal>();

  constructor(registry: client.Registry) {
    const polls = new client.Counter({
      name: 'plugin_gate_polls_total',
      help: 'Status reads by source and result code (ok or an error code).',
      labelNames: ['source', 'code'] as const,
      registers: [registry],
    });
    for (const source of ['metrics', 'health-check', 'ready-check'] as const) {
      for (const code of ['ok', ...ERROR_CODES]) this.children.set(source + code, polls.labels(source, code));
    }
  }

  report(r: PodReport): void {
    this.source('metrics', r.metrics);
    this.source('health-check', r.health);
    this.source('ready-check', r.ready);
  }

  private source(name: SourceName, res: SourceResult<unknown> | undefined): void {
    if (res === undefined) return;
    const code: 'ok' | ErrorCode = res.ok ? 'ok' : res.error.code;
    this.children.get(name + code)?.inc();
  }
}

/**
 * A pod's labels: its address, plus its name when discovery knows one (Kubernetes). Both come from
 * discovery, never from requests, and the tracker forgets removed pods, so the set stays bounded.
 */
function podLabels<T extends Record<string, string>>(p: PodView, more: T): T & { pod: string; pod_name?: string } {
  return p.name === undefined ? { pod: p.address, ...more } : { pod: p.address, pod_name: p.name, ...more };
}

function isAllowReason(r: Reason): boolean {
  return (ALLOW_REASONS as readonly string[]).includes(r);
}
