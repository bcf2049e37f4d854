import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configProblems as problems } from '../../test/support/config-problems.js';
import { loadProbeConfig, probeConfigFor } from './config.js';
import { PROBE_OPTIONS, PROBE_OWN_OPTIONS, PROBE_SHARED_KEYS } from './options.js';
import { OPTIONS, fieldOf } from '../config/options.js';

describe('probe configuration', () => {
  it('defaults: listen 0.0.0.0:9193, the all-settled rule, failed ignore, latch on, the gate\'s polling defaults', () => {
    const c = probeConfigFor({ target: '127.0.0.1:5002' });
    assert.equal(c.target, '127.0.0.1:5002');
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 9193 });
    assert.deepEqual(c.require, []);
    assert.equal(c.minRunning, undefined);
    assert.equal(c.failed, 'ignore');
    assert.equal(c.latch, true);
    assert.equal(c.pollIntervalMs, 2_000);
    assert.equal(c.startupGraceMs, 60_000);
    assert.deepEqual(c.sources, ['metrics', 'health-check']);
  });

  it('shared options are the gate\'s own entries, not copies', () => {
    for (const k of PROBE_SHARED_KEYS) {
      assert.equal(PROBE_OPTIONS.find((o) => o.key === k), OPTIONS.find((o) => o.key === k), k);
    }
    const gateKeys: ReadonlySet<string> = new Set(OPTIONS.map((o) => o.key));
    for (const o of PROBE_OWN_OPTIONS) assert.ok(!gateKeys.has(o.key), `${o.key} is the probe's own`);
  });

  it('the ProbeConfig has one field per option of its table, named as the gate\'s fields are', () => {
    const c = probeConfigFor({ target: '127.0.0.1:5002', 'min-running': '0.5' });
    assert.deepEqual(Object.keys(c).sort(), PROBE_OPTIONS.map(fieldOf).sort());
    assert.equal(c.minRunning, 0.5);
    assert.equal(c.pollJitterPercent, 10);
  });

  it('reads flags, environment and file in the gate\'s order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-probe-'));
    const file = join(dir, 'probe.yaml');
    writeFileSync(file, 'target: 127.0.0.1:5002\nrequire: [langgenius/openai, langgenius/tavily]\nmin-running: 0.5\npoll-interval: 3s\n');
    const c = loadProbeConfig({ file, env: { PLUGIN_GATE_MIN_RUNNING: '0.9', PLUGIN_GATE_LATCH: 'false' }, flags: { failed: 'block' } });
    assert.deepEqual(c.require, ['langgenius/openai', 'langgenius/tavily']);
    assert.equal(c.minRunning, 0.9);
    assert.equal(c.latch, false);
    assert.equal(c.failed, 'block');
    assert.equal(c.pollIntervalMs, 3_000);
  });

  it('refuses gate-only options by name in every layer, and bad values with what is allowed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-probe-'));
    const file = join(dir, 'probe.yaml');
    writeFileSync(file, 'target: 127.0.0.1:5002\ndry-run: true\n');
    const p = problems(() =>
      loadProbeConfig({
        file,
        env: { PLUGIN_GATE_GRPC_LISTEN: '0.0.0.0:9191' },
        flags: { targets: '127.0.0.1:5002', 'min-running': '90%', failed: 'maybe', require: 'OpenAI/gpt', 'startup-grace': '20m' },
      }),
    );
    assert.ok(p.includes('failed: "maybe" must be one of ignore, block'), p.join('\n'));
    assert.ok(p.includes('min-running: "90%" must be a number from 0 to 1, e.g. 0.9'));
    assert.ok(p.some((l) => l.startsWith('require: "OpenAI/gpt" has entries that are not plugin ids')), p.join('\n'));
    assert.ok(p.some((l) => l.startsWith('--targets: a gate option')));
    assert.ok(p.some((l) => l.startsWith('PLUGIN_GATE_GRPC_LISTEN: a gate option')));
    assert.ok(p.some((l) => l.startsWith('dry-run: a gate option')));
    assert.ok(p.some((l) => l.startsWith('startup-grace: 20m must not exceed startup-max')));
    assert.equal(p.length, 7, p.join('\n'));
  });

  it('needs a target with a port', () => {
    assert.deepEqual(problems(() => probeConfigFor({})), ['target: (unset) is required: the daemon to watch, IP:port (127.0.0.1:5002 in its pod)']);
    assert.deepEqual(problems(() => probeConfigFor({ target: '127.0.0.1:0' })), ['target: "127.0.0.1:0" needs a non-zero port']);
  });
});
