/**
 * The gRPC face: envoy.service.auth.v3.Authorization/Check, grpc.health.v1.Health
 * and (opt-in) server reflection on one listener.
 */
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { Config } from '../../config/config.js';
import type { HostPort } from '../../core/address.js';
import { every, systemScheduler, type Scheduler } from '../../core/clock.js';
import { GateError } from '../../core/errors.js';
import { silentLogger, type CheckResult, type CheckService, type FrontLogger } from '../service.js';
import { tlsForFace, type TlsSource } from '../tls.js';
import type { TlsConfig } from '../../tls/files.js';
import type { GateRequest } from '../../decide/types.js';
import { AUTHORIZATION_SERVICE, loadGatePackage } from './protos.js';
import { decodeCheckRequest } from './request.js';
import { limitServerOptions, listenCapped, type CappedListener, type GrpcLimits } from './limits.js';
import { createResponseRenderer, type CheckResponseRenderer } from './response.js';

/** Health service names answered: the whole server, and the ext_authz service. */
export const HEALTH_SERVICES: readonly string[] = ['', AUTHORIZATION_SERVICE];

/** How often Watch subscribers are brought up to date; unary Check is always current. */
const HEALTH_REFRESH_MS = 1000;

/**
 * A CheckRequest carries headers only (Envoy's own limit on request headers is
 * 60 KiB by default, 8 MiB at most). `grpc-max-message-bytes` (128 KiB by
 * default, limits.ts) bounds what one call costs to decode; this is the ceiling
 * without a config. Envoy's with_request_body would need more: the gate never
 * reads a body, so leave it off.
 */
export const MAX_RECEIVE_BYTES = 1024 * 1024;

export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
  // Our answers are small: a deny body is one envelope line.
  'grpc.max_send_message_length': MAX_RECEIVE_BYTES,
  // Envoy multiplexes checks over few long-lived HTTP/2 connections and opens
  // more when a peer's stream limit is reached; a stream limit per connection
  // (grpc-max-concurrent-streams, 1000) keeps one connection from monopolising
  // the event loop. It and the other client bounds come from the config (limits.ts).
  'grpc.max_concurrent_streams': 1000,
  // Find dead peers (a vanished Envoy pod) within about a minute.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // Channelz keeps per-call counters and timestamps for a channelz client to
  // read; the gate serves no channelz service, so that is work nobody reads.
  'grpc.enable_channelz': 0,
};

/**
 * Authorization/Check for grpc-js with the gate's own codec: the request is
 * decoded straight into a GateRequest (request.ts) and the answer is a
 * CheckResponse already encoded (response.ts), passed through as it is. The
 * client side is never used by the server; it is filled in so the definition
 * is complete, and fails loudly if something tries.
 */
export const CHECK_SERVICE: grpc.ServiceDefinition<{ Check: grpc.handleUnaryCall<GateRequest, Buffer> }> = {
  Check: {
    path: `/${AUTHORIZATION_SERVICE}/Check`,
    requestStream: false,
    responseStream: false,
    requestDeserialize: decodeCheckRequest,
    responseSerialize: (response: Buffer) => response,
    requestSerialize: () => {
      throw new Error('CHECK_SERVICE is a server-side definition: it cannot encode a CheckRequest');
    },
    responseDeserialize: () => {
      throw new Error('CHECK_SERVICE is a server-side definition: it cannot decode a CheckResponse');
    },
  },
};

export interface GrpcServerOptions {
  readonly listen: HostPort;
  readonly service: CheckService;
  /** With tls-cert/tls-key set (and no `tls`), the server serves TLS from its own TlsSource. */
  readonly config: Pick<Config, 'routeHeader' | 'grpcReflection'> & TlsConfig & GrpcLimits;
  readonly logger?: FrontLogger;
  /** TLS material shared with the HTTP face; takes precedence over config's tls-* and stays open on close. */
  readonly tls?: TlsSource;
  /** Runs the health refresh (and an owned TLS source's reloads); default the system's. */
  readonly scheduler?: Scheduler;
  /** Called for each connection refused at grpc-max-connections (a counter). */
  readonly onConnectionRefused?: () => void;
}

export interface GrpcServer {
  /** The bound port (the ephemeral one when listen.port was 0). */
  readonly port: number;
  /**
   * NOT_SERVING from now on, then a graceful shutdown; calls still open after
   * graceMs are cancelled.
   */
  close(graceMs: number): Promise<void>;
  /**
   * Health gate on top of service.serving(): false forces NOT_SERVING (start of
   * a drain), true hands the status back to service.serving(). Applies at once.
   */
  setServing(serving: boolean): void;
}

