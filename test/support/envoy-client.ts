/**
 * An Envoy-side view of the gate for end-to-end tests: a grpc-js client built
 * from Envoy's official protos (the copies @grpc/grpc-js-xds ships), loaded with
 * this file's own options so nothing of the gate's proto handling is shared; a
 * grpc.health.v1 client; what Envoy does with an ok_response's header
 * mutations; and a plain HTTP client for sending the request on to the pod the
 * gate chose, as an ORIGINAL_DST cluster would.
 */
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { EXTERNAL_AUTH_PROTO, OFFICIAL_DEPS, OFFICIAL_INCLUDE_DIRS } from './official-protos.js';

export { OFFICIAL_DEPS };

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

/** Per-call deadline: every RPC of these tests is bounded. */
const CALL_TIMEOUT_MS = 5_000;

let pkg: protoLoader.PackageDefinition | undefined;
function officialPackage(): protoLoader.PackageDefinition {
  // Enum values as names, so an assertion reads like the proto it checks.
  pkg ??= protoLoader.loadSync(EXTERNAL_AUTH_PROTO, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [...OFFICIAL_INCLUDE_DIRS],
  });
  return pkg;
}

/** envoy.type.v3.StatusCode name → number (the enum is decoded to names). */
export function httpStatusNumber(name: unknown): number {
  if (typeof name === 'number') return name;
  const def = officialPackage()['envoy.type.v3.StatusCode'] as protoLoader.EnumTypeDefinition | undefined;
  const values = (def?.type as { value?: { name: string; number: number }[] } | undefined)?.value ?? [];
  const found = values.find((v) => v.name === name);
  if (found === undefined) throw new Error(`unknown envoy.type.v3.StatusCode ${String(name)}`);
  return found.number;
}

// ------------------------------------------------------------------ requests

export interface CheckInput {
  readonly method?: string;
  /** As Envoy sends it: the query string included. */
  readonly path: string;
  /** Lower-case keys, as Envoy's `headers` map has them. */
  readonly headers?: Record<string, string>;
  /** Sent as `header_map` entries with `raw_value` bytes (Envoy's encode_raw_headers) instead of `headers`. */
  readonly rawHeaders?: Record<string, string>;
  readonly contextExtensions?: Record<string, string>;
  readonly host?: string;
  readonly id?: string;
}

/** A CheckRequest shaped like one Envoy's ext_authz filter sends. */
export function checkRequest(input: CheckInput): object {
  const http: Record<string, unknown> = {
    id: input.id ?? '',
    method: input.method ?? 'POST',
    path: input.path,
    host: input.host ?? 'plugin-daemon:5002',
    scheme: 'http',
    protocol: 'HTTP/1.1',
  };
  if (input.rawHeaders !== undefined) {
    http['header_map'] = {
      headers: [
        { key: ':authority', raw_value: Buffer.from(input.host ?? 'plugin-daemon:5002') },
        { key: ':path', raw_value: Buffer.from(input.path) },
        { key: ':method', raw_value: Buffer.from(input.method ?? 'POST') },
        ...Object.entries(input.rawHeaders).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })),
      ],
    };
  } else {
    http['headers'] = { ':authority': input.host ?? 'plugin-daemon:5002', ':path': input.path, ':method': input.method ?? 'POST', ...input.headers };
  }
  return {
    attributes: {
      source: { address: { socket_address: { address: '127.0.0.1', port_value: 40000 } } },
      destination: { address: { socket_address: { address: '127.0.0.1', port_value: 5002 } } },
      request: { time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 }, http },
      context_extensions: input.contextExtensions ?? {},
    },
  };
}

/** A dispatch call as dify-api makes it: POST /plugin/{tenant}/dispatch/llm/invoke with X-Plugin-ID. */
export function dispatchCheck(pluginId: string, more: Omit<CheckInput, 'path'> & { path?: string } = {}): object {
  return checkRequest({
    ...more,
    path: more.path ?? '/plugin/tenant-1/dispatch/llm/invoke',
    headers: { 'x-plugin-id': pluginId, 'content-type': 'application/json', ...more.headers },
  });
}

// ----------------------------------------------------------------- responses

export interface HeaderOption {
  readonly key: string;
  readonly value: string;
  /** Name of the HeaderAppendAction. */
  readonly appendAction: string;
  /** The deprecated BoolValue: null when unset. */
  readonly append: boolean | null;
}

