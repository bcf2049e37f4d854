/**
 * drain against the gateway's health check of the gate. On SIGTERM the gate
 * turns NOT_SERVING and keeps answering for `drain`; Envoy must see that and
 * stop sending new Checks well before the gate closes, or the Checks in flight
 * at the close are reset (40 of them were, at the end of a 5 s drain under
 * load). Envoy needs at most unhealthy_threshold × interval + timeout to mark
 * the gate unhealthy; the shipped configs keep that to half the drain at most,
 * the other half being margin for a loaded machine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { packageRoot } from '../../src/core/package-root.js';
import { parseDuration } from '../../src/config/config.js';
import { OPTIONS } from '../../src/config/options.js';

const root = packageRoot();
const DEFAULT_DRAIN_MS = parseDuration(OPTIONS.find((o) => o.key === 'drain')!.default!)!;
const K8S_DRAIN_MS = parseDuration(String((parseYaml(readFileSync(join(root, 'deploy/kubernetes/config.yaml'), 'utf8')) as Record<string, unknown>)['drain']))!;

/** Envoy configs that health-check the gate, and the drain of the gate they front. */
const CONFIGS: readonly { file: string; drainMs: number }[] = [
  { file: 'deploy/envoy/envoy.yaml', drainMs: DEFAULT_DRAIN_MS }, // also deploy/compose (no drain set there)
  { file: 'deploy/envoy/envoy-header-routing.yaml', drainMs: DEFAULT_DRAIN_MS },
  { file: 'deploy/kubernetes/envoy.yaml', drainMs: K8S_DRAIN_MS },
];

/** Envoy's proto3 JSON durations as written in YAML: "1s", "0.5s". */
function seconds(v: unknown): number {
  const m = /^(\d+(?:\.\d+)?)s$/.exec(String(v));
  assert.ok(m !== null, `a duration in seconds: ${String(v)}`);
  return Number(m[1]) * 1000;
}

interface HealthCheck {
  timeout: unknown;
  interval: unknown;
  unhealthy_threshold?: number;
  grpc_health_check?: { service_name?: string };
}

function gateHealthChecks(file: string): HealthCheck[] {
  const doc = parseYaml(readFileSync(join(root, file), 'utf8')) as { static_resources?: { clusters?: { health_checks?: HealthCheck[] }[] } };
  const out: HealthCheck[] = [];
  for (const c of doc.static_resources?.clusters ?? []) {
    for (const hc of c.health_checks ?? []) if (hc.grpc_health_check?.service_name === 'envoy.service.auth.v3.Authorization') out.push(hc);
  }
  return out;
}

describe('drain vs the gateway health check', () => {
  for (const { file, drainMs } of CONFIGS) {
    it(`${file}: Envoy marks a draining gate unhealthy within half the drain (${drainMs} ms)`, () => {
      const checks = gateHealthChecks(file);
      assert.equal(checks.length, 1, 'one gRPC health check of the gate');
      const hc = checks[0]!;
      // A required field of Envoy's HealthCheck.
      const threshold = hc.unhealthy_threshold;
      assert.ok(threshold !== undefined && threshold >= 1);
      const detectMs = threshold * seconds(hc.interval) + seconds(hc.timeout);
      assert.ok(detectMs * 2 <= drainMs, `unhealthy_threshold × interval + timeout = ${detectMs} ms must be at most half the drain (${drainMs} ms)`);
    });
  }
});
