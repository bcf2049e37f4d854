/** The README must stay true: its option table, reason codes and error codes follow the code. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/core/package-root.js';
import { OPTIONS } from '../src/config/options.js';
import { PROBE_OWN_OPTIONS, PROBE_SHARED_KEYS } from '../src/probe/options.js';
import { VERDICT_REASONS } from '../src/probe/policy.js';
import { REASONS } from '../src/decide/types.js';
import { ERROR_CODES } from '../src/core/errors.js';

const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8');

describe('README', () => {
  it('documents every option with its default, and no option that does not exist', () => {
    const rows = new Map<string, string>();
    for (const m of readme.matchAll(/^\| `([a-z0-9-]+)` \| (`[^`]*`|—) \|/gm)) rows.set(m[1]!, m[2]!);
    for (const o of [...OPTIONS, ...PROBE_OWN_OPTIONS]) {
      assert.ok(rows.has(o.key), `README lacks option ${o.key}`);
      const want = o.default === undefined ? '—' : o.default === '' ? '`""`' : '`' + o.default + '`';
      assert.equal(rows.get(o.key), want, `default of ${o.key}`);
    }
    const keys = new Set<string>([...OPTIONS, ...PROBE_OWN_OPTIONS].map((o) => o.key));
    for (const k of rows.keys()) assert.ok(keys.has(k), `README documents unknown option ${k}`);
  });

  it('documents every reason code and every poll error code', () => {
    for (const r of REASONS) assert.ok(readme.includes('`' + r + '`'), `README lacks reason ${r}`);
    for (const c of ERROR_CODES.filter((c) => c.startsWith('status_') || c.startsWith('discovery_'))) {
      assert.ok(readme.includes('`' + c + '`'), `README lacks error code ${c}`);
    }
  });

  it('documents every probe readiness reason and every gate option the probe shares', () => {
    const section = readme.slice(readme.indexOf('## Pod readiness: `plugin-gate probe`'), readme.indexOf('## Operating it'));
    for (const r of VERDICT_REASONS.filter((r) => r !== 'ready' && r !== 'latched')) assert.ok(section.includes('`' + r + '`'), `README lacks probe reason ${r}`);
    for (const k of PROBE_SHARED_KEYS) assert.ok(section.includes('`' + k + '`'), `README lacks shared option ${k}`);
  });
});
