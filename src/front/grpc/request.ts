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
const { maxHeaders, maxHeaderNameLength, maxHeaderValueLength, maxContextExtensions, maxContextExtensionLength } = REQUEST_LIMITS;

/**
 * What one request's walk has found so far, as byte ranges into the message:
 * strings are made only for what is looked at. A scalar is one (start, end)
 * pair, -1 when absent, so a field given twice costs no discarded string.
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
  /** HttpRequest.headers entries in wire order, repeats included: keyStart, keyEnd, valueStart, valueEnd, … */
  headers: number[] = [];
  /** HttpRequest.header_map entries that have a key: keyStart, keyEnd, valueStart, valueEnd, … (the value is raw_value, capped, when set) */
  headerList: number[] = [];
  extensions: Map<string, string> | undefined = undefined;
}

/**
 * grpc-js's requestDeserialize for Authorization/Check.
 *
 * Header values, and names beyond a byte comparison, are decoded only when
 * the gate asks for that header (a decision reads one or two of Envoy's
 * dozen or so), with exactly the answers a HeaderCollector fed the same
 * headers gives: the `headers` map (a repeated key replaced in place) then
 * `header_map` in order, names lower-cased, repeats joined with ",", the
 * caps of REQUEST_LIMITS. The GateRequest keeps the message's bytes for that
 * (at most grpc-max-message-bytes, held as long as the call is open).
 *
 * `lazyBelow`: requests with this many header entries or more are collected
 * at once instead, where the cap on header names can drop some; tests pass 0
 * to compare the two ways.
 */
export function decodeCheckRequest(bytes: Uint8Array, lazyBelow: number = maxHeaders): GateRequest {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new WireReader(buf);
  const f = new Found();
  const end = buf.length;
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === CHECK_REQUEST_ATTRIBUTES) attributes(r, r.lenEnd(end), f);
    else r.skip(t, end);
  }
  const header = (f.headers.length + f.headerList.length) / 4 < lazyBelow ? lazyLookup(buf, f) : collected(buf, f).lookup();
  let requestId = header('x-request-id');
  if (requestId === undefined && f.idEnd > f.idStart) requestId = text(buf, f.idStart, f.idEnd);
  return makeGateRequest({
    method: text(buf, f.methodStart, f.methodEnd),
    path: text(buf, f.pathStart, f.pathEnd),
    headers: header,
    contextExtensions: extensions(f.extensions),
    requestId,
  });
}

function attributes(r: WireReader, end: number, f: Found): void {
  for (let t = r.tag(end); t !== 0; t = r.tag(end)) {
    if (t === ATTRIBUTES_REQUEST) request(r, r.lenEnd(end), f);
    else if (t === ATTRIBUTES_CONTEXT_EXTENSIONS) f.extensions = extensionEntry(r, r.lenEnd(end), f.extensions);
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
        mapEntry(r, r.lenEnd(end), f.headers);
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
    if (t === HEADER_MAP_HEADERS) headerValue(r, r.lenEnd(end), f.headerList);
    else r.skip(t, end);
  }
}

/**
 * One HeaderValue. raw_value holds the header's bytes (Envoy's
 * encode_raw_headers); read as UTF-8 they give the same string as Envoy's
 * other encoding (the `headers` map, a proto string). Only the first
 * maxHeaderValueLength bytes are kept, so decoding time stays bounded. An
 * entry without a key names no header and is dropped.
 */
function headerValue(r: WireReader, end: number, out: number[]): void {
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
  if (rawEnd > rawStart) out.push(keyStart, keyEnd, rawStart, Math.min(rawEnd, rawStart + maxHeaderValueLength));
  else out.push(keyStart, keyEnd, valueStart, valueEnd);
}

/** One map<string,string> entry, as byte ranges; a missing key or value is the empty range (""). */
function mapEntry(r: WireReader, end: number, out: number[]): void {
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
  out.push(keyStart, keyEnd, valueStart, valueEnd);
}

/** One context_extensions entry into `map` (created on first use): a repeated key keeps its place, the last value wins. */
function extensionEntry(r: WireReader, end: number, map: Map<string, string> | undefined): Map<string, string> {
  const e: number[] = [];
  mapEntry(r, end, e);
  const buf = r.buf as Buffer;
  const out = map ?? new Map<string, string>();
  out.set(text(buf, e[0]!, e[1]!), text(buf, e[2]!, e[3]!));
  return out;
}

function text(buf: Buffer, start: number, end: number): string {
  return start < end ? buf.toString('utf8', start, end) : '';
}

/** Whether bytes [start, end) hold anything but ASCII. */
function nonAscii(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i]! >= 0x80) return true;
  return false;
}

/**
 * Every header at once into a HeaderCollector: the `headers` map first (a
 * repeated key keeps its place, the last value wins), then `header_map`, then
 * `host` when no header named it. The reference the lazy lookup answers like.
 */
