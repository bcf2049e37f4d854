/**
 * What every status source reader shares: its options and the way one read is
 * timed and turned into a SourceResult (a reader never rejects).
 */
import { performance } from 'node:perf_hooks';
import { GateError } from '../core/errors.js';
import type { SourceResult } from './types.js';
import type { GetTextOptions, StatusHttp, TextResponse } from './http.js';

export interface ReadOptions {
  readonly http: StatusHttp;
  /** Total deadline of one request (`poll-timeout`). */
  readonly timeoutMs: number;
  /** Body-size cap (`max-status-bytes`). */
  readonly maxBytes: number;
  /** Most plugin ids kept from one answer (`max-plugins`). */
  readonly maxPlugins: number;
  /** Aborts the read (the poller stopping or dropping the pod). */
  readonly signal?: AbortSignal;
}

/** `IP:port` or `[v6]:port` → origin URL. */
export function baseUrl(address: string): string {
  return `http://${address}`;
}

/** Runs one read and times it; anything thrown becomes a failed SourceResult. */
export async function timed<T>(read: () => Promise<T | GateError>): Promise<SourceResult<T>> {
  const t0 = performance.now();
  let outcome: T | GateError;
  try {
    outcome = await read();
  } catch (err) {
    outcome = GateError.from(err, 'status_unreachable');
  }
  const latencyMs = performance.now() - t0;
  if (outcome instanceof GateError) return { ok: false, error: outcome, latencyMs };
  return { ok: true, data: outcome, latencyMs };
}

/**
 * One source read: GET `path` on the pod within the options' deadline and size
 * cap, then `parse` the answer; timed, and never rejecting.
 */
export function readSource<T>(
  address: string,
  path: string,
  opts: ReadOptions,
  request: Pick<GetTextOptions, 'accept' | 'acceptStatus'>,
  parse: (res: TextResponse) => T | GateError | Promise<T | GateError>,
): Promise<SourceResult<T>> {
  return timed(async () => {
    const res = await opts.http.getText(baseUrl(address) + path, {
      ...request,
      timeoutMs: opts.timeoutMs,
      maxBytes: opts.maxBytes,
      signal: opts.signal,
    });
    return await parse(res);
  });
}

/** A short printable string from a JSON field, or undefined: daemon text ends up in /status and logs. */
export function shortString(v: unknown, max = 128): string | undefined {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) return undefined;
  return /[\u0000-\u001f\u007f]/.test(v) ? undefined : v;
}

/** A finite non-negative number from a JSON field, or undefined. */
export function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** JSON.parse that yields a plain object or undefined, never throws. */
export function parseJsonObject(body: string): Record<string, unknown> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return undefined;
  }
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>) : undefined;
}
