/**
 * The kits that turn hold-starting on must come with a gateway that waits long
 * enough and lets enough checks be open at once: the Envoy check timeout above
 * the hold budget, circuit breakers above every replica's max-held, and still
 * fail closed. Read from the shipped files themselves.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { packageRoot } from '../../src/core/package-root.js';
import { configFor, loadConfig, type Config } from '../../src/config/config.js';
import { HOLD_DEADLINE_MARGIN_MS } from '../../src/app/service.js';

type Obj = Record<string, any>;
const DEPLOY = join(packageRoot(), 'deploy');

function envoyGateSettings(file: string): { timeoutMs: number; failOpen: unknown; maxRequests: number; maxPending: number } {
  const doc = parse(readFileSync(join(DEPLOY, file), 'utf8')) as Obj;
  const listener = (doc['static_resources']['listeners'] as Obj[]).find((l) => l['name'] === 'plugin_daemon')!;
  const hcm = listener['filter_chains'][0]['filters'][0]['typed_config'] as Obj;
  const ext = (hcm['http_filters'] as Obj[]).find((f) => f['name'] === 'envoy.filters.http.ext_authz')!['typed_config'] as Obj;
  const cluster = (doc['static_resources']['clusters'] as Obj[]).find((c) => c['name'] === ext['grpc_service']['envoy_grpc']['cluster_name'])!;
  const t = (cluster['circuit_breakers']['thresholds'] as Obj[]).find((x) => (x['priority'] ?? 'DEFAULT') === 'DEFAULT')!;
  return {
    timeoutMs: Number(String(ext['grpc_service']['timeout']).replace(/s$/, '')) * 1000,
    failOpen: ext['failure_mode_allow'],
    maxRequests: t['max_requests'],
    maxPending: t['max_pending_requests'],
  };
}

function assertFits(gate: Config, replicas: number, envoyFile: string): void {
  assert.ok(gate.holdStartingMs > 0, 'the kit holds');
  const e = envoyGateSettings(envoyFile);
  assert.equal(e.failOpen, false, 'fails closed');
  // The gate answers by the budget; Envoy must still be waiting then, with room for a slow answer.
  assert.ok(e.timeoutMs >= gate.holdStartingMs + 2 * HOLD_DEADLINE_MARGIN_MS, `check timeout ${e.timeoutMs} ms vs hold-starting ${gate.holdStartingMs} ms`);
  assert.ok(e.maxRequests >= replicas * gate.maxHeld + 1024, `max_requests ${e.maxRequests} holds ${replicas} x max-held ${gate.maxHeld} plus ordinary checks`);
  assert.ok(e.maxPending > 1024, "max_pending_requests above Envoy's default");
}

describe('hold-starting in the shipped kits', () => {
  it('the binary does not hold unless told to', () => {
    const c = configFor({ targets: '10.0.0.1:5002' });
    assert.equal(c.holdStartingMs, 0);
    assert.equal(c.maxHeld, 10_000);
  });

  it('Kubernetes: the gate holds 30 s and the Envoy front is sized for it', () => {
    // The file's discovery (kubernetes) needs the pod's service account; the hold settings under test do not.
    const gate = loadConfig({ flags: { discovery: 'dns', 'dns-name': 'plugin-daemon-headless.dify.svc.cluster.local:5002' }, env: {}, file: join(DEPLOY, 'kubernetes/config.yaml') });
    assert.equal(gate.holdStartingMs, 30_000);
    const deployment = parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes/plugin-gate.yaml'), 'utf8'))
      .map((d) => d.toJS() as Obj)
      .find((d) => d?.['kind'] === 'Deployment')!;
    assertFits(gate, deployment['spec']['replicas'] as number, 'kubernetes/envoy.yaml');
  });

  it('compose: the gate holds 30 s and the Envoy it mounts is sized for it', () => {
    const doc = parse(readFileSync(join(DEPLOY, 'compose/docker-compose.plugin-gate.yaml'), 'utf8')) as Obj;
    const svc = doc['services']['plugin-gate'] as Obj;
    const gate = loadConfig({ flags: { discovery: 'dns', 'dns-name': 'plugin_daemon:5002' }, env: svc['environment'] as NodeJS.ProcessEnv, file: undefined });
    assert.equal(gate.holdStartingMs, 30_000);
    assertFits(gate, 1, 'envoy/envoy.yaml');
  });
});
