/**
 * CheckRequest bytes → GateRequest, in one pass over the wire, reading only
 * what a decision uses:
 *
 *   CheckRequest.attributes (1)
 *     AttributeContext.request (4) → Request.http (2) → HttpRequest
 *       id (1), method (2), headers (3) map<string,string>, path (4), host (5),
 *       header_map (13) → HeaderMap.headers (1) → HeaderValue key (1), value (2), raw_value (3)
 *     AttributeContext.context_extensions (10) map<string,string>
 *
 * Everything else (peers, metadata, TLS session, time, body, query, size, …)
 * is skipped by wire type without being decoded. Field numbers are those of
 * proto/envoy/service/auth/v3/attribute_context.proto and
 * proto/envoy/config/core/v3/base.proto, checked against Envoy's own protos by
 * test/front/wire-compat.test.ts.
 *
 * Protobuf's rules hold: fields in any order; a scalar given twice, last wins;
 * a message given twice is merged (every occurrence is read into the same
 * fields below); a map key given twice, last wins; a map entry without key or
 * value reads it as ""; a known field number with an unexpected wire type is
 * an unknown field. Strings are UTF-8, invalid bytes read as U+FFFD.
 *
 * Malformed input throws (reader.ts); grpc-js then answers the call INTERNAL
 * ("Error deserializing request") and keeps serving. Well-formed input never
 * throws: missing attributes give an empty method and path, which the decision
 * treats as not plugin-scoped.
 */
import type { GateRequest } from '../../decide/types.js';
import { HeaderCollector, REQUEST_LIMITS, clip, makeGateRequest } from '../service.js';
import { WireReader } from './wire/reader.js';

// Tags (field number << 3 | wire type 2) of the length-delimited fields read.
const CHECK_REQUEST_ATTRIBUTES = 0x0a; // 1
const ATTRIBUTES_REQUEST = 0x22; // 4
const ATTRIBUTES_CONTEXT_EXTENSIONS = 0x52; // 10
const REQUEST_HTTP = 0x12; // 2
const HTTP_ID = 0x0a; // 1
const HTTP_METHOD = 0x12; // 2
const HTTP_HEADERS = 0x1a; // 3
const HTTP_PATH = 0x22; // 4
const HTTP_HOST = 0x2a; // 5
const HTTP_HEADER_MAP = 0x6a; // 13
const HEADER_MAP_HEADERS = 0x0a; // 1
const HEADER_VALUE_KEY = 0x0a; // 1
const HEADER_VALUE_VALUE = 0x12; // 2
const HEADER_VALUE_RAW_VALUE = 0x1a; // 3
const MAP_ENTRY_KEY = 0x0a; // 1
const MAP_ENTRY_VALUE = 0x12; // 2

const NO_EXTENSIONS: ReadonlyMap<string, string> = new Map();

/**
 * What one request's walk has found so far. Scalars are kept as byte ranges
 * (start, end; -1 when absent) and decoded once at the end, so a field given
 * twice costs no discarded string.
 */
class Found {
  idStart = -1;
  idEnd = -1;
  methodStart = -1;
  methodEnd = -1;
  pathStart = -1;
  pathEnd = -1;
  hostStart = -1;
  hostEnd = -1;
  /** HttpRequest.headers, in wire order of first appearance, last value wins. */
  headers: Map<string, string> | undefined = undefined;
  /** HttpRequest.header_map entries as key, value, key, value, … */
  headerList: string[] | undefined = undefined;
  extensions: Map<string, string> | undefined = undefined;
}

/** grpc-js's requestDeserialize for Authorization/Check. */
export function decodeCheckRequest(bytes: Uint8Array): GateRequest {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new WireReader(buf);
  const f = new Found();
  const end = buf.length;
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === CHECK_REQUEST_ATTRIBUTES) attributes(r, r.lenEnd(end), f);
    else r.skip(t, end);
  }
  return toGateRequest(buf, f);
}

function attributes(r: WireReader, end: number, f: Found): void {
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === ATTRIBUTES_REQUEST) request(r, r.lenEnd(end), f);
    else if (t === ATTRIBUTES_CONTEXT_EXTENSIONS) f.extensions = mapEntry(r, r.lenEnd(end), f.extensions);
    else r.skip(t, end);
  }
}

function request(r: WireReader, end: number, f: Found): void {
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === REQUEST_HTTP) http(r, r.lenEnd(end), f);
    else r.skip(t, end);
  }
}

