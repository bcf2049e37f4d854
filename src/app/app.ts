/**
 * Wires the data path together, one way:
 *   discovery → poller (status readers) → tracker (fleet snapshot)
 *   → service (decide) ← gRPC face, HTTP face; admin reads the snapshot.
 * Start-up and shutdown order live here and nowhere else.
 */
import { delay, every, systemScheduler, type Scheduler } from '../core/clock.js';
import { GateError } from '../core/errors.js';
import type { Config } from '../config/config.js';
import type { Discovery } from '../discovery/types.js';
import { discoveryFor } from '../discovery/from-config.js';
import { podSettled, settledPollInterval } from '../fleet/rules.js';
import { FleetTracker } from '../fleet/tracker.js';
import type { FleetSnapshot } from '../fleet/types.js';
import { Poller, YOUNG_READS } from '../status/poller.js';
import { podReaderFor } from '../status/reader.js';
import { StatusHttp } from '../status/http.js';
import { startGrpcServer, type GrpcServer } from '../front/grpc/server.js';
import { startHttpFace, type HttpFace } from '../front/http/server.js';
import { TlsSource } from '../front/tls.js';
import { tlsFilesOf } from '../tls/files.js';
import { startAdmin, type AdminServer } from '../admin/server.js';
import { GateMetrics } from '../observe/metrics.js';
import { backgroundErrors } from '../observe/background.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { BoundedLogSink } from '../observe/log-sink.js';
import { StateChangeLog } from '../observe/state-log.js';
import { GateService } from './service.js';

export interface GateOptions {
  /** Every clock reading and timer of the gate; default the system's (timers unref()'d). */
  readonly scheduler?: Scheduler;
  readonly logger?: Logger;
  /** Replaces the discovery the config names (tests). */
  readonly discovery?: Discovery;
  /** The poll loops' waits, if not on `scheduler` (tests: timers that never fire, so polls happen only on pollNow). */
  readonly pollScheduler?: Scheduler;
  /** false: ignore pods closing status connections, poll on the interval only (benchmarks compare both). */
  readonly pollOnClose?: boolean;
}

export interface RunningGate {
  readonly config: Config;
  readonly tracker: FleetTracker;
  readonly service: GateService;
  readonly metrics: GateMetrics;
  readonly poller: Poller;
  readonly logger: Logger;
  readonly grpcPort: number;
  readonly httpPort: number | undefined;
  readonly adminPort: number;
  snapshot(): FleetSnapshot;
  /** Resolves once the first complete poll round is done. */
  whenReady(): Promise<void>;
  /** Graceful: NOT_SERVING at once, keep answering for `drain`, then close. */
  shutdown(): Promise<void>;
  /** Immediate close (tests). */
  close(): Promise<void>;
}

/** After the drain and close, how long buffered log lines may take to reach stdout. */
const LOG_FLUSH_MS = 500;

/** How often time-based states (stale, start-up bounds) are re-evaluated without a report. */
const TICK_MS = 1_000;

