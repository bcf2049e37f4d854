/**
 * Decision → CheckResponse bytes, written directly (no message objects, no
 * protobuf library). What does not depend on the request is encoded once:
 * per renderer the status of an allow, the ok_response without a routing
 * header, every metadata entry whose value is a reason; per deny template the
 * status, the denied_response headers before the decision id and the body.
 * Per call only the decision id, the upstream, the plugin id and held_ms are
 * written, into one Buffer of the exact size.
 *
 * Decisions are mostly fresh objects (an allow names its pod, a deny its
 * request's tenant), so deny templates are looked up by content, keyed by the
 * body string decide memoises per snapshot, and checked field by field.
 *
 * The bytes are those protobufjs wrote from the message objects before
 * (fields in number order, map entries in insertion order, zero values of set
 * fields written): test/front/wire-compat.test.ts decodes them with Envoy's
 * official protos and compares them with that encoding.
 */
import {
  DECISION_ID_HEADER,
  HTTP_UPSTREAM_HEADER,
  METADATA_UPSTREAM_HOST,
  REASON_HEADER,
  type Allow,
  type Decision,
  type Deny,
} from '../../decide/types.js';
import { WireWriter, lenFieldSize, messageField, stringField, utf8Size, varintField } from './wire/writer.js';

/** google.rpc.Code values the gate answers with. */
export const GRPC_OK = 0;
export const GRPC_INVALID_ARGUMENT = 3;
export const GRPC_UNAVAILABLE = 14;

/** Keys of CheckResponse.dynamic_metadata (namespace envoy.filters.http.ext_authz). */
export const METADATA_PLUGIN_ID = 'plugin_id';
export const METADATA_REASON = 'reason';
export const METADATA_DECISION_ID = 'decision_id';
/** Only with reason dry_run: the deny that enforcement would have returned. */
export const METADATA_WOULD_DENY = 'would_deny';
/** Only for a held request (hold-starting): milliseconds it waited, as a decimal string. */
export const METADATA_HELD_MS = 'held_ms';

/**
 * Headers only the gate writes. A client could send them itself, and whatever
 * reads them upstream must not be fooled, so every allow removes them from the
 * request before it goes on.
 */
export const GATE_OUTPUT_HEADERS: readonly string[] = [HTTP_UPSTREAM_HEADER, REASON_HEADER, DECISION_ID_HEADER];

export interface ResponseOptions {
  /** config `route-header`: lower-case, or undefined when routing is by metadata only. */
  readonly routeHeader: string | undefined;
}

/** An encoded envoy.service.auth.v3.CheckResponse, for grpc-js to send as it is. */
export type CheckResponseRenderer = (decision: Decision, decisionId: string) => Buffer;

// Field numbers (external_auth.proto, base.proto, google/rpc/status.proto, google/protobuf/struct.proto).
const CHECK_RESPONSE_STATUS = 1;
const CHECK_RESPONSE_DENIED = 2;
const CHECK_RESPONSE_OK = 3;
const CHECK_RESPONSE_METADATA = 4;
const STATUS_CODE = 1;
const STATUS_MESSAGE = 2;
const DENIED_STATUS = 1;
const DENIED_HEADERS = 2;
const DENIED_BODY = 3;
const HTTP_STATUS_CODE = 1;
const OK_HEADERS = 2;
const OK_HEADERS_TO_REMOVE = 5;
const OPTION_HEADER = 1;
const OPTION_APPEND_ACTION = 3;
const HEADER_KEY = 1;
const HEADER_VALUE = 2;
const STRUCT_FIELDS = 1;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
const VALUE_STRING = 3;

/**
 * Envoy reads only the first value of an ORIGINAL_DST routing header and
 * versions disagree on the deprecated `append` flag, so every header the gate
 * sets is OVERWRITE_IF_EXISTS_OR_ADD with `append` unset.
 */
