/**
 * The little of the Kubernetes API that discovery needs, over undici (already
 * the status readers' client): a bounded JSON GET (list EndpointSlices, get a
 * Service) and a watch read as newline-delimited JSON events.
 *
 * Every request is bounded: connect and response head by `timeoutMs`, a GET's
 * whole body by the same deadline, a watch by the server's `timeoutSeconds`
 * and, should the server go silent without closing (a half-open connection
 * after an API server failover), by an idle timeout between body chunks.
 * Bodies and event lines are size-capped. Failures leave as GateErrors with
 * discovery codes: 401 discovery_unauthorized, 403 discovery_forbidden, the
 * rest discovery_failed (the caller turns a Service's 404 into
 * discovery_service_not_found).
 */
import { Agent, type Dispatcher } from 'undici';
import type { KubeCredentials } from '../config/kubernetes-files.js';
import { GateError } from '../core/errors.js';

export interface KubeApiOptions {
  readonly credentials: KubeCredentials;
  /** Connect, response head, and a GET's whole exchange. */
  readonly timeoutMs: number;
  /** Largest GET body (a list of every slice of the Service) and largest watch event line. */
  readonly maxBytes?: number;
}

export type JsonResponse = { readonly status: number; readonly body: unknown };

/** How a watch ended. */
export type WatchEnd =
  /** The server closed the stream (its timeoutSeconds ran out): watch again from the last resourceVersion. */
  | { readonly kind: 'closed' }
  /** A 410, as the response status or as an ERROR event: the resourceVersion is too old, list again. */
  | { readonly kind: 'gone'; readonly message: string }
  /** The request failed, was refused, or the stream broke or went silent. */
  | { readonly kind: 'failed'; readonly error: GateError }
  | { readonly kind: 'stopped' };

/** One decoded watch event. */
export interface WatchEvent {
  readonly type: string;
  readonly object: Record<string, unknown>;
}

const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;

export class KubeApi {
  private readonly agent: Agent;
  private readonly maxBytes: number;

  constructor(private readonly opts: KubeApiOptions) {
    const c = opts.credentials;
    const t = Math.max(1, Math.round(opts.timeoutMs));
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.agent = new Agent({
      connect: {
        timeout: t,
        ca: c.ca,
        cert: c.clientCert,
        key: c.clientKey,
        rejectUnauthorized: !c.insecure,
        // Detects a dead peer under a long watch even when nothing is sent.
        keepAlive: true,
        keepAliveInitialDelay: 30_000,
      },
      headersTimeout: t,
      bodyTimeout: t,
      connections: 4,
      pipelining: 1,
    });
  }

  /** A GET to the API server with the current credentials; `bodyTimeout` bounds the silence between body chunks (undici's default without it). */
  private async get(path: string, signal: AbortSignal, bodyTimeout?: number): Promise<Dispatcher.ResponseData> {
    return this.agent.request({
      origin: this.opts.credentials.server,
      path,
      method: 'GET',
      headers: await this.headers(),
      signal,
      ...(bodyTimeout !== undefined && { bodyTimeout }),
    });
  }