export async function startGate(config: Config, opts: GateOptions = {}): Promise<RunningGate> {
  const scheduler = opts.scheduler ?? systemScheduler;
  // Logs to stdout go through a bounded buffer: a blocked reader costs dropped lines, never memory.
  const sink = opts.logger === undefined ? new BoundedLogSink(process.stdout, config.logBufferBytes) : undefined;
  const logger = opts.logger ?? createLogger(config.logLevel, config.redactHeaders, sink);
  // Every failure of background work goes through `background` (below, once metrics exist): logged and counted.
  const tracker = new FleetTracker(config, scheduler, (error) => background('tracker', error), scheduler);
  const metrics = new GateMetrics(
    () => tracker.snapshot(),
    () => tracker.droppedPlugins,
    scheduler,
  );
  const background = backgroundErrors(logger, metrics);
  if (sink !== undefined) metrics.logSink(() => sink.stats());
  const service = new GateService(() => tracker.snapshot(), config, scheduler, metrics, config.decisionLog === 'none' ? undefined : logger);
  metrics.heldRequests(() => service.heldCount());

  const stateLog = new StateChangeLog(logger, config.stateLogRate, scheduler);
  tracker.onSnapshot((_snap, changes) => stateLog.write(changes));
  // Held requests (hold-starting) whose plugin is now ready are answered from the new snapshot.
  tracker.onSnapshot(() => service.snapshotChanged());
  tracker.onSnapshot(droppedPluginsLog(logger, config.maxPlugins));

  // Idle status connections outlive the poll interval, so every pod keeps one open between polls:
  // its close is how a pod's exit is seen within milliseconds (see connectionLost below).
  const settledIntervalMs = settledPollInterval(config);
  const http = new StatusHttp({ timeoutMs: config.pollTimeoutMs, keepAliveMs: Math.max(30_000, 3 * settledIntervalMs) });
  const poller = new Poller({
    read: podReaderFor(config, http, scheduler),
    onReport: (r) => {
      metrics.report(r);
      tracker.ingest(r);
    },
    onError: (error, pod) => background('poller', error, { pod }),
    intervalMs: config.pollIntervalMs,
    // Settled pods (nothing launching) are read less often: their plugin states change only on
    // events, and their exit shows through the closed connection. Pods in start-up keep the pace.
    intervalOf: (address) => (podSettled(tracker.snapshot().pods.get(address)) ? settledIntervalMs : config.pollIntervalMs),
    jitterPercent: config.pollJitterPercent,
    scheduler: opts.pollScheduler ?? scheduler,
    // A daemon that closes idle keep-alives on its own costs at most one extra poll per half interval.
    lossPollGapMs: config.pollIntervalMs / 2,
    youngReads: YOUNG_READS,
  });
  // A pod closed a status connection: poll it now. If its process exited, that poll is refused
  // and the pod is unreachable at once (README, P2a), instead of after several interval polls.
  http.onConnectionLost((address) => {
    metrics.connectionLost();
    if (opts.pollOnClose !== false) poller.connectionLost(address);
  });

  const discovery: Discovery =
    opts.discovery ??
    discoveryFor(config, {
      onError: (error) => background('discovery', error),
      log: (fields, msg) => logger.info(fields, msg),
      scheduler,
    });
  let lastDiscoveryError: GateError | undefined;
  discovery.start((addresses, error, endpoints) => {
    if (error !== undefined) {
      metrics.discoveryError();
      if (lastDiscoveryError?.code !== error.code) logger.warn({ code: error.code, err: error.message, pods: addresses.length }, 'discovery failing; keeping the last good set');
    } else if (lastDiscoveryError !== undefined) logger.info({ pods: addresses.length }, 'discovery recovered');
    lastDiscoveryError = error;
    tracker.setPods(addresses, error, endpoints);
    poller.setTargets(addresses);
  });

  const stopTicker = every(scheduler, TICK_MS, () => {
    try {
      tick();
    } catch (err) {
      background('ticker', GateError.from(err));
    }
  });
  function tick(): void {
    tracker.tick();
    const states = stateLog.takeSuppressed();
    if (states.total > 0) {
      metrics.stateLogSuppressed(states.total);
      logger.warn({ suppressed: states.total, to: states.byState, rate: config.stateLogRate }, 'state log rate limit: plugin state change lines suppressed (see /status for the current states)');
    }
    const suppressed = service.takeSuppressed();
    if (suppressed > 0) {
      metrics.decisionLogSuppressed(suppressed);
      logger.warn({ suppressed, rate: config.decisionLogRate }, 'decision log rate limit: lines suppressed (decisions still counted in metrics)');
    }
    const dropped = sink?.takeDropped() ?? 0;
    // This line may be dropped too while stdout stays blocked; the counter is the record.
    if (dropped > 0) logger.warn({ dropped, buffer_bytes: config.logBufferBytes }, 'stdout is not keeping up: log lines dropped');
  }

  const started: { grpc?: GrpcServer; http?: HttpFace; admin?: AdminServer; tls?: TlsSource } = {};
  const stopAll = async (graceMs: number): Promise<void> => {
    stopTicker();
    started.tls?.close();
    await Promise.allSettled([
      started.grpc?.close(graceMs),
      started.http?.close(),
      started.admin?.close(),
      discovery.stop(),
      poller.stop(),
    ]);
    await http.close().catch(() => undefined);
  };
  try {
    started.admin = await startAdmin(config.adminListen, {
      snapshot: () => tracker.snapshot(),
      serving: () => service.serving(),
      draining: () => service.isDraining(),
      held: () => service.heldByPlugin(),
      metrics,
      clock: scheduler,
    });
    // One TlsSource for both faces: they present the same certificate and reload together.
    const tlsFiles = tlsFilesOf(config);
    if (tlsFiles !== undefined) {
      const source = TlsSource.open(tlsFiles, { reloadMs: config.tlsReloadMs, logger, scheduler });
      started.tls = source;
      metrics.tlsCertificate(() => source.material.info.notAfterMs);
    }
    const tls = started.tls;
    started.grpc = await startGrpcServer({ listen: config.grpcListen, service, config, logger, tls, scheduler, onConnectionRefused: () => metrics.grpcConnectionRefused() });
    if (config.httpListen !== undefined) started.http = await startHttpFace({ listen: config.httpListen, service, config, logger, tls, scheduler });
  } catch (err) {
    await stopAll(0);
    throw err;
  }

  logger.info(
    {
      grpc: started.grpc.port,
      http: started.http?.port ?? null,
      admin: started.admin.port,
      tls: started.tls === undefined ? 'off' : started.tls.mutual ? 'mutual' : 'on',
      discovery: config.discovery,
      sources: config.sources,
      dry_run: config.dryRun,
    },
    'plugin-gate listening',
  );

  let readyPromise: Promise<void> | undefined;
  const gate: RunningGate = {
    config,
    tracker,
    service,
    metrics,
    poller,
    logger,
    grpcPort: started.grpc.port,
    httpPort: started.http?.port,
    adminPort: started.admin.port,
    snapshot: () => tracker.snapshot(),
    whenReady() {
      readyPromise ??= new Promise<void>((resolve) => {
        if (tracker.snapshot().complete) return resolve();
        tracker.onSnapshot((snap) => {
          if (snap.complete) resolve();
        });
      });
      return readyPromise;
    },
    async shutdown() {
      service.drain();
      started.grpc?.setServing(false);
      logger.info({ drain_ms: config.drainMs }, 'draining: health NOT_SERVING, still answering checks');
      // On the gate's scheduler: a test moves time through the drain instead of waiting it out.
      if (config.drainMs > 0) await delay(scheduler, config.drainMs);
      await stopAll(Math.min(5_000, config.drainMs));
      logger.info('stopped');
      // stdout gets a short, bounded time to take what is buffered: a reader that
      // never reads must not keep a stopped gate alive.
      if (sink !== undefined) await sink.flushWithin(LOG_FLUSH_MS);
      else logger.flush();
    },
    async close() {
      service.drain();
      await stopAll(0);
    },
  };
  return gate;
}

/** One warning when a pod starts having plugins past max-plugins, one line when it stops: never per snapshot. */
function droppedPluginsLog(logger: Logger, maxPlugins: number): (snap: FleetSnapshot) => void {
  const told = new Set<string>();
  return (snap) => {
    const dropping = new Set<string>();
    for (const view of snap.pods.values()) {
      const dropped = snap.droppedPlugins.get(view.address) ?? 0;
      if (dropped === 0 && view.droppedSeries === 0) continue;
      dropping.add(view.address);
      if (told.has(view.address)) continue;
      told.add(view.address);
      logger.warn(
        { pod: view.address, dropped, dropped_series: view.droppedSeries, max_plugins: maxPlugins },
        'plugins past max-plugins on this pod are not tracked (decided as unknown); see /status',
      );
    }
    for (const pod of told) {
      if (dropping.has(pod)) continue;
      told.delete(pod);
      logger.info({ pod }, 'all plugins of this pod are tracked again');
    }
  };
}