const OVERWRITE_IF_EXISTS_OR_ADD = 2;
const APPEND_ACTION = varintField(OPTION_APPEND_ACTION, OVERWRITE_IF_EXISTS_OR_ADD);

/** A HeaderValueOption built once: field `field` of its parent. */
function headerOption(field: number, key: string, value: string): Buffer {
  return messageField(field, messageField(OPTION_HEADER, stringField(HEADER_KEY, key), stringField(HEADER_VALUE, value)), APPEND_ACTION);
}

/** A Struct.fields entry `key: { string_value: value }` built once (a field of the Struct). */
function metadataEntry(key: string, value: string): Buffer {
  return messageField(STRUCT_FIELDS, stringField(ENTRY_KEY, key), messageField(ENTRY_VALUE, stringField(VALUE_STRING, value)));
}

/** The parts of a per-call metadata entry or header that never change: its key, encoded as field 1. */
function keyField(key: string): Buffer {
  return stringField(ENTRY_KEY, key);
}

const STATUS_OK = messageField(CHECK_RESPONSE_STATUS, varintField(STATUS_CODE, GRPC_OK), stringField(STATUS_MESSAGE, ''));
const CONTENT_TYPE_JSON = headerOption(DENIED_HEADERS, 'content-type', 'application/json');
const UPSTREAM_KEY = keyField(METADATA_UPSTREAM_HOST);
const PLUGIN_ID_KEY = keyField(METADATA_PLUGIN_ID);
const DECISION_ID_KEY = keyField(METADATA_DECISION_ID);
const HELD_MS_KEY = keyField(METADATA_HELD_MS);
const DECISION_ID_HEADER_KEY = stringField(HEADER_KEY, DECISION_ID_HEADER);

/** Most deny templates kept; past it the table starts over (random plugin ids cannot grow it). */
const DENY_TEMPLATES = 4096;

/** A deny's bytes that do not depend on the request, and what they were built from. */
interface DenyTemplate {
  readonly reason: Deny['reason'];
  readonly httpStatus: number;
  readonly retryAfterS: number | undefined;
  readonly pluginId: string | undefined;
  /** CheckResponse.status. */
  readonly status: Buffer;
  /** DeniedHttpResponse status and the headers before the decision id. */
  readonly deniedHead: Buffer;
  /** DeniedHttpResponse.body. */
  readonly body: Buffer;
  /** Metadata entries before decision_id: plugin_id, reason. */
  readonly metadataHead: Buffer;
}

