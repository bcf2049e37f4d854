/**
 * Decision → CheckResponse. Everything that does not depend on the request is
 * built once per renderer, so a check allocates only the response objects.
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
import type { CheckResponseMsg, HeaderValueOptionMsg, StructMsg } from './messages.js';

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

export type CheckResponseRenderer = (decision: Decision, decisionId: string) => CheckResponseMsg;

/**
 * Envoy reads only the first value of an ORIGINAL_DST routing header and
 * versions disagree on the deprecated `append` flag, so every header the gate
 * sets is OVERWRITE_IF_EXISTS_OR_ADD with `append` unset.
 */
function overwrite(key: string, value: string): HeaderValueOptionMsg {
  return { header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

const CONTENT_TYPE_JSON = overwrite('content-type', 'application/json');
const NO_HEADERS: readonly HeaderValueOptionMsg[] = [];

export function createResponseRenderer(opts: ResponseOptions): CheckResponseRenderer {
  const route = opts.routeHeader;
  // The routing header must never reach the cluster unless the gate wrote it:
  // Envoy does not sanitise it, and a client-sent value would pick the upstream.
  const removeWhenUnrouted = dedupe(route === undefined ? GATE_OUTPUT_HEADERS : [route, ...GATE_OUTPUT_HEADERS]);
  // When the gate does set it, it must not also be listed for removal.
  const removeWhenRouted = dedupe(GATE_OUTPUT_HEADERS.filter((h) => h !== route));

  const allow = (d: Allow, decisionId: string): CheckResponseMsg => {
    const routed = route !== undefined && d.upstream !== undefined;
    return {
      status: { code: GRPC_OK, message: '' },
      ok_response: {
        headers: routed ? [overwrite(route, d.upstream!)] : NO_HEADERS,
        headers_to_remove: routed ? removeWhenRouted : removeWhenUnrouted,
      },
      dynamic_metadata: metadata(d.upstream, d.pluginId, d.reason, decisionId, d.wouldDeny?.reason, d.heldMs),
    };
  };

  const deny = (d: Deny, decisionId: string): CheckResponseMsg => {
    const headers: HeaderValueOptionMsg[] = [];
    if (d.retryAfterS !== undefined) headers.push(overwrite('retry-after', String(d.retryAfterS)));
    headers.push(CONTENT_TYPE_JSON, overwrite(REASON_HEADER, d.reason), overwrite(DECISION_ID_HEADER, decisionId));
    return {
      // Any non-zero code is a denial to Envoy; these two say why to anyone
      // reading gRPC stats or logs.
      status: { code: d.httpStatus === 400 ? GRPC_INVALID_ARGUMENT : GRPC_UNAVAILABLE, message: d.reason },
      denied_response: { status: { code: d.httpStatus }, headers, body: d.body },
      dynamic_metadata: metadata(undefined, d.pluginId, d.reason, decisionId, undefined, d.heldMs),
    };
  };

  return (decision, decisionId) => (decision.allow ? allow(decision, decisionId) : deny(decision, decisionId));
}

/** Only string values, and absent ones omitted: Envoy's metadata matchers see exactly what is known. */
function metadata(upstream: string | undefined, pluginId: string | undefined, reason: string, decisionId: string, wouldDeny?: string, heldMs?: number): StructMsg {
  const fields: Record<string, { stringValue: string }> = {};
  if (upstream !== undefined) fields[METADATA_UPSTREAM_HOST] = { stringValue: upstream };
  if (pluginId !== undefined) fields[METADATA_PLUGIN_ID] = { stringValue: pluginId };
  fields[METADATA_REASON] = { stringValue: reason };
  fields[METADATA_DECISION_ID] = { stringValue: decisionId };
  if (wouldDeny !== undefined) fields[METADATA_WOULD_DENY] = { stringValue: wouldDeny };
  if (heldMs !== undefined) fields[METADATA_HELD_MS] = { stringValue: String(heldMs) };
  return { fields };
}

function dedupe(names: readonly string[]): readonly string[] {
  return [...new Set(names)];
}