function collected(buf: Buffer, f: Found): HeaderCollector {
  const headers = new HeaderCollector();
  const m = f.headers;
  if (m.length > 0) {
    const map = new Map<string, string>();
    for (let i = 0; i < m.length; i += 4) map.set(text(buf, m[i]!, m[i + 1]!), text(buf, m[i + 2]!, m[i + 3]!));
    for (const [name, value] of map) headers.add(name, value);
  }
  const l = f.headerList;
  for (let i = 0; i < l.length; i += 4) headers.add(text(buf, l[i]!, l[i + 1]!), text(buf, l[i + 2]!, l[i + 3]!));
  // Envoy sends the authority both as `host` and (usually) as the `:authority`
  // entry; give lookups a plain `host` either way.
  if (f.hostEnd > f.hostStart && headers.get('host') === undefined) headers.set('host', text(buf, f.hostStart, f.hostEnd));
  return headers;
}

/**
 * HeaderCollector's answers without collecting: each lookup walks the entries
 * and compares names as bytes, decoding only the values of the header asked
 * for. Only for fewer entries than maxHeaders, where no name is ever dropped.
 */
function lazyLookup(buf: Buffer, f: Found): (name: string) => string | undefined {
  const find = (name: string): string | undefined => {
    let values: string[] | undefined;
    // The `headers` map: a key given twice is one entry, in its first place, with its last value.
    const m = f.headers;
    let slots: number[] | undefined;
    for (let i = 0; i < m.length; i += 4) {
      if (!nameIs(buf, m[i]!, m[i + 1]!, name)) continue;
      slots ??= [];
      let slot = 0;
      while (slot < slots.length && !sameKey(buf, m[slots[slot]!]!, m[slots[slot]! + 1]!, m[i]!, m[i + 1]!)) slot++;
      slots[slot] = i;
      (values ??= [])[slot] = text(buf, m[i + 2]!, m[i + 3]!);
    }
    const l = f.headerList;
    for (let i = 0; i < l.length; i += 4) if (nameIs(buf, l[i]!, l[i + 1]!, name)) (values ??= []).push(text(buf, l[i + 2]!, l[i + 3]!));
    if (values !== undefined) return clip(values.length === 1 ? values[0]! : values.join(','), maxHeaderValueLength);
    if (name === 'host' && f.hostEnd > f.hostStart) return clip(text(buf, f.hostStart, f.hostEnd), maxHeaderValueLength);
    return undefined;
  };
  // As HeaderCollector.lookup: the name as given, then lower-cased.
  return (name) => {
    const v = find(name);
    if (v !== undefined) return v;
    const lower = name.toLowerCase();
    return lower === name ? undefined : find(lower);
  };
}

/**
 * Whether the header name in bytes [start, end) is kept by HeaderCollector
 * (1 to maxHeaderNameLength characters) under the lower-case name `name`.
 * ASCII is compared byte by byte; a name with other bytes is decoded and
 * lower-cased as the collector does (U+212A KELVIN SIGN lower-cases to "k").
 * A difference in the ASCII bytes before any other byte settles it: what
 * follows cannot change the characters before it.
 */
function nameIs(buf: Buffer, start: number, end: number, name: string): boolean {
  const n = end - start;
  const m = name.length;
  const common = n < m ? n : m;
  for (let i = 0; i < common; i++) {
    let b = buf[start + i]!;
    if (b >= 0x80) return decodedNameIs(buf, start, end, name);
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (b !== name.charCodeAt(i)) return false;
  }
  // An ASCII prefix equal to the whole of `name` with more bytes after it
  // decodes to a longer string, whatever those bytes are.
  if (n > m) return false;
  return n === m && n >= 1 && n <= maxHeaderNameLength;
}

function decodedNameIs(buf: Buffer, start: number, end: number, name: string): boolean {
  const raw = text(buf, start, end);
  return raw.length >= 1 && raw.length <= maxHeaderNameLength && raw.toLowerCase() === name;
}

/** Whether two map keys are the same string (two different invalid byte sequences can both decode to U+FFFD). */
function sameKey(buf: Buffer, aStart: number, aEnd: number, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart === bEnd - bStart && buf.compare(buf, aStart, aEnd, bStart, bEnd) === 0) return true;
  if (!nonAscii(buf, aStart, aEnd) && !nonAscii(buf, bStart, bEnd)) return false;
  return text(buf, aStart, aEnd) === text(buf, bStart, bEnd);
}

function extensions(ext: Map<string, string> | undefined): ReadonlyMap<string, string> {
  if (ext === undefined) return NO_EXTENSIONS;
  let out: Map<string, string> | undefined;
  for (const [key, value] of ext) {
    if (key.length > maxContextExtensionLength) continue;
    out ??= new Map();
    if (out.size >= maxContextExtensions) break;
    out.set(key, clip(value, maxContextExtensionLength));
  }
  return out ?? NO_EXTENSIONS;
}
