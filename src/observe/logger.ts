/**
 * The process logger (pino, JSON lines). Decision logs carry no headers at all;
 * the redact list is defence in depth for anything that ever logs a header map.
 */
import pino, { type Logger, type DestinationStream } from 'pino';
import { ALWAYS_REDACTED } from '../config/config.js';
import { BoundedLogSink } from './log-sink.js';

export type { Logger };

/** `log-buffer-bytes` default, for loggers made without a configuration. */
export const DEFAULT_LOG_BUFFER_BYTES = 1_048_576;

export function createLogger(level: string, extraRedacted: readonly string[] = [], dest?: DestinationStream): Logger {
  const names = [...new Set([...ALWAYS_REDACTED, ...extraRedacted])];
  const paths = names.flatMap((h) => [`headers["${h}"]`, `req.headers["${h}"]`, `request.headers["${h}"]`]);
  const opts = {
    level,
    base: { service: 'plugin-gate' },
    redact: { paths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  // stdout is written asynchronously: with `decision-log all` under load, a
  // synchronous write to a slow pipe would stall the event loop and with it every
  // Check. The buffer is bounded (see BoundedLogSink); the app flushes on shutdown.
  return pino(opts, dest ?? new BoundedLogSink(process.stdout, DEFAULT_LOG_BUFFER_BYTES));
}
