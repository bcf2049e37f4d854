/**
 * What Envoy sends: CheckRequests built and encoded with Envoy's official
 * protos (shipped with @grpc/grpc-js-xds), so the bytes on the wire carry
 * every attribute Envoy fills, including those the gate's own proto skips.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { officialCheckMethod as checkMethod, officialPackage } from '../../test/support/official-protos.js';

export { checkMethod, officialPackage };
export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

export interface DispatchOptions {
  readonly pluginId: string;
  readonly path?: string;
  /** Extra or replacement headers. */
  readonly headers?: Record<string, string>;
  readonly contextExtensions?: Record<string, string>;
}

/**
 * A CheckRequest as Envoy's ext_authz filter builds it for a dify-api → daemon
 * dispatch call: addresses, time, the request line and ~15 headers.
 */
export function dispatchCheckRequest(o: DispatchOptions): object {
  const path = o.path ?? '/plugin/6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00/dispatch/tool/invoke';
  const headers: Record<string, string> = {
    ':authority': 'plugin-daemon:5002',
    ':method': 'POST',
    ':path': path,
    ':scheme': 'http',
    'content-type': 'application/json',
    'content-length': '1832',
    'user-agent': 'python-httpx/0.27.2',
    accept: '*/*',
    'accept-encoding': 'gzip, deflate',
    'x-api-key': 'redacted-in-logs-0123456789abcdef',
    'x-plugin-id': o.pluginId,
    'x-request-id': '3b0f6c1e-8d2a-4c7b-9e5f-1a2b3c4d5e6f',
    'x-forwarded-proto': 'http',
    'x-envoy-expected-rq-timeout-ms': '600000',
    ...o.headers,
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.1.2.3', port_value: 41234 } } },
      destination: { address: { socket_address: { address: '10.1.9.9', port_value: 5002 } } },
      request: {
        time: { seconds: '1767225600', nanos: 123000000 },
        http: {
          id: '14412531234567890123',
          method: 'POST',
          headers,
          path,
          host: 'plugin-daemon:5002',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          size: '1832',
        },
      },
      context_extensions: o.contextExtensions ?? {},
    },
  };
}

export function encodeCheckRequest(msg: object): Buffer {
  return checkMethod().requestSerialize(msg);
}

/** The 5-byte gRPC length-prefixed message frame (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

export type CheckClient = grpc.Client & {
  Check(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: any) => void): grpc.ClientUnaryCall;
};

export function checkClient(port: number, options: grpc.ClientOptions = {}): CheckClient {
  const svc = officialPackage()['envoy.service.auth.v3.Authorization'] as protoLoader.ServiceDefinition;
  const Ctor = grpc.makeGenericClientConstructor(svc, 'Authorization');
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as unknown as CheckClient;
}

export function check(client: CheckClient, req: object, timeoutMs = 5000): Promise<{ err: grpc.ServiceError | null; res: any }> {
  return new Promise((resolve) => {
    client.Check(req, { deadline: Date.now() + timeoutMs }, (err, res) => resolve({ err, res }));
  });
}

/** reason and upstream_host from a CheckResponse's dynamic metadata. */
export function metadataOf(res: any): { reason: string | undefined; upstream: string | undefined; code: number | undefined } {
  const f = res?.dynamic_metadata?.fields ?? {};
  const str = (k: string): string | undefined => f[k]?.string_value ?? f[k]?.stringValue;
  return { reason: str('reason'), upstream: str('upstream_host'), code: res?.status?.code };
}
