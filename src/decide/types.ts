/**
 * The decision model shared by every front end. A front end turns its wire
 * request into a GateRequest, calls `decide`, and renders the Decision in its
 * own protocol; nothing else crosses that line.
 */
import type { PluginId } from '../core/plugin-id.js';

/** The request as the gate sees it, whichever face it came through. */
export interface GateRequest {
  readonly method: string;
  /** Path as received, query string included (Envoy's CheckRequest path has it). */
  readonly path: string;
  /** Lower-case header lookup; repeated headers joined with ",". */
  readonly header: (name: string) => string | undefined;
  /** Envoy per-route context_extensions (empty on the HTTP face). */
  readonly contextExtensions: ReadonlyMap<string, string>;
  /** x-request-id if the gateway sent one (logging only). */
  readonly requestId: string | undefined;
}

/** What the request targets, from the path and headers alone. */
export type Target =
  | { readonly kind: 'plugin'; readonly pluginId: PluginId; readonly tenant: string | undefined }
  | { readonly kind: 'any'; readonly why: 'webhook' | 'not_plugin_scoped' }
  | { readonly kind: 'bypass' }
  | { readonly kind: 'invalid'; readonly detail: string };

export const ALLOW_REASONS = [
  'plugin_ready',
  'not_plugin_scoped',
  'unknown_plugin_allowed',
  'route_bypass',
  'dry_run',
  // Set by the service, never by decide: plugin_ready for a request that was held (hold-starting).
  'plugin_ready_after_hold',
] as const;
export const DENY_REASONS = [
  'plugin_starting',
  'plugin_failed',
  'no_live_pod',
  'unknown_plugin_denied',
  'invalid_plugin_id',
  'gate_not_ready',
] as const;
export type AllowReason = (typeof ALLOW_REASONS)[number];
export type DenyReason = (typeof DENY_REASONS)[number];
export type Reason = AllowReason | DenyReason;
export const REASONS: readonly Reason[] = [...ALLOW_REASONS, ...DENY_REASONS];

export interface Allow {
  readonly allow: true;
  readonly reason: AllowReason;
  /** `IP:port` of the chosen pod; undefined only for route_bypass (and dry_run with no live pod). */
  readonly upstream: string | undefined;
  readonly pluginId: PluginId | undefined;
  readonly tenant: string | undefined;
  /** For dry_run: the deny that enforcement would have returned. */
  readonly wouldDeny: Deny | undefined;
  /** Milliseconds the request was held before this answer (hold-starting); absent when not held. */
  readonly heldMs?: number;
}

export interface Deny {
  readonly allow: false;
  readonly reason: DenyReason;
  readonly pluginId: PluginId | undefined;
  readonly tenant: string | undefined;
  /** 503, or 400 for bad input. */
  readonly httpStatus: number;
  /** Whole seconds; absent on 400. */
  readonly retryAfterS: number | undefined;
  /** Human text naming the plugin, its state and the wait. */
  readonly message: string;
  /** The response body: exactly one JSON line in the daemon's error envelope, newline-terminated. */
  readonly body: string;
  /** Milliseconds the request was held before this answer (hold-starting); absent when not held. */
  readonly heldMs?: number;
}

export type Decision = Allow | Deny;

/** Routing outputs, named once for every face and every deploy/ file. */
export const METADATA_NAMESPACE = 'envoy.filters.http.ext_authz';
export const METADATA_UPSTREAM_HOST = 'upstream_host';
export const REASON_HEADER = 'x-plugin-gate-reason';
export const DECISION_ID_HEADER = 'x-plugin-gate-decision-id';
/** Milliseconds a held request waited (hold-starting), on the HTTP face's answers. */
export const HELD_MS_HEADER = 'x-plugin-gate-held-ms';
/** Routing header of the HTTP forward-auth face. */
export const HTTP_UPSTREAM_HEADER = 'x-plugin-gate-upstream';
