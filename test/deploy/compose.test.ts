/** deploy/compose: the override parses, the gate's arguments are a valid configuration, and the wiring holds. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { packageRoot } from '../../src/core/package-root.js';
import { parseArgs } from '../../src/cli/args.js';
import { loadConfig } from '../../src/config/config.js';

const file = join(packageRoot(), 'deploy/compose/docker-compose.plugin-gate.yaml');

interface Service {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  networks?: Record<string, { aliases?: string[] }> | string[];
  user?: string;
  read_only?: boolean;
}

describe('deploy/compose', () => {
  const doc = parse(readFileSync(file, 'utf8')) as { services: Record<string, Service> };
  const gate = doc.services['plugin-gate']!;
  const envoy = doc.services['plugin-gate-envoy']!;

  it("the gate's command is a valid plugin-gate configuration", () => {
    const args = parseArgs(gate.command ?? []);
    assert.deepEqual(args.problems, []);
    const env: NodeJS.ProcessEnv = { ...(gate.environment ?? {}) };
    const config = loadConfig({ flags: args.flags, env, file: undefined });
    assert.equal(config.discovery, 'dns');
    assert.deepEqual(config.dnsName, { host: 'plugin_daemon', port: 5002 });
  });

  it('Envoy finds the gate under the name its config uses, and mounts a config that exists', () => {
    const nets = gate.networks as Record<string, { aliases?: string[] }>;
    assert.ok(nets['default']?.aliases?.includes('plugin-gate-headless'));
    const envoyYaml = readFileSync(join(packageRoot(), 'deploy/envoy/envoy.yaml'), 'utf8');
    assert.match(envoyYaml, /address: plugin-gate-headless, port_value: 9191/);
    const mount = (envoy.volumes ?? []).find((v) => v.endsWith(':/etc/envoy/envoy.yaml:ro'));
    assert.ok(mount);
    assert.ok(existsSync(resolve(dirname(file), mount.split(':')[0]!)), 'mounted envoy.yaml exists');
  });

  it('points dify-api and the worker at Envoy, and runs the gate unprivileged and read-only', () => {
    for (const svc of ['api', 'worker']) assert.equal(doc.services[svc]?.environment?.['PLUGIN_DAEMON_URL'], 'http://plugin-gate-envoy:5002');
    assert.equal(gate.user, '1000:1000');
    assert.equal(gate.read_only, true);
  });
});
