#!/usr/bin/env node
// Runs the compiled test files with Node's own test runner. Node 20's `--test`
// takes no globs, so the list is gathered here: `*.spec.js` beside the code in
// dist/src and every `*.test.js` under dist/test.
//
//   node scripts/run-tests.mjs --clean      remove dist/, build everything, run every file (`npm test`)
//   node scripts/run-tests.mjs --unit       only the unit specs beside the code (no servers)
//   node scripts/run-tests.mjs fleet e2e/   only the files whose path contains one of the words
//
// `--clean` is what `npm test` does: a file deleted or renamed in the sources must not
// live on as a stale compiled test. Every test has a time limit (TEST_TIMEOUT_MS,
// default 120 s), so one that hangs fails with its name instead of stalling the run.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const TEST_TIMEOUT_MS = Number(process.env.TEST_TIMEOUT_MS ?? 120_000);

function collect(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (name.endsWith('.spec.js') || name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const args = process.argv.slice(2);
const clean = args.includes('--clean');
const unit = args.includes('--unit');
const filter = args.filter((a) => !a.startsWith('--'));

if (clean) {
  rmSync('dist', { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

let files = unit ? collect('dist/src', []) : [...collect('dist/src', []), ...collect('dist/test', [])];
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files found (did the build run?)');
  process.exit(1);
}
// Envoy is part of the suite, never skipped: without the pinned binary the run stops here with one
// line naming what is missing and how to install it (under CI=true as much as outside it).
// A run of selected files checks only when it includes Envoy's tests (test/envoy); any other test
// that starts Envoy fails on its own with the same line.
if ((filter.length === 0 && !unit) || files.some((f) => f.includes('/test/envoy/'))) {
  const { findEnvoy } = await import('../dist/test/support/envoy.js');
  const envoy = findEnvoy();
  if (!envoy.ok) {
    console.error(`${process.env.CI === 'true' ? 'CI: ' : ''}${envoy.problem}`);
    process.exit(1);
  }
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