/** A CheckResponse reduced to what the tests look at. */
export interface CheckOutcome {
  /** google.rpc.Status code: 0 allows, anything else denies. */
  readonly code: number;
  readonly message: string;
  readonly kind: 'ok_response' | 'denied_response' | 'none';
  /** dynamic_metadata fields, string values only. */
  readonly metadata: Record<string, string>;
  // ok_response
  readonly setHeaders: readonly HeaderOption[];
  readonly headersToRemove: readonly string[];
  // denied_response
  readonly httpStatus: number | undefined;
  /** Denied response headers by lower-case name (every value kept). */
  readonly deniedHeaders: ReadonlyMap<string, readonly string[]>;
  readonly body: string | undefined;
  /** The decoded message, for anything not reduced above. */
  readonly raw: any;
}

function headerOptions(list: unknown): HeaderOption[] {
  if (!Array.isArray(list)) return [];
  return list.map((h: any) => ({
    key: String(h?.header?.key ?? ''),
    value: String(h?.header?.value ?? ''),
    appendAction: String(h?.append_action ?? ''),
    append: h?.append === null || h?.append === undefined ? null : Boolean(h.append.value),
  }));
}

export function outcomeOf(res: any): CheckOutcome {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries<any>(res?.dynamic_metadata?.fields ?? {})) {
    if (typeof v?.stringValue === 'string') fields[k] = v.stringValue;
  }
  const kind = res?.http_response === 'ok_response' || res?.http_response === 'denied_response' ? res.http_response : 'none';
  const denied = kind === 'denied_response' ? res.denied_response : undefined;
  const deniedHeaders = new Map<string, string[]>();
  for (const h of headerOptions(denied?.headers)) {
    const k = h.key.toLowerCase();
    deniedHeaders.set(k, [...(deniedHeaders.get(k) ?? []), h.value]);
  }
  return {
    code: Number(res?.status?.code ?? -1),
    message: String(res?.status?.message ?? ''),
    kind,
    metadata: fields,
    setHeaders: kind === 'ok_response' ? headerOptions(res.ok_response.headers) : [],
    headersToRemove: kind === 'ok_response' ? (res.ok_response.headers_to_remove ?? []).map(String) : [],
    httpStatus: denied?.status?.code === undefined || denied.status === null ? undefined : httpStatusNumber(denied.status.code),
    deniedHeaders,
    body: denied?.body,
    raw: res,
  };
}

// -------------------------------------------------------------------- client

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: any) => void) => void;

/** Envoy's side of the gate: Authorization/Check and grpc.health.v1 over one channel each. */
export class EnvoyAuthClient {
  private readonly auth: grpc.Client & { Check: Unary };
  private readonly health: grpc.Client & { check: Unary };

  constructor(port: number) {
    const svc = officialPackage()[AUTHORIZATION_SERVICE] as protoLoader.ServiceDefinition;
    const Auth = grpc.makeGenericClientConstructor(svc, 'Authorization');
    // Loopback only, whatever proxy variables the environment carries.
    const options = { 'grpc.enable_http_proxy': 0 };
    this.auth = new Auth(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as any;
    const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
    this.health = new Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as any;
  }

  /** One Check. A transport or server error rejects: the gate answers every decision as a successful RPC. */
  check(req: object, deadlineMs = CALL_TIMEOUT_MS): Promise<CheckOutcome> {
    return this.startCheck(req, deadlineMs).outcome;
  }

  /** One Check the caller can cancel, as Envoy resets the stream of a request whose client went away. */
  startCheck(req: object, deadlineMs = CALL_TIMEOUT_MS): { outcome: Promise<CheckOutcome>; cancel(): void } {
    let call: grpc.ClientUnaryCall | undefined;
    const outcome = new Promise<CheckOutcome>((resolve, reject) => {
      call = (this.auth.Check as unknown as (...a: unknown[]) => grpc.ClientUnaryCall)(
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err: grpc.ServiceError | null, res?: unknown) => {
          if (err !== null) reject(new Error(`Check failed: ${grpc.status[err.code]} ${err.details}`));
          else resolve(outcomeOf(res));
        },
      );
    });
    return { outcome, cancel: () => call?.cancel() };
  }

