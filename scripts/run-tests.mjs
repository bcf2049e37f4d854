#!/usr/bin/env node
// Runs every compiled test file with Node's own test runner. Node 20's `--test`
// takes no globs, so the list is gathered here: `*.spec.js` beside the code in
// dist/src and every `*.test.js` under dist/test.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

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

const filter = process.argv.slice(2);
let files = [...collect('dist/src', []), ...collect('dist/test', [])];
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files found (did the build run?)');
  process.exit(1);
}
// Envoy is part of the suite, never skipped: without the pinned binary the run stops here with one
// line naming what is missing and how to install it (under CI=true as much as outside it).
// A run of selected files checks only when it includes Envoy's tests (test/envoy); any other test
// that starts Envoy fails on its own with the same line.
if (filter.length === 0 || files.some((f) => f.includes('/test/envoy/'))) {
  const { findEnvoy } = await import('../dist/test/support/envoy.js');
  const envoy = findEnvoy();
  if (!envoy.ok) {
    console.error(`${process.env.CI === 'true' ? 'CI: ' : ''}${envoy.problem}`);
    process.exit(1);
  }
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
