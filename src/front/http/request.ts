/**
 * Forward-auth request → GateRequest: recovers the client's original request
 * from whichever convention the gateway uses.
 *
 * Precedence (first match wins; the method comes from the same convention as
 * the path, falling back to the auth request's own method):
 *   1. `X-Original-URL` (ingress-nginx; absolute URL) + `X-Original-Method`
 *   2. `X-Original-URI` (nginx auth_request as configured in deploy/) + `X-Original-Method`
 *   3. `X-Forwarded-Uri` (Traefik ForwardAuth) + `X-Forwarded-Method`
 *   4. the auth request itself (Envoy http_service), minus `http-path-prefix`
 * The host is the one in X-Original-URL, else `X-Forwarded-Host`, else `Host`.
 *
 * nginx sets its X-Original-* headers itself and Traefik overwrites its
 * X-Forwarded-* ones, but each passes the other convention's headers through
 * from the client. With a first-present rule a client's X-Original-URL would
 * override nginx's X-Original-URI and choose the path the gate classifies, so
 * `auto` refuses a request that carries more than one convention (see
 * `conventionsIn`; the face answers 400). `http-request-from` names the one
 * convention to read, ignoring the client's copies of the others; the deploy/
 * configs also blank the foreign headers.
 */
import type { HttpRequestFrom } from '../../config/config.js';
import type { GateRequest } from '../../decide/types.js';
import { HeaderCollector, makeGateRequest } from '../service.js';

/** The parts of an IncomingMessage the mapping reads. */
export interface HttpHead {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  /** Name, value, name, value… as received (node:http rawHeaders). */
  readonly rawHeaders: readonly string[];
}

/**
 * @param pathPrefix config `http-path-prefix`: '' or an absolute path without a
 *   trailing slash (config validation guarantees the form).
 */
export function httpRequestToGate(head: HttpHead, pathPrefix: string, from: HttpRequestFrom = 'auto'): GateRequest {
  const headers = new HeaderCollector();
  const raw = head.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.add(raw[i]!, raw[i + 1]!);

  const ownMethod = head.method ?? '';
  let method: string;
  let path: string;
  let host = headers.get('x-forwarded-host');

  const auto = from === 'auto';
  const originalUrl = auto || from === 'x-original-url' ? headers.get('x-original-url') : undefined;
  const originalUri = auto || from === 'x-original-uri' ? headers.get('x-original-uri') : undefined;
  const forwardedUri = auto || from === 'x-forwarded-uri' ? headers.get('x-forwarded-uri') : undefined;
  if (originalUrl !== undefined) {
    const u = splitUrl(originalUrl);
    path = u.path;
    if (u.host !== '') host = u.host;
    method = headers.get('x-original-method') ?? ownMethod;
  } else if (originalUri !== undefined) {
    path = originTarget(originalUri);
    method = headers.get('x-original-method') ?? ownMethod;
  } else if (forwardedUri !== undefined) {
    path = originTarget(forwardedUri);
    method = headers.get('x-forwarded-method') ?? ownMethod;
  } else {
    path = stripPrefix(originTarget(head.url ?? '/'), pathPrefix);
    method = ownMethod;
  }
  if (host !== undefined && host !== '') headers.set('host', host);

  return makeGateRequest({ method, path, headers, requestId: headers.get('x-request-id') });
}

/** The headers that each name an original request, one per gateway convention. */
const CONVENTION_HEADERS: readonly string[] = ['x-original-url', 'x-original-uri', 'x-forwarded-uri'];

/**
 * Which gateway conventions a request carries (lower-case header names). More
 * than one means a client added its own copy of another gateway's header: with
 * `auto` the gate cannot tell which one its gateway wrote.
 */
export function conventionsIn(rawHeaders: readonly string[]): string[] {
  const found: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (CONVENTION_HEADERS.includes(name) && !found.includes(name)) found.push(name);
  }
  return found;
}

/**
 * `scheme://authority/path?query#fragment` → authority and path+query, by hand:
 * WHATWG URL parsing would normalise the path (dot segments, escapes) into one
 * the daemon never sees. Input without a scheme is taken as a path.
 */
export function splitUrl(url: string): { host: string; path: string } {
  const s = url.trim();
  const scheme = schemeEnd(s);
  if (scheme < 0) return { host: '', path: originTarget(s) };
  const rest = s.slice(scheme + 3);
  let end = rest.length;
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 0x2f /* / */ || c === 0x3f /* ? */ || c === 0x23 /* # */) {
      end = i;
      break;
    }
  }
  let host = rest.slice(0, end);
  const at = host.lastIndexOf('@');
  if (at >= 0) host = host.slice(at + 1);
  return { host, path: originTarget(rest.slice(end)) };
}

/**
 * A request target in origin form: starts with "/", no fragment. An absolute
 * form (a proxy-style request line) is reduced to its path.
 */
export function originTarget(target: string): string {
  let t = target.trim();
  const hash = t.indexOf('#');
  if (hash >= 0) t = t.slice(0, hash);
  if (t.startsWith('/')) return t;
  if (t.startsWith('?')) return '/' + t;
  if (schemeEnd(t) >= 0) return splitUrl(t).path;
  if (t === '' || t === '*') return '/';
  return '/' + t;
}

/** Index of "://" after a URI scheme (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), else -1. */
function schemeEnd(s: string): number {
  const max = Math.min(s.length, 32);
  for (let i = 0; i < max; i++) {
    const c = s.charCodeAt(i) | 0x20;
    const alpha = c >= 0x61 && c <= 0x7a;
    if (i === 0) {
      if (!alpha) return -1;
      continue;
    }
    if (s.startsWith('://', i)) return i;
    const raw = s.charCodeAt(i);
    if (!alpha && !(raw >= 0x30 && raw <= 0x39) && raw !== 0x2b && raw !== 0x2d && raw !== 0x2e) return -1;
  }
  return -1;
}

/** `/prefix`, `/prefix/…` and `/prefix?…` lose the prefix; other paths stay as they are. */
export function stripPrefix(path: string, prefix: string): string {
  if (prefix === '' || !path.startsWith(prefix)) return path;
  const next = path.charCodeAt(prefix.length);
  if (Number.isNaN(next)) return '/';
  if (next === 0x2f /* / */) return path.slice(prefix.length);
  if (next === 0x3f /* ? */) return '/' + path.slice(prefix.length);
  return path;
}