  /** grpc.health.v1.Health/Check, unary, as Envoy's health checker calls it: the status name or `error:<code>`. */
  healthOf(service: string): Promise<string> {
    return new Promise((resolve) => {
      this.health.check({ service }, new grpc.Metadata(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, res) =>
        resolve(err !== null ? `error:${grpc.status[err.code]}` : String(res?.status)),
      );
    });
  }

  close(): void {
    this.auth.close();
    this.health.close();
  }
}

// ---------------------------------------------------- what Envoy does with it

/**
 * The upstream request's headers after Envoy applies an ok_response: each
 * `headers` entry by its append_action, then `headers_to_remove` (Envoy ignores
 * `:`-pseudo-headers and `host` there). Keys lower-case; repeated values kept in order.
 */
export function applyOkResponse(client: Record<string, string | readonly string[]>, out: CheckOutcome): Map<string, string[]> {
  const h = new Map<string, string[]>();
  for (const [k, v] of Object.entries(client)) h.set(k.toLowerCase(), typeof v === 'string' ? [v] : [...v]);
  for (const o of out.setHeaders) {
    const k = o.key.toLowerCase();
    const have = h.get(k);
    switch (o.appendAction) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        h.set(k, [...(have ?? []), o.value]);
        break;
      case 'ADD_IF_ABSENT':
        if (have === undefined) h.set(k, [o.value]);
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        h.set(k, [o.value]);
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (have !== undefined) h.set(k, [o.value]);
        break;
      default:
        throw new Error(`unknown append_action ${o.appendAction}`);
    }
  }
  for (const k of out.headersToRemove) {
    const name = k.toLowerCase();
    if (name.startsWith(':') || name === 'host') continue;
    h.delete(name);
  }
  return h;
}

// ----------------------------------------------------------- plain HTTP/1.1

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One HTTP/1.1 request to a loopback `host:port`, on its own connection (no
 * agent: nothing lingers after the test), bounded in time.
 */
export function httpRequest(
  hostPort: string,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: string; timeoutMs?: number },
): Promise<HttpAnswer> {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hostPort);
  if (m === null) return Promise.reject(new Error(`not host:port: ${hostPort}`));
  const host = m[1]!.replace(/^\[|\]$/g, '');
  if (!(host === 'localhost' || host === '::1' || host.startsWith('127.'))) {
    return Promise.reject(new Error(`refusing to send a test request off loopback: ${hostPort}`));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: Number(m[2]), method: opts.method ?? 'GET', path: opts.path, headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 5_000, () => req.destroy(new Error(`request to ${hostPort}${opts.path} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The dispatch call itself, sent to the pod an allow named (`IP:port`), as Envoy's ORIGINAL_DST cluster would. */
export function dispatchTo(upstream: string, pluginId: string, tenant = 'tenant-1'): Promise<HttpAnswer> {
  return httpRequest(upstream, {
    method: 'POST',
    path: `/plugin/${tenant}/dispatch/llm/invoke`,
    headers: { 'x-plugin-id': pluginId, 'content-type': 'application/json' },
    body: '{"provider":"openai","model":"gpt-4o-mini"}',
  });
}

/**
 * The daemon error envelope a deny carries, checked for shape: exactly one
 * JSON line `{"code","message":"<JSON>","data":null}`. Returns the inner message.
 */
export function parseEnvelopeLine(body: string | undefined): { code: number; errorType: string; message: string } {
  if (typeof body !== 'string') throw new Error('no body');
  if (!body.endsWith('\n') || body.indexOf('\n') !== body.length - 1) {
    throw new Error(`body is not exactly one line: ${JSON.stringify(body)}`);
  }
  const outer = JSON.parse(body) as { code: unknown; message: unknown; data: unknown };
  if (Object.keys(outer).sort().join() !== 'code,data,message' || outer.data !== null || typeof outer.message !== 'string') {
    throw new Error(`not a daemon envelope: ${body}`);
  }
  const inner = JSON.parse(outer.message) as { message: unknown; error_type: unknown; args: unknown };
  if (typeof inner.message !== 'string' || typeof inner.error_type !== 'string' || inner.args !== null) {
    throw new Error(`envelope message is not the daemon's error JSON: ${outer.message}`);
  }
  return { code: Number(outer.code), errorType: inner.error_type, message: inner.message };
}
