/**
 * `plugin-gate probe`, wired: the gate's status readers and poller read one
 * daemon, the gate's tracker turns the reports into its pod view (same state
 * rules), the policy decides readiness from it, and a small HTTP server tells
 * the kubelet. One way again: reader → tracker → policy → /readyz.
 */
import { every, systemScheduler, type Scheduler } from '../core/clock.js';
import { FleetTracker, type FleetChange } from '../fleet/tracker.js';
import type { FleetSnapshot } from '../fleet/types.js';
import { Poller } from '../status/poller.js';
import { podReaderFor } from '../status/reader.js';
import { StatusHttp } from '../status/http.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { BoundedLogSink } from '../observe/log-sink.js';
import { trackerConfigOf, type ProbeConfig } from './config.js';
import { ProbeMetrics } from './metrics.js';
import { ProbeState, type Transition } from './state.js';
import { startProbeServer, type ProbeServer } from './server.js';
import type { Verdict } from './policy.js';

export interface ProbeOptions {
  /** Every clock reading and timer of the probe; default the system's (timers unref()'d). */
  readonly scheduler?: Scheduler;
  readonly logger?: Logger;
  /** The poll loop's waits, if not on `scheduler` (tests: waits that never end, so polls happen only on pollNow). */
  readonly pollScheduler?: Scheduler;
}

export interface RunningProbe {
  readonly config: ProbeConfig;
  readonly port: number;
  readonly logger: Logger;
  readonly tracker: FleetTracker;
  readonly state: ProbeState;
  snapshot(): FleetSnapshot;
  /** Readiness now (what /readyz would answer). */
  verdict(): Verdict;
  /** Polls the daemon now; resolves after a read that started after this call. */
  pollNow(): Promise<void>;
  close(): Promise<void>;
}

/** How often time-based states (stale, start-up bounds) are re-evaluated without a report; as the gate. */
const TICK_MS = 1_000;

/** After closing, how long buffered log lines may take to reach stdout; as the gate. */
const LOG_FLUSH_MS = 500;

export async function startProbe(config: ProbeConfig, opts: ProbeOptions = {}): Promise<RunningProbe> {
  const clock = opts.scheduler ?? systemScheduler;
  // As the gate: logs to stdout through a bounded buffer, so a blocked reader costs lines, never memory.
  const sink = opts.logger === undefined ? new BoundedLogSink(process.stdout, config.logBufferBytes) : undefined;
  const logger = opts.logger ?? createLogger(config.logLevel, [], sink);
  const tracker = new FleetTracker(trackerConfigOf(config), clock);
  const state = new ProbeState(config.target, config, () => tracker.snapshot(), clock, (t) => logTransition(logger, config.target, t));
  const metrics = new ProbeMetrics({ verdict: () => state.evaluate(), view: () => state.view(), latch: () => state.latched(), flips: state.flips });

  tracker.onSnapshot((_snap, changes) => {
    logChanges(logger, changes);
    state.evaluate();
  });
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
    scheduler: opts.pollScheduler ?? clock,
  });
  tracker.setPods([config.target]);

  const stopTicker = every(clock, TICK_MS, () => {
    tracker.tick();
    const dropped = sink?.takeDropped() ?? 0;
    if (dropped > 0) logger.warn({ dropped, buffer_bytes: config.logBufferBytes }, 'stdout is not keeping up: log lines dropped');
  });
  const stopAll = async (): Promise<void> => {
    stopTicker();
    await poller.stop();
    await http.close().catch(() => undefined);
  };

  let server: ProbeServer;
  try {
    server = await startProbeServer(config.listen, {
      target: config.target,
      policy: config,
      evaluate: () => state.evaluate(),
      view: () => state.view(),
      latch: () => state.latched(),
      metrics,
      now: () => clock.now(),
    });
  } catch (err) {
    await stopAll();
    throw err;
  }
  poller.setTargets([config.target]);
  logger.info(
    { target: config.target, listen: server.port, require: config.require, min_running: config.minRunning ?? null, failed: config.failed, latch: config.latch },
    'plugin-gate probe listening',
  );

  return {
    config,
    port: server.port,
    logger,
    tracker,
    state,
    snapshot: () => tracker.snapshot(),
    verdict: () => state.evaluate(),
    pollNow: () => poller.pollNow(),
    async close() {
      await Promise.allSettled([server.close(), stopAll()]);
      if (sink !== undefined) await sink.flushWithin(LOG_FLUSH_MS);
    },
  };
}

function logTransition(logger: Logger, target: string, t: Transition): void {
  const fields = { target, ready: t.to.ready, reason: t.to.reason, from: t.from?.reason ?? null, latch_reset: t.latchReset };
  if (t.to.ready) logger.info(fields, t.to.message);
  else logger.warn({ ...fields, missing: t.to.missing.slice(0, 20).map((m) => m.pluginId ?? 'daemon') }, t.to.message);
}

function logChanges(logger: Logger, changes: readonly FleetChange[]): void {
  for (const c of changes) {
    if (c.kind === 'pod') logger.info({ pod: c.pod, from: c.from, to: c.to, code: c.error?.code }, 'daemon state changed');
    else logger.debug({ pod: c.pod, plugin_id: c.plugin, from: c.from, to: c.to, why: c.why }, 'plugin state changed');
  }
}
