/**
 * A gate and a simulated fleet on loopback, sharing one ManualScheduler as
 * their clock: tests move daemon time by hand and poll on demand, so "the view
 * follows within one poll" is asserted without sleeping.
 */
import { configFor, type RawValues } from '../../src/config/config.js';
import { startGate, type GateOptions, type RunningGate } from '../../src/app/app.js';
import { createLogger, type Logger } from '../../src/observe/logger.js';
import { ManualScheduler } from '../../src/sim/scheduler.js';
import { SimFleet, type SimFleetOptions } from '../../src/sim/fleet.js';

export interface Harness {
  readonly sched: ManualScheduler;
  readonly fleet: SimFleet;
  readonly gate: RunningGate;
  /** Poll every pod once (a read started after this call) and return the new snapshot. */
  poll(): Promise<ReturnType<RunningGate['snapshot']>>;
  close(): Promise<void>;
}

/** Ports ephemeral, logs silent, background polls rare: tests drive polling with poll(). */
export const TEST_FLAGS: RawValues = {
  'grpc-listen': '127.0.0.1:0',
  'http-listen': '127.0.0.1:0',
  'admin-listen': '127.0.0.1:0',
  'poll-interval': '60s',
  'poll-timeout': '1s',
  'log-level': 'silent',
  'decision-log': 'none',
  drain: '0ms',
};

export async function startHarness(
  fleetOpts: Omit<SimFleetOptions, 'scheduler'>,
  flags: RawValues = {},
  beforeGate?: (fleet: SimFleet) => Promise<void> | void,
  logger: Logger = createLogger('silent'),
  gateOpts: Omit<GateOptions, 'clock' | 'logger'> = {},
): Promise<Harness> {
  const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
  const fleet = new SimFleet({ ...fleetOpts, scheduler: sched });
  await fleet.start();
  let gate: RunningGate;
  try {
    await beforeGate?.(fleet);
    const config = configFor({ ...TEST_FLAGS, targets: fleet.targets, ...flags });
    gate = await startGate(config, { ...gateOpts, clock: sched, logger });
  } catch (err) {
    await fleet.close();
    throw err;
  }
  return {
    sched,
    fleet,
    gate,
    async poll() {
      await gate.poller.pollNow();
      return gate.snapshot();
    },
    async close() {
      await gate.close();
      await fleet.close();
    },
  };
}

/** Waits (real time, bounded) until `check` returns true; fails with `what` otherwise. */
export async function eventually(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${ms}ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
