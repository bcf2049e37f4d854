/**
 * Which plugin does a request target? From the path and headers alone, with the
 * daemon's own routes as defaults. Envoy per-route context_extensions can
 * override: `plugin_gate` = "bypass" skips the gate on that route,
 * `plugin_gate_source` = "x-plugin-id" | "unique-id" | "none" forces where the
 * plugin id comes from.
 */
import { isPluginId, pluginIdFromUniqueId } from '../core/plugin-id.js';
import type { GateRequest, Target } from './types.js';

export const CTX_MODE = 'plugin_gate';
export const CTX_SOURCE = 'plugin_gate_source';

const NOT_SCOPED: Target = { kind: 'any', why: 'not_plugin_scoped' };
const WEBHOOK: Target = { kind: 'any', why: 'webhook' };
const BYPASS: Target = { kind: 'bypass' };
const BAD_PLUGIN_ID: Target = { kind: 'invalid', detail: 'X-Plugin-ID is not a valid plugin id (author/name)' };
const BAD_UNIQUE_ID: Target = { kind: 'invalid', detail: 'X-Plugin-Unique-Identifier is not a valid plugin unique identifier' };
const MISSING_PLUGIN_ID: Target = { kind: 'invalid', detail: 'X-Plugin-ID is required on dispatch requests' };
const BAD_PATH: Target = { kind: 'invalid', detail: 'the request path has malformed percent-encoding' };
const MISSING_UNIQUE_ID: Target = { kind: 'invalid', detail: 'X-Plugin-Unique-Identifier is required on this route' };

/** Longest tenant id kept (the daemon uses UUIDs); longer ones are not echoed anywhere. */
const MAX_TENANT = 64;

export function classify(req: GateRequest): Target {
  const mode = req.contextExtensions.get(CTX_MODE);
  if (mode === 'bypass') return BYPASS;
  const forced = req.contextExtensions.get(CTX_SOURCE);
  if (forced === 'x-plugin-id') return byPluginId(req, tenantOf(routedPath(req.path) ?? ''));
  if (forced === 'unique-id') return byUniqueId(req);
  if (forced === 'none') return NOT_SCOPED;

  const path = routedPath(req.path);
  if (path === undefined) return BAD_PATH;
  // /plugin/{tenant}/dispatch/...
  if (path.startsWith('/plugin/')) {
    const slash = path.indexOf('/', 8);
    if (slash > 8 && path.startsWith('/dispatch/', slash)) {
      return byPluginId(req, tenantOf(path));
    }
    return NOT_SCOPED;
  }
  if (path.startsWith('/v2/invoke/dispatch/') || path === '/v2/invoke/extract') return byUniqueId(req);
  if (path.startsWith('/e/')) return WEBHOOK;
  return NOT_SCOPED;
}

function byPluginId(req: GateRequest, tenant: string | undefined): Target {
  const raw = req.header('x-plugin-id');
  if (raw === undefined || raw === '') return MISSING_PLUGIN_ID;
  const id = raw.trim();
  if (!isPluginId(id)) return BAD_PLUGIN_ID;
  return { kind: 'plugin', pluginId: id, tenant };
}

function byUniqueId(req: GateRequest): Target {
  const raw = req.header('x-plugin-unique-identifier');
  if (raw === undefined || raw === '') return MISSING_UNIQUE_ID;
  const id = pluginIdFromUniqueId(raw.trim());
  if (id === undefined) return BAD_UNIQUE_ID;
  return { kind: 'plugin', pluginId: id, tenant: undefined };
}

/**
 * The path the daemon routes on. Its router (gin, default settings) matches the
 * *decoded* path, so `/plugin/t/%64ispatch/…` is a dispatch there and must be
 * one here too; otherwise a client could pass a dispatch off as not
 * plugin-scoped. Malformed escapes (which Go's server would reject) are
 * undefined, and the caller refuses them.
 */
export function routedPath(raw: string): string | undefined {
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (!path.includes('%')) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

function tenantOf(path: string): string | undefined {
  if (!path.startsWith('/plugin/')) return undefined;
  const slash = path.indexOf('/', 8);
  if (slash < 0) return undefined;
  const t = path.slice(8, slash);
  return t.length > 0 && t.length <= MAX_TENANT && /^[A-Za-z0-9_-]+$/.test(t) ? t : undefined;
}
