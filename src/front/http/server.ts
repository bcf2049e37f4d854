/**
 * The HTTP forward-auth face (nginx auth_request, ingress-nginx, Traefik
 * ForwardAuth, Envoy http_service). Every method and path is a check: this port
 * has no special paths, so nothing a client sends can reach anything but the
 * decision.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Config } from '../../config/config.js';
import type { HostPort } from '../../core/address.js';
import type { Scheduler } from '../../core/clock.js';
import { GateError } from '../../core/errors.js';
import { envelope } from '../../decide/envelope.js';
import { DECISION_ID_HEADER, HELD_MS_HEADER, HTTP_UPSTREAM_HEADER, REASON_HEADER, type Decision } from '../../decide/types.js';
import { silentLogger, type CheckService, type FrontLogger } from '../service.js';
import { conventionsIn, httpRequestToGate } from './request.js';
import { tlsForFace, type TlsSource } from '../tls.js';
import { secureContextOptions, type TlsConfig } from '../../tls/files.js';

export interface HttpFaceOptions {
  readonly listen: HostPort;
  readonly service: CheckService;
  /** With tls-cert/tls-key set (and no `tls`), the face serves https from its own TlsSource. */
  readonly config: Pick<Config, 'httpDenyStatus' | 'httpPathPrefix' | 'httpMaxHeaderBytes'> & Partial<Pick<Config, 'httpRequestFrom'>> & TlsConfig;
  readonly logger?: FrontLogger;
  /** TLS material shared with the gRPC face; takes precedence over config's tls-* and stays open on close. */
  readonly tls?: TlsSource;
  /** Runs an owned TLS source's reloads; default the system's. */
  readonly scheduler?: Scheduler;
}

export interface HttpFace {
  readonly port: number;
  /** Stops accepting, closes idle connections; connections still open after graceMs (default 1 s) are cut. */
  close(graceMs?: number): Promise<void>;
}

/**
 * How long the gateway waits for this answer, in milliseconds, when it says so
 * (nginx: `proxy_set_header X-Plugin-Gate-Timeout-Ms` to its proxy_read_timeout).
 * A held request is answered before that, less a margin; without the header the
 * hold-starting budget alone bounds the wait. It can only shorten a wait.
 */
export const HOLD_TIMEOUT_HEADER = 'x-plugin-gate-timeout-ms';

function headerWaitMs(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s !== undefined && /^\d{1,9}$/.test(s) ? Number(s) : undefined;
}

/** Connection timing. A forward-auth request has no body, so these are generous. */
const HEADERS_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 60_000;
/**
 * Longer than the idle timeout gateways use for upstream keep-alive (nginx: 60 s),
 * so the gateway, not the gate, closes idle connections and never reuses one the
 * gate is closing.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** After answering a broken request, how long the socket may linger for the client to read it. */
