/**
 * What each signal does to the `plugin-gate` process (README "Signals"):
 *
 * - SIGTERM, SIGINT: drain (NOT_SERVING, keep answering for `drain`), close, exit 0.
 *   A second one during the drain: exit 1 at once.
 * - SIGHUP, SIGUSR2: logged and ignored. Options are read once at start-up (a
 *   reload would skip their validation), TLS files reload by themselves; by
 *   default Node would die at once, with no drain and no log line.
 * - SIGUSR1: logged and ignored. By default Node opens its inspector on
 *   127.0.0.1:9229 on SIGUSR1 — a debugger anyone in the pod could attach to.
 *   A JavaScript listener replaces Node's own handler, so the inspector never
 *   starts (checked on Node 20 by test/signals.test.ts). This module is the
 *   first import of the command, so the handler is in place before the rest
 *   of the program loads.
 */

export type SignalReporter = (signal: NodeJS.Signals, what: string) => void;

export const IGNORED_SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'];

const WHY: Readonly<Record<string, string>> = {
  SIGHUP: 'ignored: options are read at start-up (restart to change them); TLS files reload by themselves',
  SIGUSR1: 'ignored: the Node inspector stays closed',
  SIGUSR2: 'ignored',
};

let report: SignalReporter = (signal, what) => {
  process.stderr.write(`plugin-gate: ${signal} ${what}\n`);
};

/** Until the gate's logger exists, lines go to stderr; then to the logger. */
export function reportSignalsTo(reporter: SignalReporter): void {
  report = reporter;
}

for (const signal of IGNORED_SIGNALS) {
  process.on(signal, () => report(signal, WHY[signal] ?? 'ignored'));
}

/**
 * SIGTERM and SIGINT once the gate runs: the first starts `stop` (a drain), a
 * second one calls `exitNow`. `process.on`, not `once`: with `once` the second
 * signal found no listener and took Node's default (death by signal, no log).
 */
export function onStopSignals(stop: (signal: NodeJS.Signals) => void, exitNow: (signal: NodeJS.Signals) => void): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (stopping) {
      exitNow(signal);
      return;
    }
    stopping = true;
    stop(signal);
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}
