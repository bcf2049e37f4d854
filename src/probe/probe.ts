/**
 * `plugin-gate probe`, wired: the gate's status readers and poller read one
 * daemon, the gate's tracker turns the reports into its pod view (same state
 * rules), the policy decides readiness from it, and a small HTTP server tells
 * the kubelet. One way again: reader → tracker → policy → /readyz.
 */
import { systemClock, type Clock, type Timers } from '../core/clock.js';
import { FleetTracker, type FleetChange } from '../fleet/tracker.js';
import type { FleetSnapshot } from '../fleet/types.js';
import { Poller } from '../status/poller.js';
import { podReaderFor } from '../status/reader.js';
import { StatusHttp } from '../status/http.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { trackerConfigOf, type ProbeConfig } from './config.js';
import { ProbeMetrics } from './metrics.js';
import { ProbeState, type Transition } from './state.js';
import { startProbeServer, type ProbeServer } from './server.js';
import type { Verdict } from './policy.js';

export interface ProbeOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** The poller's timers (tests drive polls with pollNow instead). */
  readonly timers?: Timers;
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

export async function startProbe(config: ProbeConfig, opts: ProbeOptions = {}): Promise<RunningProbe> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger(config.logLevel);
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
    ...(opts.timers !== undefined && { timers: opts.timers }),
  });
  tracker.setPods([config.target]);

  const ticker = setInterval(() => tracker.tick(), TICK_MS);
  ticker.unref();
  const stopAll = async (): Promise<void> => {
    clearInterval(ticker);
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
