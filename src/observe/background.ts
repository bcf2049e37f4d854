/**
 * The one handler of background failures: a poll loop, a discovery listener,
 * a snapshot listener or the ticker that caught an error reports it here; it is
 * logged as a warning and counted in plugin_gate_background_errors_total. The
 * handler itself never throws, so reporting cannot become the next failure.
 */
import type { GateError } from '../core/errors.js';
import type { BackgroundSource, GateMetrics } from './metrics.js';

export interface BackgroundLogger {
  warn(obj: object, msg: string): void;
}

export type BackgroundErrorHandler = (source: BackgroundSource, error: GateError, fields?: Readonly<Record<string, unknown>>) => void;

export function backgroundErrors(logger: BackgroundLogger, metrics: Pick<GateMetrics, 'backgroundError'>): BackgroundErrorHandler {
  return (source, error, fields) => {
    try {
      metrics.backgroundError(source, error.code);
      logger.warn({ ...fields, source, code: error.code, err: error.message }, `${source} failed`);
    } catch {
      // nowhere left to report to
    }
  };
}
