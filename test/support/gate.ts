/**
 * A gate and a simulated fleet on loopback, sharing one ManualScheduler for
 * every clock reading and timer (polls, ticker, drain, TLS reload, health
 * refresh, daemon launches): tests move time by hand and poll on demand, so
 * "the view follows within one poll" is asserted without sleeping.
 */
import { configFor, type RawValues } from '../../src/config/config.js';
import type { Scheduler, TimerHandle } from '../../src/core/clock.js';
import { startGate, type GateOptions, type RunningGate } from '../../src/app/app.js';
import { createLogger, type Logger } from '../../src/observe/logger.js';
import { ManualScheduler } from './manual-scheduler.js';
import { SimFleet, type SimFleetOptions } from '../../src/sim/fleet.js';

export interface Harness {
  readonly sched: ManualScheduler;
  readonly fleet: SimFleet;
  readonly gate: RunningGate;
  /** Poll every pod once (a read started after this call) and return the new snapshot. */
  poll(): Promise<ReturnType<RunningGate['snapshot']>>;
  close(): Promise<void>;
}

/** Ports ephemeral, logs silent; no background polls (see neverPolls): tests drive polling with poll(). */
export const TEST_FLAGS: RawValues = {
  'grpc-listen': '127.0.0.1:0',
  'http-listen': '127.0.0.1:0',
  'admin-listen': '127.0.0.1:0',
  'poll-timeout': '1s',
  'log-level': 'silent',
  'decision-log': 'none',
  drain: '0ms',
};

/**
 * The poll loops' waits never end by themselves: a poll happens only when the
 * test asks (poll(), which wakes the wait), so moving the manual clock past
 * stale-after is never undone by a background poll the test did not ask for.
 * Everything else of the gate (ticker, drain, reloads) runs on `sched`.
 */
export function neverPolls(sched: ManualScheduler): Scheduler {
  return { now: () => sched.now(), setTimeout: () => ({}) as TimerHandle, clearTimeout: () => undefined };
}

export async function startHarness(
  fleetOpts: Omit<SimFleetOptions, 'scheduler'>,
  flags: RawValues = {},
  beforeGate?: (fleet: SimFleet) => Promise<void> | void,
  logger: Logger = createLogger('silent'),
  gateOpts: Omit<GateOptions, 'scheduler' | 'pollScheduler' | 'logger'> = {},
): Promise<Harness> {
  const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
  const fleet = new SimFleet({ ...fleetOpts, scheduler: sched });
  await fleet.start();
  let gate: RunningGate;
  try {
    await beforeGate?.(fleet);
    const config = configFor({ ...TEST_FLAGS, targets: fleet.targets, ...flags });
    gate = await startGate(config, { ...gateOpts, scheduler: sched, logger, pollScheduler: neverPolls(sched) });
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
