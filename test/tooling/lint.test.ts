/**
 * The lint rules (eslint.config.js: floating and misused promises) and the
 * import-cycle check run with the suite, over src, test and bench: both must
 * be clean. Each prints what it found when it is not.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/core/package-root.js';

/** The packages' own bin scripts (eslint exports no subpaths, so not through require.resolve). */
const bin = (path: string): string => join(packageRoot(), 'node_modules', path);

function run(bin: string, args: readonly string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: packageRoot(), encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('tooling', () => {
  it('eslint finds no floating or misused promise', () => {
    const r = run(bin('eslint/bin/eslint.js'), ['--max-warnings', '0', '.']);
    assert.equal(r.status, 0, r.out);
  });

  it('madge finds no import cycle among src, test and bench', () => {
    const r = run(bin('madge/bin/cli.js'), ['--circular', '--no-spinner', '--no-color', '--extensions', 'ts', '--ts-config', 'tsconfig.json', 'src', 'test', 'bench']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /No circular dependency found/);
  });
});
