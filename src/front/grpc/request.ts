/**
 * CheckRequest → GateRequest. Total over any decodable input: a missing
 * attribute yields an empty method/path, which the decision treats as not
 * plugin-scoped; nothing here throws on content.
 */
import type { GateRequest } from '../../decide/types.js';
import { HeaderCollector, REQUEST_LIMITS, clip, makeGateRequest } from '../service.js';
import type { CheckRequestMsg, HeaderValueMsg } from './messages.js';

const NO_EXTENSIONS: ReadonlyMap<string, string> = new Map();

export function checkRequestToGate(msg: CheckRequestMsg | null | undefined): GateRequest {
  const attrs = msg?.attributes ?? undefined;
  const http = attrs?.request?.http ?? undefined;
  const headers = new HeaderCollector();

  // Envoy fills one of the two: `headers` normally, `header_map` with
  // encode_raw_headers. Reading both keeps a request that somehow has both whole.
  const map = http?.headers;
  if (map !== null && map !== undefined && typeof map === 'object') {
    for (const key of Object.keys(map)) {
      const v = map[key];
      if (typeof v === 'string') headers.add(key, v);
    }
  }
  const list = http?.header_map?.headers;
  if (Array.isArray(list)) {
    for (const entry of list) addRaw(headers, entry);
  }

  // Envoy sends the authority both as `host` and (usually) as the `:authority`
  // entry; give lookups a plain `host` either way.
  const host = http?.host;
  if (headers.get('host') === undefined && typeof host === 'string' && host !== '') headers.set('host', host);

  const id = http?.id;
  const requestId = headers.get('x-request-id') ?? (typeof id === 'string' && id !== '' ? id : undefined);

  return makeGateRequest({
    method: str(http?.method),
    path: str(http?.path),
    headers,
    contextExtensions: extensions(attrs?.context_extensions),
    requestId,
  });
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/**
 * One header_map entry. raw_value holds the header's bytes; they are decoded as
 * UTF-8 so that both of Envoy's encodings give the same string (the `headers`
 * map is a proto string, i.e. UTF-8). Invalid bytes become U+FFFD, which no
 * plugin id accepts. Bytes are capped before decoding, so time stays bounded.
 */
function addRaw(headers: HeaderCollector, entry: HeaderValueMsg | null | undefined): void {
  if (entry === null || entry === undefined) return;
  const key = entry.key;
  if (typeof key !== 'string') return;
  const raw = entry.raw_value;
  let value: string;
  if (raw instanceof Uint8Array && raw.length > 0) {
    const n = Math.min(raw.length, REQUEST_LIMITS.maxHeaderValueLength);
    value = Buffer.from(raw.buffer, raw.byteOffset, n).toString('utf8');
  } else if (typeof raw === 'string' && raw !== '') {
    // proto-loader with `bytes: String` would give base64; not our options, but harmless.
    value = clip(raw, REQUEST_LIMITS.maxHeaderValueLength);
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
