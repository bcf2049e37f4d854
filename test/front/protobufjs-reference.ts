/**
 * The gRPC face as it was before its own codec, kept as the reference the
 * codec is compared with: protobufjs (through proto-loader) decodes a
 * CheckRequest into a message object that `referenceGateRequest` maps to a
 * GateRequest, and `referenceResponse` builds the CheckResponse message object
 * that protobufjs encodes. Test code only; the gate never runs it.
 */
import type * as protoLoader from '@grpc/proto-loader';
import type { Allow, Decision, Deny, GateRequest } from '../../src/decide/types.js';
import { DECISION_ID_HEADER, METADATA_UPSTREAM_HOST, REASON_HEADER } from '../../src/decide/types.js';
import { authorizationService } from '../../src/front/grpc/protos.js';
import {
  GATE_OUTPUT_HEADERS,
  GRPC_INVALID_ARGUMENT,
  GRPC_OK,
  GRPC_UNAVAILABLE,
  METADATA_DECISION_ID,
  METADATA_HELD_MS,
  METADATA_PLUGIN_ID,
  METADATA_REASON,
  METADATA_WOULD_DENY,
} from '../../src/front/grpc/response.js';
import { HeaderCollector, REQUEST_LIMITS, clip, makeGateRequest } from '../../src/front/service.js';

/** proto-loader's Check method over the gate's own proto/ (protobufjs underneath). */
export function protobufjsCheck(): protoLoader.MethodDefinition<any, any> {
  return authorizationService()['Check'] as protoLoader.MethodDefinition<any, any>;
}

interface HeaderValueMsg {
  key?: string | null;
  value?: string | null;
  raw_value?: Uint8Array | string | null;
}

interface CheckRequestMsg {
  attributes?: {
    request?: {
      http?: {
        id?: string | null;
        method?: string | null;
        headers?: Record<string, string> | null;
        header_map?: { headers?: HeaderValueMsg[] | null } | null;
        path?: string | null;
        host?: string | null;
      } | null;
    } | null;
    context_extensions?: Record<string, string> | null;
  } | null;
}

const NO_EXTENSIONS: ReadonlyMap<string, string> = new Map();

/** CheckRequest bytes → GateRequest the old way: protobufjs decode, then the object mapping. */
export function referenceDecode(bytes: Buffer): GateRequest {
  return referenceGateRequest(protobufjsCheck().requestDeserialize(bytes) as CheckRequestMsg);
}

export function referenceGateRequest(msg: CheckRequestMsg | null | undefined): GateRequest {
  const attrs = msg?.attributes ?? undefined;
  const http = attrs?.request?.http ?? undefined;
  const headers = new HeaderCollector();
  const map = http?.headers;
  if (map !== null && map !== undefined && typeof map === 'object') {
    for (const key of Object.keys(map)) {
      const v = map[key];
      if (typeof v === 'string') headers.add(key, v);
    }
  }
  const list = http?.header_map?.headers;
  if (Array.isArray(list)) for (const entry of list) addRaw(headers, entry);
  const host = http?.host;
  if (headers.get('host') === undefined && typeof host === 'string' && host !== '') headers.set('host', host);
  const id = http?.id;
  const requestId = headers.get('x-request-id') ?? (typeof id === 'string' && id !== '' ? id : undefined);
  return makeGateRequest({ method: str(http?.method), path: str(http?.path), headers, contextExtensions: extensions(attrs?.context_extensions), requestId });
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function addRaw(headers: HeaderCollector, entry: HeaderValueMsg | null | undefined): void {
  if (entry === null || entry === undefined) return;
  const key = entry.key;
  if (typeof key !== 'string') return;
  const raw = entry.raw_value;
  let value: string;
  if (raw instanceof Uint8Array && raw.length > 0) {
    const n = Math.min(raw.length, REQUEST_LIMITS.maxHeaderValueLength);
    value = Buffer.from(raw.buffer, raw.byteOffset, n).toString('utf8');
  } else {
    value = str(entry.value);
  }
  headers.add(key, value);
}

function extensions(ext: Record<string, string> | null | undefined): ReadonlyMap<string, string> {
  if (ext === null || ext === undefined || typeof ext !== 'object') return NO_EXTENSIONS;
  let out: Map<string, string> | undefined;
  for (const key of Object.keys(ext)) {
    const v = ext[key];
    if (typeof v !== 'string' || key.length > REQUEST_LIMITS.maxContextExtensionLength) continue;
    out ??= new Map();
    if (out.size >= REQUEST_LIMITS.maxContextExtensions) break;
    out.set(key, clip(v, REQUEST_LIMITS.maxContextExtensionLength));
  }
  return out ?? NO_EXTENSIONS;
}

function overwrite(key: string, value: string): object {
  return { header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

/** The CheckResponse message object the old renderer built for (decision, id). */
export function referenceResponse(routeHeader: string | undefined, d: Decision, decisionId: string): object {
  const route = routeHeader;
  const removeWhenUnrouted = [...new Set(route === undefined ? GATE_OUTPUT_HEADERS : [route, ...GATE_OUTPUT_HEADERS])];
  const removeWhenRouted = [...new Set(GATE_OUTPUT_HEADERS.filter((h) => h !== route))];
  if (d.allow) {
    const a: Allow = d;
    const routed = route !== undefined && a.upstream !== undefined;
    return {
      status: { code: GRPC_OK, message: '' },
      ok_response: { headers: routed ? [overwrite(route, a.upstream!)] : [], headers_to_remove: routed ? removeWhenRouted : removeWhenUnrouted },
      dynamic_metadata: metadata(a.upstream, a.pluginId, a.reason, decisionId, a.wouldDeny?.reason, a.heldMs),
    };
  }
  const n: Deny = d;
  const headers: object[] = [];
  if (n.retryAfterS !== undefined) headers.push(overwrite('retry-after', String(n.retryAfterS)));
  headers.push(overwrite('content-type', 'application/json'), overwrite(REASON_HEADER, n.reason), overwrite(DECISION_ID_HEADER, decisionId));
  return {
    status: { code: n.httpStatus === 400 ? GRPC_INVALID_ARGUMENT : GRPC_UNAVAILABLE, message: n.reason },
    denied_response: { status: { code: n.httpStatus }, headers, body: n.body },
    dynamic_metadata: metadata(undefined, n.pluginId, n.reason, decisionId, undefined, n.heldMs),
  };
}

function metadata(upstream: string | undefined, pluginId: string | undefined, reason: string, decisionId: string, wouldDeny?: string, heldMs?: number): object {
  const fields: Record<string, { stringValue: string }> = {};
  if (upstream !== undefined) fields[METADATA_UPSTREAM_HOST] = { stringValue: upstream };
  if (pluginId !== undefined) fields[METADATA_PLUGIN_ID] = { stringValue: pluginId };
  fields[METADATA_REASON] = { stringValue: reason };
  fields[METADATA_DECISION_ID] = { stringValue: decisionId };
  if (wouldDeny !== undefined) fields[METADATA_WOULD_DENY] = { stringValue: wouldDeny };
  if (heldMs !== undefined) fields[METADATA_HELD_MS] = { stringValue: String(heldMs) };
  return { fields };
}

/** The bytes protobufjs wrote for that object. */
export function referenceResponseBytes(routeHeader: string | undefined, d: Decision, decisionId: string): Buffer {
  return protobufjsCheck().responseSerialize(referenceResponse(routeHeader, d, decisionId));
}
