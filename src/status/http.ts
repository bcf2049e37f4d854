/**
 * The one HTTP client of the status readers: a keep-alive undici Agent shared
 * by every pod and source, and `getText`, a bounded GET.
 *
 * Every request is bounded three ways: a total deadline (connect + headers +
 * body + one redirect), the Agent's own per-phase timeouts (undici's defaults
 * are 300 s, far too long for a poll), and a body-size cap that stops reading as
 * soon as it is passed. Every failure leaves as a GateError with a status_* code.
 */
import { Agent, request } from 'undici';
import { GateError } from '../core/errors.js';

export interface StatusHttpOptions {
  /** Upper bound of connect, headers and body phases; the per-request deadline is usually shorter. */
  readonly timeoutMs: number;
  /** How long an idle keep-alive socket is kept. Polls come every ~2 s, so a few intervals is enough. */
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

export class StatusHttp {
  private readonly agent: Agent;
  private closed = false;

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
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > maxBytes) {
      // Destroying the stream drops the socket: the rest is never read.
      body.destroy();
      throw new GateError('status_too_large', `body exceeds max-status-bytes ${maxBytes}`);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, total).toString('utf8');
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

/** Our own deadline or abort says what happened better than the error it caused; anything else is mapped in GateError.from. */
function mapError(err: unknown, timedOut: boolean, aborted: boolean, timeoutMs: number): GateError {
  if (timedOut) return new GateError('status_timeout', `no complete answer within ${timeoutMs}ms`, { cause: err });
  if (aborted) return new GateError('status_timeout', 'read aborted', { cause: err });
  return GateError.from(err, 'status_unreachable');
}