export function createResponseRenderer(opts: ResponseOptions): CheckResponseRenderer {
  const route = opts.routeHeader;
  // The routing header must never reach the cluster unless the gate wrote it:
  // Envoy does not sanitise it, and a client-sent value would pick the upstream.
  const removeWhenUnrouted = dedupe(route === undefined ? GATE_OUTPUT_HEADERS : [route, ...GATE_OUTPUT_HEADERS]);
  // When the gate does set it, it must not also be listed for removal.
  const removeWhenRouted = dedupe(GATE_OUTPUT_HEADERS.filter((h) => h !== route));
  const OK_UNROUTED = messageField(CHECK_RESPONSE_OK, ...removeWhenUnrouted.map((h) => stringField(OK_HEADERS_TO_REMOVE, h)));
  const REMOVE_WHEN_ROUTED = Buffer.concat(removeWhenRouted.map((h) => stringField(OK_HEADERS_TO_REMOVE, h)));
  const ROUTE_KEY = route === undefined ? undefined : stringField(HEADER_KEY, route);

  // Metadata entries whose value is a reason: a closed set, built on first use.
  const reasonEntries = new Map<string, Buffer>();
  const reasonEntry = (reason: string): Buffer => {
    let b = reasonEntries.get(reason);
    if (b === undefined) reasonEntries.set(reason, (b = metadataEntry(METADATA_REASON, reason)));
    return b;
  };
  const wouldDenyEntries = new Map<string, Buffer>();
  const wouldDenyEntry = (reason: string): Buffer => {
    let b = wouldDenyEntries.get(reason);
    if (b === undefined) wouldDenyEntries.set(reason, (b = metadataEntry(METADATA_WOULD_DENY, reason)));
    return b;
  };

  const templates = new Map<string, DenyTemplate>();
  const template = (d: Deny): DenyTemplate => {
    let t = templates.get(d.body);
    if (t !== undefined && t.reason === d.reason && t.httpStatus === d.httpStatus && t.retryAfterS === d.retryAfterS && t.pluginId === d.pluginId) return t;
    const headers: Buffer[] = [];
    if (d.retryAfterS !== undefined) headers.push(headerOption(DENIED_HEADERS, 'retry-after', String(d.retryAfterS)));
    headers.push(CONTENT_TYPE_JSON, headerOption(DENIED_HEADERS, REASON_HEADER, d.reason));
    t = {
      reason: d.reason,
      httpStatus: d.httpStatus,
      retryAfterS: d.retryAfterS,
      pluginId: d.pluginId,
      // Any non-zero code is a denial to Envoy; these two say why to anyone
      // reading gRPC stats or logs.
      status: messageField(CHECK_RESPONSE_STATUS, varintField(STATUS_CODE, d.httpStatus === 400 ? GRPC_INVALID_ARGUMENT : GRPC_UNAVAILABLE), stringField(STATUS_MESSAGE, d.reason)),
      // envoy.type.v3.HttpStatus.code is an enum: the status number is its varint.
      deniedHead: Buffer.concat([messageField(DENIED_STATUS, varintField(HTTP_STATUS_CODE, d.httpStatus)), ...headers]),
      body: stringField(DENIED_BODY, d.body),
      metadataHead: d.pluginId === undefined ? reasonEntry(d.reason) : Buffer.concat([metadataEntry(METADATA_PLUGIN_ID, d.pluginId), reasonEntry(d.reason)]),
    };
    if (templates.size >= DENY_TEMPLATES) templates.clear();
    templates.set(d.body, t);
    return t;
  };

  const allow = (d: Allow, decisionId: string): Buffer => {
    const upstream = d.upstream;
    const routed = ROUTE_KEY !== undefined && upstream !== undefined;
    const upstreamSize = upstream === undefined ? 0 : utf8Size(upstream);
    const pluginIdSize = d.pluginId === undefined ? 0 : utf8Size(d.pluginId);
    const idSize = utf8Size(decisionId);
    const held = d.heldMs === undefined ? undefined : String(d.heldMs);
    const heldSize = held === undefined ? 0 : held.length;

    const okSize = routed ? lenFieldSize(optionSize(ROUTE_KEY, upstreamSize)) + REMOVE_WHEN_ROUTED.length : 0;
    const reason = reasonEntry(d.reason);
    const wouldDeny = d.wouldDeny === undefined ? undefined : wouldDenyEntry(d.wouldDeny.reason);
    const metaSize =
      (upstream === undefined ? 0 : entrySize(UPSTREAM_KEY, upstreamSize)) +
      (d.pluginId === undefined ? 0 : entrySize(PLUGIN_ID_KEY, pluginIdSize)) +
      reason.length +
      entrySize(DECISION_ID_KEY, idSize) +
      (wouldDeny === undefined ? 0 : wouldDeny.length) +
      (held === undefined ? 0 : entrySize(HELD_MS_KEY, heldSize));

    const w = new WireWriter(STATUS_OK.length + (routed ? lenFieldSize(okSize) : OK_UNROUTED.length) + lenFieldSize(metaSize));
    w.raw(STATUS_OK);
    if (routed) {
      w.lenHeader(CHECK_RESPONSE_OK, okSize);
      writeOption(w, OK_HEADERS, ROUTE_KEY, upstream, upstreamSize);
      w.raw(REMOVE_WHEN_ROUTED);
    } else {
      w.raw(OK_UNROUTED);
    }
    w.lenHeader(CHECK_RESPONSE_METADATA, metaSize);
    if (upstream !== undefined) writeEntry(w, UPSTREAM_KEY, upstream, upstreamSize);
    if (d.pluginId !== undefined) writeEntry(w, PLUGIN_ID_KEY, d.pluginId, pluginIdSize);
    w.raw(reason);
    writeEntry(w, DECISION_ID_KEY, decisionId, idSize);
    if (wouldDeny !== undefined) w.raw(wouldDeny);
    if (held !== undefined) writeEntry(w, HELD_MS_KEY, held, heldSize);
    return w.done();
  };

  const deny = (d: Deny, decisionId: string): Buffer => {
    const t = template(d);
    const idSize = utf8Size(decisionId);
    const held = d.heldMs === undefined ? undefined : String(d.heldMs);
    const heldSize = held === undefined ? 0 : held.length;

    // The decision id header is the one header written per call.
    const deniedSize = t.deniedHead.length + lenFieldSize(optionSize(DECISION_ID_HEADER_KEY, idSize)) + t.body.length;
    const metaSize = t.metadataHead.length + entrySize(DECISION_ID_KEY, idSize) + (held === undefined ? 0 : entrySize(HELD_MS_KEY, heldSize));

    const w = new WireWriter(t.status.length + lenFieldSize(deniedSize) + lenFieldSize(metaSize));
    w.raw(t.status);
    w.lenHeader(CHECK_RESPONSE_DENIED, deniedSize);
    w.raw(t.deniedHead);
    writeOption(w, DENIED_HEADERS, DECISION_ID_HEADER_KEY, decisionId, idSize);
    w.raw(t.body);
    w.lenHeader(CHECK_RESPONSE_METADATA, metaSize);
    w.raw(t.metadataHead);
    writeEntry(w, DECISION_ID_KEY, decisionId, idSize);
    if (held !== undefined) writeEntry(w, HELD_MS_KEY, held, heldSize);
    return w.done();
  };

  return (decision, decisionId) => (decision.allow ? allow(decision, decisionId) : deny(decision, decisionId));
}

