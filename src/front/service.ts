/**
 * The contract between the wire faces and the gate: what a front calls
 * (CheckService), and the one way a front builds a GateRequest from what it
 * received (bounded, lower-cased header collection).
 */
import type { Decision, GateRequest } from '../decide/types.js';

export type FaceName = 'grpc' | 'http';

export interface CheckResult {
  readonly decision: Decision;
  readonly decisionId: string;
}

/** A request the service holds (hold-starting): answered later through the callback given. */
export interface Held {
  readonly held: true;
  /** The caller went away: drop the request at once, never answer it. */
  cancel(): void;
}

export interface CheckService {
  /** Pure lookup; never awaits I/O. face tells logs/metrics which front asked. */
  check(req: GateRequest, face: FaceName): CheckResult;
  /**
   * As check, but a request whose plugin is still starting may be held
   * (hold-starting) and answered later through `answer`, exactly once, unless
   * cancelled. `callerWaitMs`: how long the caller waits for this answer in all
   * (its deadline), undefined when unknown. Fronts use it when present.
   */
  checkOrHold?(req: GateRequest, face: FaceName, callerWaitMs: number | undefined, answer: (r: CheckResult) => void): CheckResult | Held;
  /** False until the first complete poll round; false again while draining. */
  serving(): boolean;
}

/**
 * What a front logs: only boundary failures (a throwing service, a broken
 * socket). A pino Logger satisfies it.
 */
export interface FrontLogger {
  error(obj: object, msg: string): void;
}

export const silentLogger: FrontLogger = { error: () => undefined };

/**
 * Caps on what a front keeps from one request. Input beyond them is dropped
 * (extra names) or truncated (long values), so mapping a request costs time
 * bounded by the transport's own size cap and memory bounded by these figures.
 * Dropping is safe here: the gate routes traffic, it does not authenticate it.
 * A dispatch request whose plugin header was dropped reads as missing its
 * plugin id, and a truncated value fails plugin-id validation: either way it is
 * refused or unscoped, never routed for a plugin it did not name.
 * Envoy's own defaults (100 headers, 60 KiB in all) sit well inside them.
 */
export const REQUEST_LIMITS = {
  /** Distinct header names kept. */
  maxHeaders: 512,
  /** Longer names are ignored: no real header is that long. */
  maxHeaderNameLength: 256,
  /** Characters kept of one header value (repeated headers joined). */
  maxHeaderValueLength: 16_384,
  /** Characters kept of the path (query string included). */
  maxPathLength: 16_384,
  maxMethodLength: 32,
  maxRequestIdLength: 256,
  maxContextExtensions: 64,
  maxContextExtensionLength: 4096,
} as const;

/**
 * Collects headers as the GateRequest contract wants them: lower-case names,
 * repeated names joined with ",", everything capped by REQUEST_LIMITS.
 * A Map, never a plain object, so a header called `__proto__` is just a header.
 */
export class HeaderCollector {
  private readonly map = new Map<string, string>();

  /** Adds one header line (or one already-joined value). */
  add(name: string, value: string): void {
    if (name.length === 0 || name.length > REQUEST_LIMITS.maxHeaderNameLength) return;
    const key = name.toLowerCase();
    const prev = this.map.get(key);
    if (prev === undefined) {
      if (this.map.size >= REQUEST_LIMITS.maxHeaders) return;
      this.map.set(key, clip(value, REQUEST_LIMITS.maxHeaderValueLength));
      return;
    }
    if (prev.length >= REQUEST_LIMITS.maxHeaderValueLength) return;
    this.map.set(key, clip(prev + ',' + value, REQUEST_LIMITS.maxHeaderValueLength));
  }

  /** Replaces a header (a value the front reconstructed, such as the original host). */
  set(name: string, value: string): void {
    const key = name.toLowerCase();
    if (!this.map.has(key) && this.map.size >= REQUEST_LIMITS.maxHeaders) return;
    this.map.set(key, clip(value, REQUEST_LIMITS.maxHeaderValueLength));
  }

  get(name: string): string | undefined {
    return this.map.get(name);
  }

  get size(): number {
    return this.map.size;
  }

  /** Hands the collected headers over; the collector must not be used afterwards. */
  lookup(): (name: string) => string | undefined {
    const map = this.map;
    return (name) => {
      const v = map.get(name);
      if (v !== undefined) return v;
      // The contract asks callers for lower-case names; tolerate the others.
      const lower = name.toLowerCase();
      return lower === name ? undefined : map.get(lower);
    };
  }
}

export function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s;
}

const NO_EXTENSIONS: ReadonlyMap<string, string> = new Map();

export interface GateRequestParts {
  readonly method: string;
  readonly path: string;
  /** The collected headers, or a lookup answering exactly as a HeaderCollector fed the same headers would. */
  readonly headers: HeaderCollector | ((name: string) => string | undefined);
  readonly contextExtensions?: ReadonlyMap<string, string>;
  readonly requestId: string | undefined;
}

/** The GateRequest both fronts hand to the service, with every cap applied. */
export function makeGateRequest(p: GateRequestParts): GateRequest {
  const rid = p.requestId === undefined || p.requestId === '' ? undefined : clip(p.requestId, REQUEST_LIMITS.maxRequestIdLength);
  return {
    method: clip(p.method, REQUEST_LIMITS.maxMethodLength),
    path: clip(p.path, REQUEST_LIMITS.maxPathLength),
    header: typeof p.headers === 'function' ? p.headers : p.headers.lookup(),
    contextExtensions: p.contextExtensions ?? NO_EXTENSIONS,
    requestId: rid,
  };
}