const ERROR_LINGER_MS = 1000;
/** A TLS handshake takes milliseconds; Node's default (120 s) lets idle sockets pile up. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

function rawResponse(status: number, text: string, body: string, extraHeaders = ''): Buffer {
  return Buffer.from(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extraHeaders}connection: close\r\n\r\n${body}`,
    'latin1',
  );
}

const RESPONSE_431 = rawResponse(431, 'Request Header Fields Too Large', envelope(-400, 'PluginDaemonBadRequestError', 'request headers too large'));
const RESPONSE_400 = rawResponse(400, 'Bad Request', envelope(-400, 'PluginDaemonBadRequestError', 'malformed request'));
const RESPONSE_408 = rawResponse(408, 'Request Timeout', envelope(-400, 'PluginDaemonBadRequestError', 'request timeout'));
const RESPONSE_405_CONNECT = rawResponse(
  405,
  'Method Not Allowed',
  envelope(-400, 'PluginDaemonBadRequestError', 'CONNECT is not checked: the forward-auth face checks requests for a path'),
  'allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n',
);
const BODY_500 = envelope(-500, 'PluginDaemonInternalServerError', 'plugin-gate internal error');

export async function startHttpFace(opts: HttpFaceOptions): Promise<HttpFace> {
  const logger = opts.logger ?? silentLogger;
  const { httpDenyStatus, httpPathPrefix } = opts.config;
  const httpRequestFrom = opts.config.httpRequestFrom ?? 'auto';

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // The body is never read. Node discards whatever arrives after the answer
    // (keeping the connection usable), and requestTimeout bounds how long.
    let result: { decision: Decision; decisionId: string };
    if (httpRequestFrom === 'auto') {
      const conventions = conventionsIn(req.rawHeaders);
      if (conventions.length > 1) {
        // Not a decision: the request does not say which original request it is.
        const body = envelope(-400, 'PluginDaemonBadRequestError', `ambiguous original request: ${conventions.join(' and ')} are both present; set http-request-from to the one your gateway writes`);
        res.writeHead(httpDenyStatus === 401 || httpDenyStatus === 403 ? httpDenyStatus : 400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
    }
    try {
      const gateReq = httpRequestToGate(req, httpPathPrefix, httpRequestFrom);
      if (opts.service.checkOrHold !== undefined) {
        const r = opts.service.checkOrHold(gateReq, 'http', headerWaitMs(req.headers[HOLD_TIMEOUT_HEADER]), (held) => {
          if (!res.destroyed && !res.headersSent) writeDecision(res, held.decision, held.decisionId, httpDenyStatus);
        });
        if ('held' in r) {
          // The gateway closed the connection (its timeout, the client went away): drop the request at once.
          res.once('close', () => r.cancel());
          return;
        }
        result = r;
      } else {
        result = opts.service.check(gateReq, 'http');
      }
    } catch (err) {
      logger.error({ err: GateError.from(err).toJSON(), face: 'http' }, 'check failed');
      // 5xx: nginx answers 500, Envoy http_service takes its error path.
      res.writeHead(500, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY_500) });
      res.end(BODY_500);
      return;
    }
    writeDecision(res, result.decision, result.decisionId, httpDenyStatus);
  };

  const { tls, owned } = tlsForFace(opts.tls, opts.config, logger, opts.scheduler);
  const secure =
    tls === undefined
      ? undefined
      : createHttpsServer(
          {
            maxHeaderSize: opts.config.httpMaxHeaderBytes,
            ...secureContextOptions(tls.material),
            // With a client CA: no certificate, or one it did not sign, fails the handshake.
            requestCert: tls.mutual,
            rejectUnauthorized: true,
            handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
          },
          onRequest,
        );
  const server = secure ?? createServer({ maxHeaderSize: opts.config.httpMaxHeaderBytes }, onRequest);
  // A reloaded certificate (and client CA) applies to connections accepted from now on.
  const unsubscribe = tls?.onChange((m) => secure?.setSecureContext(secureContextOptions(m)));
  const releaseTls = (): void => {
    unsubscribe?.();
    if (owned) tls?.close();
  };
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // `Expect: 100-continue` is answered with the decision itself, so a client
  // that waits for 100 before sending a body never sends it.
  server.on('checkContinue', onRequest);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket));
  // CONNECT names a host, not a path: there is nothing to check. Without a
  // listener Node closes the socket without a word; answer instead.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => answerAndClose(socket, RESPONSE_405_CONNECT));

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listen.port, opts.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    releaseTls();
    throw err;
  }
  // After start-up a listener error (e.g. EMFILE on accept) must not crash the process.
  server.on('error', (err) => logger.error({ err: GateError.from(err).toJSON(), face: 'http' }, 'listener error'));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.listen.port;

  let closing: Promise<void> | undefined;
  return {
    port,
    close(graceMs = 1000): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        releaseTls();
        const force = setTimeout(() => server.closeAllConnections(), Math.max(0, graceMs));
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/**
 * Allow: 200, empty body, routing header when routed. Deny: `http-deny-status`
 * with Retry-After, the reason and the daemon envelope body. A 400 decision
 * stays 400 unless the deny status is 401/403: for nginx, any other status
 * becomes 500, so everything must arrive as the status its config maps back.
 */
export function writeDecision(res: ServerResponse, d: Decision, decisionId: string, denyStatus: number): void {
  if (d.allow) {
    const headers: Record<string, string | number> = {
      [REASON_HEADER]: d.reason,
      [DECISION_ID_HEADER]: decisionId,
      'content-length': 0,
    };
    if (d.upstream !== undefined) headers[HTTP_UPSTREAM_HEADER] = d.upstream;
    if (d.heldMs !== undefined) headers[HELD_MS_HEADER] = d.heldMs;
    res.writeHead(200, headers);
    res.end();
    return;
  }
  const status = d.httpStatus === 400 && denyStatus !== 401 && denyStatus !== 403 ? 400 : denyStatus;
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(d.body),
    [REASON_HEADER]: d.reason,
    [DECISION_ID_HEADER]: decisionId,
  };
  if (d.retryAfterS !== undefined) headers['retry-after'] = d.retryAfterS;
  if (d.heldMs !== undefined) headers[HELD_MS_HEADER] = d.heldMs;
  res.writeHead(status, headers);
  res.end(d.body);
}

/**
 * A request node:http could not parse: 431 for an oversized head (maxHeaderSize
 * = http-max-header-bytes), 408 for a timeout, 400 otherwise. The socket then
 * reads and discards whatever the client still sends for a short while, so the
 * client gets to read the answer instead of a reset.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const response =
    err.code === 'HPE_HEADER_OVERFLOW' ? RESPONSE_431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? RESPONSE_408 : RESPONSE_400;
  answerAndClose(socket, response);
}

/** Writes a complete response, then lets the client read it before the socket is destroyed. */
function answerAndClose(socket: Socket, response: Buffer): void {
  socket.on('error', () => socket.destroy());
  socket.end(response);
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), ERROR_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}