/**
 * Metadata values are strings, and absent ones are omitted: Envoy's metadata
 * matchers see exactly what is known. An entry is
 * fields { key (1): name, value (2): Value { string_value (3): value } }.
 */
/** Size of a HeaderValueOption { header { key, value }, append_action } whose key field is pre-encoded. */
function optionSize(key: Buffer, valueSize: number): number {
  return lenFieldSize(key.length + lenFieldSize(valueSize)) + APPEND_ACTION.length;
}

/** That HeaderValueOption as field `field` (OK_HEADERS, DENIED_HEADERS), the value written per call. */
function writeOption(w: WireWriter, field: number, key: Buffer, value: string, valueSize: number): void {
  w.lenHeader(field, optionSize(key, valueSize));
  w.lenHeader(OPTION_HEADER, key.length + lenFieldSize(valueSize));
  w.raw(key);
  w.lenHeader(HEADER_VALUE, valueSize);
  w.string(value, valueSize);
  w.raw(APPEND_ACTION);
}

function entrySize(key: Buffer, valueSize: number): number {
  return lenFieldSize(key.length + lenFieldSize(lenFieldSize(valueSize)));
}

function writeEntry(w: WireWriter, key: Buffer, value: string, valueSize: number): void {
  const valueMessage = lenFieldSize(valueSize);
  w.lenHeader(STRUCT_FIELDS, key.length + lenFieldSize(valueMessage));
  w.raw(key);
  w.lenHeader(ENTRY_VALUE, valueMessage);
  w.lenHeader(VALUE_STRING, valueSize);
  w.string(value, valueSize);
}

function dedupe(names: readonly string[]): readonly string[] {
  return [...new Set(names)];
}
