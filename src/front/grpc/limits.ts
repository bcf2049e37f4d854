/**
 * Bounds on what a gRPC client can hold open: 30,000 streams that never sent
 * END_STREAM once stayed open for as long as the client liked and grew the gate
 * by 136 MB. Each bound is an option:
 *
 * - `grpc-receive-timeout`: a call whose request has not fully arrived (message
 *   and half-close) within it is answered DEADLINE_EXCEEDED and closed. Envoy
 *   sends a CheckRequest in one go, so only a broken or hostile client meets it.
 * - `grpc-max-concurrent-streams`: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.
 * - `grpc-max-connections`: connections accepted at once; the listener refuses more.
 * - `grpc-max-connection-idle`: a connection with no call for this long gets a GOAWAY.
 *
 * The timers here bound socket activity, so they run on real time.
 */
import { constants as http2constants, type ServerHttp2Stream } from 'node:http2';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../../config/config.js';
import type { HostPort } from '../../core/address.js';

export type GrpcLimits = Partial<Pick<Config, 'grpcReceiveTimeoutMs' | 'grpcMaxConcurrentStreams' | 'grpcMaxConnections' | 'grpcMaxConnectionIdleMs' | 'grpcMaxMessageBytes'>>;

/** grpc-js server options for the limits it enforces itself. */
export function limitServerOptions(limits: GrpcLimits): grpc.ServerOptions {
  const out: Record<string, unknown> = {};
  if (limits.grpcMaxConcurrentStreams !== undefined) out['grpc.max_concurrent_streams'] = limits.grpcMaxConcurrentStreams;
  // Decoding costs time on the loop that answers every Check: a message is bounded by what Envoy sends.
  if (limits.grpcMaxMessageBytes !== undefined) out['grpc.max_receive_message_length'] = limits.grpcMaxMessageBytes;
  if (limits.grpcMaxConnectionIdleMs !== undefined) out['grpc.max_connection_idle_ms'] = limits.grpcMaxConnectionIdleMs;
  if (limits.grpcReceiveTimeoutMs !== undefined) out['interceptors'] = [receiveTimeoutInterceptor(limits.grpcReceiveTimeoutMs)];
  return out as grpc.ServerOptions;
}

/**
 * Answers DEADLINE_EXCEEDED to a call whose request has not fully arrived
 * within `ms`. Only calls with a single request message (Check, health Check
 * and Watch): their request is complete at half-close. Reflection's
 * bidirectional stream (opt-in, for grpcurl) is left alone.
 */
export function receiveTimeoutInterceptor(ms: number): grpc.ServerInterceptor {
  return (method, call) => {
    if (method.requestStream) return new grpc.ServerInterceptingCall(call);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start(next) {
        timer = setTimeout(() => {
          timer = undefined;
          intercepting.sendStatus({ code: grpc.status.DEADLINE_EXCEEDED, details: `request not received within grpc-receive-timeout (${ms} ms)` });
          // The status ends the server's half of the stream, but the client's half
          // stays open (and keeps its stream slot and buffers) until the client ends
          // it. gRPC over HTTP/2 says a server that answers before the request is
          // complete resets the stream with NO_ERROR; grpc-js does not, so do it here
          // once the status frame has been queued.
          setImmediate(() => resetStream(call));
        }, ms);
        timer.unref();
        next({
          onReceiveHalfClose(nextHalfClose) {
            stop();
            nextHalfClose();
          },
          onCancel() {
            stop();
          },
        });
      },
      sendStatus(status, next) {
        stop();
        next(status);
      },
    });
    return intercepting;
  };
}

/**
 * RST_STREAM(NO_ERROR) on the call's HTTP/2 stream. grpc-js keeps the stream
 * on its base call object (`stream`, not part of its typed API); if a future
 * version moves it, nothing happens here and test/front/grpc-limits.test.ts
 * fails, because the unfinished streams are then never closed.
 */
function resetStream(call: grpc.ServerInterceptingCallInterface): void {
  const stream = (call as unknown as { stream?: Partial<ServerHttp2Stream> }).stream;
  if (stream !== undefined && typeof stream.close === 'function' && stream.closed === false) stream.close(http2constants.NGHTTP2_NO_ERROR);
}

export interface CappedListener {
  readonly port: number;
  /** Stops accepting (open connections are the gRPC server's to close). */
  close(): void;
}

/**
 * Listens on `listen` with our own TCP server and hands each connection to
 * grpc-js through its connection injector, so the listener can refuse
 * connections past `maxConnections` (grpc-js's own bind has no such bound).
 */
export async function listenCapped(
  server: grpc.Server,
  credentials: grpc.ServerCredentials,
  listen: HostPort,
  maxConnections: number | undefined,
  onRefused?: () => void,
): Promise<CappedListener> {
  const injector = server.createConnectionInjector(credentials);
  const tcp: NetServer = createServer((socket: Socket) => injector.injectConnection(socket));
  if (maxConnections !== undefined) tcp.maxConnections = maxConnections;
  // Node closes a connection past maxConnections itself and says so with 'drop'.
  if (onRefused !== undefined) tcp.on('drop', onRefused);
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(listen.port, listen.host, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    injector.destroy();
    throw err;
  }
  // After start-up an accept error (EMFILE) must not crash the process.
  tcp.on('error', () => undefined);
  const address = tcp.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : listen.port,
    close() {
      tcp.close();
    },
  };
}