  /** A GET whose whole exchange ends within `timeoutMs`; any status is returned, a failure is thrown as a GateError. */
  async getJson(path: string, signal?: AbortSignal): Promise<JsonResponse> {
    const ac = new AbortController();
    const onAbort = (): void => ac.abort();
    signal?.addEventListener('abort', onAbort);
    // A socket deadline: on real time, like the socket it bounds (src/core/clock.ts).
    const deadline = setTimeout(() => ac.abort(), this.opts.timeoutMs);
    deadline.unref();
    try {
      const res = await this.get(path, ac.signal);
      return { status: res.statusCode, body: jsonOrUndefined(await readCapped(res.body, this.maxBytes)) };
    } catch (err) {
      throw requestError(path, err, ac.signal.aborted && signal?.aborted !== true ? `no answer within ${this.opts.timeoutMs}ms` : undefined);
    } finally {
      clearTimeout(deadline);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Streams a watch: `onEvent` gets every event line in order (BOOKMARK and
   * ERROR included, except an ERROR 410, which ends the watch as `gone`).
   * `idleMs` bounds the silence between two chunks. `onOpen` is called once
   * the server has accepted the watch (a 200 head).
   */
  async watch(path: string, idleMs: number, signal: AbortSignal, onEvent: (event: WatchEvent) => void, onOpen?: () => void): Promise<WatchEnd> {
    let body: AsyncIterable<unknown> & { destroy(): void; setEncoding(e: BufferEncoding): unknown };
    try {
      const res = await this.get(path, signal, idleMs);
      if (res.statusCode !== 200) {
        const status = jsonOrUndefined(await readCapped(res.body, 64 * 1024).catch(() => ''));
        if (res.statusCode === 410) return { kind: 'gone', message: statusMessage(status) ?? 'resourceVersion too old' };
        return { kind: 'failed', error: statusError(res.statusCode, status, 'watching EndpointSlices') };
      }
      body = res.body;
      onOpen?.();
    } catch (err) {
      if (signal.aborted) return { kind: 'stopped' };
      return { kind: 'failed', error: requestError(path, err, undefined) };
    }
    body.setEncoding('utf8');
    let pending = '';
    try {
      for await (const chunk of body) {
        pending += chunk as string;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line === '') continue;
          const end = this.deliver(line, onEvent);
          if (end !== undefined) {
            body.destroy();
            return end;
          }
        }
        if (pending.length > this.maxBytes) {
          body.destroy();
          return { kind: 'failed', error: new GateError('discovery_failed', `watch event larger than ${this.maxBytes} bytes`) };
        }
      }
      // A last event without its newline still counts.
      const rest = pending.trim();
      if (rest !== '') {
        const end = this.deliver(rest, onEvent);
        if (end !== undefined) return end;
      }
      return { kind: 'closed' };
    } catch (err) {
      body.destroy();
      if (signal.aborted) return { kind: 'stopped' };
      const code = (err as { code?: unknown }).code;
      if (code === 'UND_ERR_BODY_TIMEOUT') {
        return { kind: 'failed', error: new GateError('discovery_failed', `EndpointSlice watch silent for ${idleMs}ms; reconnecting`, { cause: err }) };
      }
      return { kind: 'failed', error: requestError(path, err, undefined) };
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined);
  }

  private deliver(line: string, onEvent: (event: WatchEvent) => void): WatchEnd | undefined {
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      return { kind: 'failed', error: new GateError('discovery_failed', 'watch sent a line that is not JSON') };
    }
    if (!isObj(ev) || typeof ev['type'] !== 'string' || !isObj(ev['object'])) {
      return { kind: 'failed', error: new GateError('discovery_failed', 'watch sent an event without type and object') };
    }
    const event: WatchEvent = { type: ev['type'], object: ev['object'] };
    if (event.type === 'ERROR') {
      const code = event.object['code'];
      if (code === 410) return { kind: 'gone', message: statusMessage(event.object) ?? 'resourceVersion too old' };
      return { kind: 'failed', error: statusError(typeof code === 'number' ? code : 500, event.object, 'watch ERROR event') };
    }
    onEvent(event);
    return undefined;
  }

  private async headers(): Promise<Record<string, string>> {
    const h: Record<string, string> = { accept: 'application/json', 'user-agent': 'plugin-gate' };
    let token: string | undefined;
    try {
      token = await this.opts.credentials.token();
    } catch (err) {
      throw new GateError('discovery_unauthorized', `cannot read the service account token: ${(err as Error).message}`, { cause: err });
    }
    if (token !== undefined) h['authorization'] = `Bearer ${token}`;
    return h;
  }
}

/** A non-2xx answer as a GateError; the message is the API's own Status message when there is one. */
export function statusError(status: number, body: unknown, what: string): GateError {
  const msg = statusMessage(body) ?? `HTTP ${status}`;
  if (status === 401) return new GateError('discovery_unauthorized', `${what}: the API server refused the credentials (401): ${msg}`);
  if (status === 403) return new GateError('discovery_forbidden', `${what}: forbidden by RBAC (403): ${msg}`);
  return new GateError('discovery_failed', `${what}: HTTP ${status}: ${msg}`);
}

function statusMessage(body: unknown): string | undefined {
  return isObj(body) && typeof body['message'] === 'string' ? body['message'].slice(0, 500) : undefined;
}

function requestError(path: string, err: unknown, timeoutWhy: string | undefined): GateError {
  if (err instanceof GateError) return err;
  const code = (err as { code?: unknown }).code;
  const why =
    timeoutWhy ??
    (typeof code === 'string' ? `${code}${err instanceof Error && err.message !== '' ? ` (${err.message})` : ''}` : err instanceof Error ? err.message : String(err));
  return new GateError('discovery_failed', `kubernetes API ${path.split('?')[0]}: ${why}`, { cause: err });
}

async function readCapped(body: AsyncIterable<unknown> & { destroy(): void }, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > maxBytes) {
      body.destroy();
      throw new GateError('discovery_failed', `kubernetes API answer larger than ${maxBytes} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The parsed JSON of `text`, or undefined when it is not JSON (an error page, a cut-off body). */
function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
