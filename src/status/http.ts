/**
 * The one HTTP client of the status readers: a keep-alive undici Agent shared
 * by every pod and source, and `getText`, a bounded GET.
 *
 * The pooled keep-alive connections double as a watch on each pod: the daemon
 * (Go net/http, no idle timeout) never closes an idle one, so a close from the
 * pod's side means its process exited (or a proxy in front of it closed the
 * connection). `onConnectionLost` reports those closes, and only those: closes
 * of the gate's own making (idle timeout, aborted read, shutdown) are not losses.
 *
 * Every request is bounded three ways: a total deadline (connect + headers +
 * body + one redirect), the Agent's own per-phase timeouts (undici's defaults
 * are 300 s, far too long for a poll), and a body-size cap that stops reading as
 * soon as it is passed. Every failure leaves as a GateError with a status_* code.
 */
import { StringDecoder } from 'node:string_decoder';
import { Agent, request } from 'undici';
import { GateError, errorCodeOf, type ErrorCode } from '../core/errors.js';

export interface StatusHttpOptions {
  /** Upper bound of connect, headers and body phases; the per-request deadline is usually shorter. */
  readonly timeoutMs: number;
  /**
   * How long an idle keep-alive socket is kept. Longer than the poll interval, so
   * each pod keeps an open connection between polls (the loss watch needs one).
   */
  readonly keepAliveMs?: number;
  /** Sockets per pod: one per concurrently read source is enough. */
  readonly connectionsPerPod?: number;
}

export interface GetTextOptions {
  /** Total deadline of this call, redirect included. */
  readonly timeoutMs: number;
  /** Largest body read; more is status_too_large. */
  readonly maxBytes: number;
  /** Aborts the call early (the poller stopping); reported as status_timeout. */
  readonly signal?: AbortSignal;
  /** HTTP statuses that are answers; anything else is status_http_error. Default: 200 only. */
  readonly acceptStatus?: readonly number[];
  /** Sent as the Accept header. */
  readonly accept?: string;
}

export interface TextResponse {
  readonly status: number;
  readonly body: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

const DEFAULT_ACCEPT_STATUS: readonly number[] = [200];
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** A body we only throw away (error page, redirect) is drained up to this much, then the socket is dropped. */
const DISCARD_LIMIT = 16 * 1024;

/** `address` is the pod's `IP:port` as the readers were given it; `code` says how the connection ended. */
export type ConnectionLostListener = (address: string, code: ErrorCode) => void;

export class StatusHttp {
  private readonly agent: Agent;
  private closed = false;
  private readonly lossListeners: ConnectionLostListener[] = [];

  constructor(options: StatusHttpOptions) {
    const t = Math.max(1, Math.round(options.timeoutMs));
    const keepAlive = options.keepAliveMs ?? 30_000;
    this.agent = new Agent({
      connect: { timeout: t },
      headersTimeout: t,
      bodyTimeout: t,
      keepAliveTimeout: keepAlive,
      keepAliveMaxTimeout: keepAlive,
      connections: options.connectionsPerPod ?? 4,
      pipelining: 1,
    });
    this.agent.on('disconnect', (origin: unknown, _targets: unknown, err: unknown) => this.onDisconnect(origin, err));
  }

  /**
   * Calls `listener` whenever a pod closes one of the pooled connections (FIN
   * or RST). The listener must not throw; it runs inside the socket's close.
   */
  onConnectionLost(listener: ConnectionLostListener): void {
    this.lossListeners.push(listener);
  }

  private onDisconnect(origin: unknown, err: unknown): void {
    if (this.closed || this.lossListeners.length === 0) return;
    const code = closedByPeer(err);
    if (code === undefined) return;
    const address = addressOf(origin);
    if (address === undefined) return;
    for (const l of this.lossListeners) {
      try {
        l(address, code);
      } catch {
        // A listener's bug must not break undici's socket bookkeeping.
      }
    }
  }

