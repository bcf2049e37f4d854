/**
 * How the suite gets its Envoy: the one pin, the lookup, the stop-at-once line
 * when Envoy is missing, the address substitution every Envoy test relies on,
 * and the install scripts CI runs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findEnvoy, loadEnvoyConfig, parseEnvoyVersion, pinnedEnvoyVersion, substituteAddresses } from '../support/envoy.js';
import { packageRoot } from '../../src/core/package-root.js';

const ROOT = packageRoot();

describe('Envoy for the suite', () => {
  it('is the pinned version, found through ENVOY_BIN or .tools/bin/envoy', () => {
    const l = findEnvoy();
    assert.ok(l.ok, l.ok ? '' : l.problem);
    assert.equal(l.version, pinnedEnvoyVersion());
    assert.match(pinnedEnvoyVersion(), /^\d+\.\d+\.\d+$/);
    assert.equal(parseEnvoyVersion('envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL'), '1.40.0');
  });

  for (const ci of [false, true]) {
    it(`without it the suite stops at once with one line naming what is missing and the install command${ci ? ' (CI=true)' : ''}`, () => {
      const env: NodeJS.ProcessEnv = { ...process.env, ENVOY_BIN: '/nonexistent/envoy' };
      if (ci) env['CI'] = 'true';
      else delete env['CI'];
      const r = spawnSync(process.execPath, ['scripts/run-tests.mjs'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '', 'no test ran');
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`Envoy ${pinnedEnvoyVersion().replace(/\./g, '\\.')} not found \\(ENVOY_BIN=/nonexistent/envoy does not exist\\)`));
      assert.match(lines[0]!, /bash scripts\/setup\.sh/);
      if (ci) assert.match(lines[0]!, /^CI: /);
    });
  }

  it('substitutes only addresses: listeners and admin to loopback port 0, the gate to the given endpoints', () => {
    const doc = loadEnvoyConfig('deploy/envoy/envoy.yaml');
    const out = substituteAddresses(doc, { 'plugin-gate-headless:9191': ['127.0.0.1:7001', '127.0.0.1:7002'] });
    assert.deepEqual(out['admin']['address']['socket_address'], { address: '127.0.0.1', port_value: 0 });
    for (const l of out['static_resources']['listeners']) assert.deepEqual(l['address']['socket_address'], { address: '127.0.0.1', port_value: 0 });
    const gate = out['static_resources']['clusters'].find((c: { name: string }) => c.name === 'plugin_gate');
    const eps = gate['load_assignment']['endpoints'][0]['lb_endpoints'].map((e: any) => e.endpoint.address.socket_address);
    assert.deepEqual(eps, [
      { address: '127.0.0.1', port_value: 7001 },
      { address: '127.0.0.1', port_value: 7002 },
    ]);
    // Everything else is untouched.
    const strip = (d: any): any => {
      const c = structuredClone(d);
      delete c.admin.address;
      for (const l of c.static_resources.listeners) delete l.address;
      for (const cl of c.static_resources.clusters) delete cl.load_assignment;
      return c;
    };
    assert.deepEqual(strip(out), strip(doc));
    assert.throws(() => substituteAddresses(doc, {}), /no test address for plugin-gate-headless:9191/);
    assert.throws(() => substituteAddresses(doc, { 'plugin-gate-headless:9191': '127.0.0.1:1', 'nowhere:1': '127.0.0.1:2' }), /no socket address nowhere:1/);
  });

  it('CI runs the one command a person runs: setup, the full suite, the Dockerfile steps', () => {
    assert.match(readFileSync(join(ROOT, '.ci/run'), 'utf8'), /^CI=true bash scripts\/ci\.sh$/m);
    const ci = readFileSync(join(ROOT, 'scripts/ci.sh'), 'utf8');
    const steps = ci.split('\n').filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('set ') && !l.startsWith('cd '));
    assert.deepEqual(steps, ['bash scripts/setup.sh', 'npm test', 'bash scripts/docker-steps.sh']);
    const setup = readFileSync(join(ROOT, 'scripts/setup.sh'), 'utf8');
    assert.match(setup, /python3-venv/);
    assert.match(setup, /pip" install .*-r "\$REQ"/);
    assert.match(readFileSync(join(ROOT, '.gitignore'), 'utf8'), /^\/\.tools\/$/m);
    for (const f of ['scripts/setup.sh', 'scripts/ci.sh', '.ci/run']) execFileSync('bash', ['-n', join(ROOT, f)]);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts['ci'], 'bash scripts/ci.sh');
  });
});