/**
 * Health design: the status is `allowed && service.serving()`, re-read on every
 * health Check (so probes and Envoy's unary health checks are never stale and
 * nothing has to be pushed) and every HEALTH_REFRESH_MS for Watch streams.
 * `allowed` is setServing's flag (default true), so the app can start a drain
 * even if its service does not track draining itself.
 */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServer> {
  const logger = opts.logger ?? silentLogger;
  const scheduler = opts.scheduler ?? systemScheduler;
  const { tls, owned } = tlsForFace(opts.tls, opts.config, logger, scheduler);
  const server = new grpc.Server({ ...SERVER_OPTIONS, ...limitServerOptions(opts.config) });
  const render = createResponseRenderer({ routeHeader: opts.config.routeHeader });

  server.addService(CHECK_SERVICE, {
    Check: createCheckHandler(opts.service, render, logger),
  });

  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, 'NOT_SERVING' as ServingStatus])));
  let allowed = true;
  let current: ServingStatus = 'NOT_SERVING';
  const refresh = (): void => {
    let up = false;
    if (allowed) {
      try {
        up = opts.service.serving() === true;
      } catch (err) {
        logger.error({ err: GateError.from(err).toJSON(), face: 'grpc' }, 'serving() threw; reporting NOT_SERVING');
      }
    }
    const next: ServingStatus = up ? 'SERVING' : 'NOT_SERVING';
    if (next === current) return;
    current = next;
    for (const s of HEALTH_SERVICES) health.setStatus(s, next);
  };
  // Register the package's handlers through a shim that refreshes before each
  // unary Check, instead of re-implementing the health protocol.
  health.addToServer({
    addService: (def, impl) => {
      const wrapped: grpc.UntypedServiceImplementation = {};
      for (const [name, fn] of Object.entries(impl)) {
        wrapped[name] =
          name.toLowerCase() === 'check'
            ? (((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
                refresh();
                (fn as grpc.handleUnaryCall<unknown, unknown>)(call, cb);
              }) as grpc.UntypedHandleCall)
            : (fn as grpc.UntypedHandleCall);
      }
      server.addService(def, wrapped);
    },
  });
  refresh();
  const stopRefresh = every(scheduler, HEALTH_REFRESH_MS, refresh);

  if (opts.config.grpcReflection) new ReflectionService(loadGatePackage()).addToServer(server);

  const credentials = tls === undefined ? grpc.ServerCredentials.createInsecure() : grpcServerCredentials(tls);
  let listener: CappedListener;
  try {
    listener = await listenCapped(server, credentials, opts.listen, opts.config.grpcMaxConnections, opts.onConnectionRefused);
  } catch (err) {
    stopRefresh();
    if (owned) tls?.close();
    throw err;
  }

  const port = listener.port;
  let closing: Promise<void> | undefined;
  return {
    port,
    setServing(serving: boolean): void {
      allowed = serving;
      refresh();
    },
    close(graceMs: number): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        allowed = false;
        refresh();
        stopRefresh();
        listener.close();
        // Only the reload timer stops; connections still open keep their context.
        if (owned) tls?.close();
        const force = setTimeout(() => server.forceShutdown(), Math.max(0, graceMs));
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}

/**
 * TLS credentials fed by a TlsSource, so a reloaded certificate reaches new
 * connections without a restart (grpc-js calls setSecureContext on its HTTP/2
 * server for each update). With a client CA, a client without a certificate
 * signed by it fails the handshake.
 */
export function grpcServerCredentials(tls: TlsSource): grpc.ServerCredentials {
  // grpc-js 1.14 names these parameters the wrong way round: the first is the
  // identity provider (certificate + key), the second the CA provider.
  return grpc.experimental.createCertificateProviderServerCredentials(tls, tls.mutual ? tls : null, tls.mutual);
}

/**
 * The unary Check handler: synchronous from request to callback. The request
 * arrives decoded (CHECK_SERVICE's requestDeserialize) and the answer leaves
 * encoded. Exported for tests that drive it with a hand-made call.
 */
export function createCheckHandler(
  service: CheckService,
  render: CheckResponseRenderer,
  logger: FrontLogger,
): grpc.handleUnaryCall<GateRequest, Buffer> {
  return (call, callback) => {
    // A caller that has already given up (Envoy's default timeout is 200 ms)
    // gets no work done on its behalf. grpc-js computes the deadline from
    // Date.now(), so the comparison must use the same clock.
    if (deadlinePassed(call.getDeadline(), Date.now())) {
      callback({ code: grpc.status.DEADLINE_EXCEEDED, details: 'deadline exceeded before the check ran' });
      return;
    }
    let response: Buffer;
    try {
      const req = call.request;
      if (service.checkOrHold !== undefined) {
        const r = service.checkOrHold(req, 'grpc', callerWaitMs(call.getDeadline(), Date.now()), (held) => answerHeld(held, render, callback, logger));
        if ('held' in r) {
          // A held Check whose caller gives up (Envoy's timeout, a reset stream) is dropped at once.
          call.once('cancelled', () => r.cancel());
          return;
        }
        response = render(r.decision, r.decisionId);
      } else {
        const { decision, decisionId } = service.check(req, 'grpc');
        response = render(decision, decisionId);
      }
    } catch (err) {
      // INTERNAL is an error to Envoy (failure_mode_allow / status_on_error
      // apply), never a denial, which is the honest answer to a bug.
      logger.error({ err: GateError.from(err).toJSON(), face: 'grpc' }, 'check failed');
      callback({ code: grpc.status.INTERNAL, details: 'internal error' });
      return;
    }
    callback(null, response);
  };
}

/** A held Check's answer, rendered as any other. */
function answerHeld(
  r: CheckResult,
  render: CheckResponseRenderer,
  callback: grpc.sendUnaryData<Buffer>,
  logger: FrontLogger,
): void {
  let response: Buffer;
  try {
    response = render(r.decision, r.decisionId);
  } catch (err) {
    logger.error({ err: GateError.from(err).toJSON(), face: 'grpc' }, 'check failed');
    callback({ code: grpc.status.INTERNAL, details: 'internal error' });
    return;
  }
  callback(null, response);
}

/** Milliseconds until the caller's deadline (Envoy's ext_authz timeout as grpc-timeout); undefined without one. */
export function callerWaitMs(deadline: grpc.Deadline, nowMs: number): number | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms - nowMs : undefined;
}

export function deadlinePassed(deadline: grpc.Deadline, nowMs: number): boolean {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) && ms <= nowMs;
}
