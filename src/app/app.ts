/**
 * Wires the data path together, one way:
 *   discovery → poller (status readers) → tracker (fleet snapshot)
 *   → service (decide) ← gRPC face, HTTP face; admin reads the snapshot.
 * Start-up and shutdown order live here and nowhere else.
 */
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import type { GateError } from '../core/errors.js';
import type { Config } from '../config/config.js';
import type { Discovery } from '../discovery/types.js';
import { discoveryFor } from '../discovery/from-config.js';
import { FleetTracker, type FleetChange } from '../fleet/tracker.js';
import type { FleetSnapshot } from '../fleet/types.js';
import { Poller } from '../status/poller.js';
import { podReaderFor } from '../status/reader.js';
import { StatusHttp } from '../status/http.js';
import { startGrpcServer, type GrpcServer } from '../front/grpc/server.js';
import { startHttpFace, type HttpFace } from '../front/http/server.js';
import { TlsSource, tlsFilesOf } from '../front/tls.js';
import { startAdmin, type AdminServer } from '../admin/server.js';
import { GateMetrics } from '../observe/metrics.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { GateService } from './service.js';

export interface GateOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Replaces the discovery the config names (tests). */
  readonly discovery?: Discovery;
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

/** How often time-based states (stale, start-up bounds) are re-evaluated without a report. */
const TICK_MS = 1_000;

export async function startGate(config: Config, opts: GateOptions = {}): Promise<RunningGate> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger(config.logLevel, config.redactHeaders);
  const tracker = new FleetTracker(config, clock);
  const metrics = new GateMetrics(
    () => tracker.snapshot(),
    () => tracker.droppedPlugins,
    clock,
  );
  const service = new GateService(() => tracker.snapshot(), config, clock, metrics, config.decisionLog === 'none' ? undefined : logger);

  tracker.onSnapshot((_snap, changes) => logChanges(logger, changes));

  const http = new StatusHttp({ timeoutMs: config.pollTimeoutMs });
  const poller = new Poller({
    read: podReaderFor(config, http, clock),
    onReport: (r) => {
      metrics.report(r);
      tracker.ingest(r);
    },
    onError: (error, pod) => logger.warn({ pod, code: error.code, err: error.message }, 'poll failed'),
    intervalMs: config.pollIntervalMs,
    jitterPercent: config.pollJitterPercent,
  });

  const discovery: Discovery =
    opts.discovery ??
    discoveryFor(config, {
      onError: (error) => logger.error({ code: error.code, err: error.message }, 'discovery internal error'),
      log: (fields, msg) => logger.info(fields, msg),
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

  const ticker = setInterval(() => {
    tracker.tick();
    const suppressed = service.takeSuppressed();
    if (suppressed > 0) {
      metrics.decisionLogSuppressed(suppressed);
      logger.warn({ suppressed, rate: config.decisionLogRate }, 'decision log rate limit: lines suppressed (decisions still counted in metrics)');
    }
  }, TICK_MS);
  ticker.unref();

  const started: { grpc?: GrpcServer; http?: HttpFace; admin?: AdminServer; tls?: TlsSource } = {};
  const stopAll = async (graceMs: number): Promise<void> => {
    clearInterval(ticker);
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
      metrics,
      clock,
    });
    // One TlsSource for both faces: they present the same certificate and reload together.
    const tlsFiles = tlsFilesOf(config);
    if (tlsFiles !== undefined) {
      const source = TlsSource.open(tlsFiles, { reloadMs: config.tlsReloadMs, logger });
      started.tls = source;
      metrics.tlsCertificate(() => source.material.info.notAfterMs);
    }
    const tls = started.tls;
    started.grpc = await startGrpcServer({ listen: config.grpcListen, service, config, logger, tls });
    if (config.httpListen !== undefined) started.http = await startHttpFace({ listen: config.httpListen, service, config, logger, tls });
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
      await new Promise((r) => setTimeout(r, config.drainMs));
      await stopAll(Math.min(5_000, config.drainMs));
      logger.info('stopped');
      logger.flush();
    },
    async close() {
      service.drain();
      await stopAll(0);
    },
  };
  return gate;
}

function logChanges(logger: Logger, changes: readonly FleetChange[]): void {
  for (const c of changes) {
    if (c.kind === 'pod') {
      // Losing a live pod is worth a warning; a new pod not read yet is not.
      const level = c.from === 'live' && (c.to === 'unreachable' || c.to === 'stale') ? 'warn' : 'info';
      logger[level]({ pod: c.pod, pod_name: c.name, from: c.from, to: c.to, code: c.error?.code, err: c.error?.message }, 'pod state changed');
    } else {
      logger.info({ pod: c.pod, pod_name: c.name, plugin_id: c.plugin, from: c.from, to: c.to, why: c.why }, 'plugin state changed');
    }
  }
}