function http(r: WireReader, end: number, f: Found): void {
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    switch (t) {
      case HTTP_ID:
        f.idEnd = r.lenEnd(end);
        f.idStart = r.pos;
        r.pos = f.idEnd;
        break;
      case HTTP_METHOD:
        f.methodEnd = r.lenEnd(end);
        f.methodStart = r.pos;
        r.pos = f.methodEnd;
        break;
      case HTTP_HEADERS:
        f.headers = mapEntry(r, r.lenEnd(end), f.headers);
        break;
      case HTTP_PATH:
        f.pathEnd = r.lenEnd(end);
        f.pathStart = r.pos;
        r.pos = f.pathEnd;
        break;
      case HTTP_HOST:
        f.hostEnd = r.lenEnd(end);
        f.hostStart = r.pos;
        r.pos = f.hostEnd;
        break;
      case HTTP_HEADER_MAP:
        headerMap(r, r.lenEnd(end), f);
        break;
      default:
        r.skip(t, end);
    }
  }
}

function headerMap(r: WireReader, end: number, f: Found): void {
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === HEADER_MAP_HEADERS) headerValue(r, r.lenEnd(end), f);
    else r.skip(t, end);
  }
}

/**
 * One HeaderValue. raw_value holds the header's bytes (Envoy's
 * encode_raw_headers); they are decoded as UTF-8 so that both of Envoy's
 * encodings give the same string (the `headers` map is a proto string). Bytes
 * are capped before decoding, so time stays bounded. An entry without a key
 * names no header and is dropped.
 */
function headerValue(r: WireReader, end: number, f: Found): void {
  let keyStart = 0;
  let keyEnd = 0;
  let valueStart = 0;
  let valueEnd = 0;
  let rawStart = 0;
  let rawEnd = 0;
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === HEADER_VALUE_KEY) {
      keyEnd = r.lenEnd(end);
      keyStart = r.pos;
      r.pos = keyEnd;
    } else if (t === HEADER_VALUE_VALUE) {
      valueEnd = r.lenEnd(end);
      valueStart = r.pos;
      r.pos = valueEnd;
    } else if (t === HEADER_VALUE_RAW_VALUE) {
      rawEnd = r.lenEnd(end);
      rawStart = r.pos;
      r.pos = rawEnd;
    } else {
      r.skip(t, end);
    }
  }
  if (keyEnd === keyStart) return;
  const buf = r.buf as Buffer;
  const value =
    rawEnd > rawStart
      ? text(buf, rawStart, Math.min(rawEnd, rawStart + REQUEST_LIMITS.maxHeaderValueLength))
      : text(buf, valueStart, valueEnd);
  (f.headerList ??= []).push(text(buf, keyStart, keyEnd), value);
}

/** One map<string,string> entry into `map` (created on first use). */
function mapEntry(r: WireReader, end: number, map: Map<string, string> | undefined): Map<string, string> {
  let keyStart = 0;
  let keyEnd = 0;
  let valueStart = 0;
  let valueEnd = 0;
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === MAP_ENTRY_KEY) {
      keyEnd = r.lenEnd(end);
      keyStart = r.pos;
      r.pos = keyEnd;
    } else if (t === MAP_ENTRY_VALUE) {
      valueEnd = r.lenEnd(end);
      valueStart = r.pos;
      r.pos = valueEnd;
    } else {
      r.skip(t, end);
    }
  }
  const buf = r.buf as Buffer;
  const out = map ?? new Map<string, string>();
  out.set(text(buf, keyStart, keyEnd), text(buf, valueStart, valueEnd));
  return out;
}

function text(buf: Buffer, start: number, end: number): string {
  return start < end ? buf.toString('utf8', start, end) : '';
}

function toGateRequest(buf: Buffer, f: Found): GateRequest {
  const headers = new HeaderCollector();
  // Envoy fills one of the two: `headers` normally, `header_map` with
  // encode_raw_headers. Reading both keeps a request that somehow has both whole.
  if (f.headers !== undefined) for (const [name, value] of f.headers) headers.add(name, value);
  const list = f.headerList;
  if (list !== undefined) for (let i = 0; i < list.length; i += 2) headers.add(list[i]!, list[i + 1]!);

  // Envoy sends the authority both as `host` and (usually) as the `:authority`
  // entry; give lookups a plain `host` either way.
  if (f.hostEnd > f.hostStart && headers.get('host') === undefined) headers.set('host', text(buf, f.hostStart, f.hostEnd));

  let requestId = headers.get('x-request-id');
  if (requestId === undefined && f.idEnd > f.idStart) requestId = text(buf, f.idStart, f.idEnd);

  return makeGateRequest({
    method: text(buf, f.methodStart, f.methodEnd),
    path: text(buf, f.pathStart, f.pathEnd),
    headers,
    contextExtensions: extensions(f.extensions),
    requestId,
  });
}

function extensions(ext: Map<string, string> | undefined): ReadonlyMap<string, string> {
  if (ext === undefined) return NO_EXTENSIONS;
  let out: Map<string, string> | undefined;
  for (const [key, value] of ext) {
    if (key.length > REQUEST_LIMITS.maxContextExtensionLength) continue;
    out ??= new Map();
    if (out.size >= REQUEST_LIMITS.maxContextExtensions) break;
    out.set(key, clip(value, REQUEST_LIMITS.maxContextExtensionLength));
  }
  return out ?? NO_EXTENSIONS;
}
