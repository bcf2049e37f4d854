/**
 * Source `ready-check`: `GET /ready/check` (daemon PR #600). A 503 here is a
 * successful read of a pod that is not ready yet, not an HTTP error; a 404 is
 * a daemon without the endpoint (status_http_error).
 */
import { GateError } from '../core/errors.js';
import { isPluginId, pluginIdFromUniqueId, type PluginId } from '../core/plugin-id.js';
import type { ReadyData, ReadyDetail, SourceResult } from './types.js';
import { count, parseJsonObject, readSource, type ReadOptions } from './source.js';

export const READY_PATH = '/ready/check';

/** Go field names of `detail` whose entries are plugins not running yet / given up on. */
const MISSING_KEYS = ['Missing', 'InitialMissing', 'RuntimeMissing'] as const;
const FAILED_KEYS = ['Failed', 'InitialFailed'] as const;
/** Reasons are short snake_case words upstream; anything else is not carried into /status. */
const REASON = /^[a-z0-9_]{1,64}$/;

/**
 * `status` 200 needs `{ready: true}`; 503 needs `{ready: false}` (otherwise it
 * is some proxy's 503 and reported as status_http_error). `detail` is read only
 * on a 503: `missing` merges Missing, InitialMissing and RuntimeMissing,
 * `failed` merges Failed and InitialFailed; entries are unique identifiers
 * reduced to plugin ids (a bare valid plugin id is kept as is), invalid ones
 * dropped, duplicates removed, at most `maxPlugins` each.
 */
export function parseReady(status: number, body: string, maxPlugins: number): ReadyData | GateError {
  const doc = parseJsonObject(body);
  if (status === 503) {
    if (doc === undefined || doc['ready'] !== false) {
      return new GateError('status_http_error', 'HTTP 503 without a ready-check body');
    }
    const d = doc['detail'];
    const detail = typeof d === 'object' && d !== null && !Array.isArray(d) ? parseDetail(d as Record<string, unknown>, maxPlugins) : undefined;
    return { ready: false, reason: reasonOf(doc['reason']), detail };
  }
  if (status !== 200) return new GateError('status_http_error', `HTTP ${status} from ${READY_PATH}`);
  if (doc === undefined) return new GateError('status_unparseable', 'ready body is not a JSON object');
  if (doc['ready'] !== true) return new GateError('status_unparseable', 'HTTP 200 ready body without ready: true');
  return { ready: true, reason: reasonOf(doc['reason']), detail: undefined };
}

function reasonOf(v: unknown): string {
  return typeof v === 'string' && REASON.test(v) ? v : 'unknown';
}

function parseDetail(d: Record<string, unknown>, maxPlugins: number): ReadyDetail {
  return {
    missing: pluginList(d, MISSING_KEYS, maxPlugins),
    failed: pluginList(d, FAILED_KEYS, maxPlugins),
    expected: count(d['Expected']),
    running: count(d['Running']),
    maxRetries: count(d['MaxRetries']),
  };
}

function pluginList(d: Record<string, unknown>, keys: readonly string[], maxPlugins: number): PluginId[] {
  const out = new Set<PluginId>();
  for (const key of keys) {
    const list = d[key];
    if (!Array.isArray(list)) continue; // a Go nil slice is JSON null
    for (const entry of list) {
      if (out.size >= maxPlugins) return [...out];
      if (typeof entry !== 'string') continue;
      const id = pluginIdFromUniqueId(entry) ?? (isPluginId(entry) ? entry : undefined);
      if (id !== undefined) out.add(id);
    }
  }
  return [...out];
}

export function readReady(address: string, opts: ReadOptions): Promise<SourceResult<ReadyData>> {
  // A 503 is an answer here: the pod saying it is not ready, with its detail.
  return readSource(address, READY_PATH, opts, { accept: 'application/json', acceptStatus: [200, 503] }, (res) =>
    parseReady(res.status, res.body, opts.maxPlugins),
  );
}