  /**
   * GET `url` and return its body as UTF-8 text. Follows at most one redirect,
   * and only to the same origin (the daemon answers `/metrics` with a 301 to
   * `/metrics/`). Rejects only with a GateError.
   */
  async getText(url: string, options: GetTextOptions): Promise<TextResponse> {
    if (this.closed) throw new GateError('status_unreachable', 'status client is closed');
    // One controller per call, fed by our own deadline and the caller's signal. (Not
    // AbortSignal.any: the caller's signal lives as long as the pod is polled, and
    // every call would hang another dependant on it.)
    const ac = new AbortController();
    const signal = ac.signal;
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, Math.max(1, Math.round(options.timeoutMs)));
    deadline.unref();
    const external = options.signal;
    const onAbort = (): void => ac.abort();
    if (external?.aborted === true) ac.abort();
    else external?.addEventListener('abort', onAbort, { once: true });
    try {
      let target: URL;
      try {
        target = new URL(url);
      } catch (err) {
        throw new GateError('status_unreachable', `invalid status URL ${JSON.stringify(url)}`, { cause: err });
      }
      let retried = false;
      for (let hop = 0; ; hop++) {
        let res: Awaited<ReturnType<typeof request>>;
        try {
          res = await request(target, {
            method: 'GET',
            dispatcher: this.agent,
            signal,
            headers: { accept: options.accept ?? '*/*' },
          });
        } catch (err) {
          // A keep-alive socket the daemon closed (a restart) fails the first request
          // sent on it; a GET is safe to send once more, on a fresh connection.
          if (retried || signal.aborted || GateError.from(err).code !== 'status_reset') throw err;
          retried = true;
          hop--;
          continue;
        }
        if (REDIRECTS.has(res.statusCode)) {
          await discard(res.body, signal);
          const next = redirectTarget(target, res.headers['location']);
          if (hop >= 1 || next === undefined) {
            throw new GateError('status_http_error', `HTTP ${res.statusCode} from ${target.pathname} (redirect not followed)`);
          }
          target = next;
          continue;
        }
        const accepted = options.acceptStatus ?? DEFAULT_ACCEPT_STATUS;
        if (!accepted.includes(res.statusCode)) {
          await discard(res.body, signal);
          throw new GateError('status_http_error', `HTTP ${res.statusCode} from ${target.pathname}`);
        }
        const body = await readCapped(res.body, res.headers['content-length'], options.maxBytes);
        return { status: res.statusCode, body, headers: res.headers };
      }
    } catch (err) {
      throw mapError(err, timedOut, signal.aborted, options.timeoutMs);
    } finally {
      clearTimeout(deadline);
      external?.removeEventListener('abort', onAbort);
    }
  }

  /** Closes every pooled socket; later calls fail with status_unreachable. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // destroy, not close: close() would wait for a hanging pod's in-flight request.
    await this.agent.destroy();
  }
}

type Body = AsyncIterable<Buffer> & {
  destroy(err?: Error): unknown;
  dump(opts?: { limit: number; signal?: AbortSignal }): Promise<void>;
};

async function readCapped(body: Body, contentLength: string | string[] | undefined, maxBytes: number): Promise<string> {
  const declared = typeof contentLength === 'string' ? Number(contentLength) : NaN;
  if (Number.isFinite(declared) && declared > maxBytes) {
    body.destroy();
    throw new GateError('status_too_large', `body of ${declared} bytes exceeds max-status-bytes ${maxBytes}`);
  }
  // Decoded chunk by chunk as it arrives: a large body costs many small steps, not one long one.
  const decoder = new StringDecoder('utf8');
  const parts: string[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > maxBytes) {
      // Destroying the stream drops the socket: the rest is never read.
      body.destroy();
      throw new GateError('status_too_large', `body exceeds max-status-bytes ${maxBytes}`);
    }
    parts.push(decoder.write(chunk));
  }
  parts.push(decoder.end());
  return parts.length === 2 && parts[1] === '' ? parts[0]! : parts.join('');
}

async function discard(body: Body, signal: AbortSignal): Promise<void> {
  try {
    await body.dump({ limit: DISCARD_LIMIT, signal });
  } catch {
    // The body was thrown away anyway; a failed drain only costs the socket.
  }
}

function redirectTarget(from: URL, location: string | string[] | undefined): URL | undefined {
  if (typeof location !== 'string' || location === '') return undefined;
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    return undefined;
  }
  return next.origin === from.origin ? next : undefined;
}

/**
 * How undici reports the end of a socket (the error of its 'disconnect' event):
 * `other side closed` (UND_ERR_SOCKET) is a FIN from the pod, ECONNRESET/EPIPE
 * an RST. Everything else is the gate's own doing: UND_ERR_INFO (idle timeout,
 * `Connection: close` honoured), aborts (a poll timed out or was dropped),
 * timeouts, a destroyed or closed agent, a parse error. Those are not losses.
 */
function closedByPeer(err: unknown): ErrorCode | undefined {
  // UND_ERR_CLOSED is the gate's own agent closing; GateError.from (the one mapping of socket errors) counts it as a reset too.
  if (errorCodeOf(err) === 'UND_ERR_CLOSED') return undefined;
  const code = GateError.from(err).code;
  return code === 'status_reset' ? code : undefined;
}

/** undici's origin (a URL) → `host:port` as the readers build URLs from it (`baseUrl`). */
function addressOf(origin: unknown): string | undefined {
  let url: URL;
  try {
    url = origin instanceof URL ? origin : new URL(String(origin));
  } catch {
    return undefined;
  }
  // WHATWG URLs drop a default port: put it back (an address always carries one).
  const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80';
  return `${url.hostname}:${port}`;
}

/** Our own deadline or abort says what happened better than the error it caused; anything else is mapped in GateError.from. */
function mapError(err: unknown, timedOut: boolean, aborted: boolean, timeoutMs: number): GateError {
  if (timedOut) return new GateError('status_timeout', `no complete answer within ${timeoutMs}ms`, { cause: err });
  if (aborted) return new GateError('status_timeout', 'read aborted', { cause: err });
  return GateError.from(err, 'status_unreachable');
}
