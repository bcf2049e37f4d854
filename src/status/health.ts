/**
 * Source `health-check`: `GET /health/check`. It says only that the pod's HTTP
 * server is up (it answers before any plugin starts), plus version and platform.
 */
import { GateError } from '../core/errors.js';
import type { HealthData, SourceResult } from './types.js';
import { count, parseJsonObject, readSource, shortString, type ReadOptions } from './source.js';

export const HEALTH_PATH = '/health/check';

/**
 * A 200 body must be a JSON object with `status: "ok"`; every other field is
 * optional, and a field of the wrong type is read as absent.
 */
export function parseHealth(body: string): HealthData | GateError {
  const doc = parseJsonObject(body);
  if (doc === undefined) return new GateError('status_unparseable', 'health body is not a JSON object');
  if (doc['status'] !== 'ok') return new GateError('status_unparseable', 'health body has no status "ok"');
  return {
    version: shortString(doc['version']),
    platform: shortString(doc['platform']),
    activeDispatchRequests: count(doc['active_dispatch_requests']),
  };
}

export function readHealth(address: string, opts: ReadOptions): Promise<SourceResult<HealthData>> {
  return readSource(address, HEALTH_PATH, opts, { accept: 'application/json' }, (res) => parseHealth(res.body));
}
