import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { httpCall } from '../../test/support/sim-http.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

test('the CLI prints targets first, serves them, reports state changes and exits cleanly on SIGTERM', async () => {
  const child = spawn(
    process.execPath,
    [MAIN, '--pods', '2', '--scenario', 'basic', '--time-scale', '0.01', '--ready-check'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Never leave the child behind, whatever happens below.
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    const waitFor = (re: RegExp): Promise<void> =>
      new Promise((resolve, reject) => {
        const poll = setInterval(() => {
          if (re.test(out)) {
            clearInterval(poll);
            resolve();
          }
        }, 10);
        child.once('exit', () => {
          clearInterval(poll);
          reject(new Error(`exited early; stdout: ${out}`));
        });
      });
    await waitFor(/\n/);
    const first = out.split('\n');
    const m = /^targets=(127\.0\.0\.1:\d+),(127\.0\.0\.1:\d+)$/.exec(first[0] ?? '');
    assert.ok(m, `first line: ${first[0]}`);
    const health = await httpCall(`http://${m[1]}/health/check`);
    assert.equal(health.status, 200);
    assert.equal(health.headers['x-sim-pod'], 'pod-1');
    // basic: launches of 3 s × 0.01 — the first plugins are ready within a fraction of a second.
    await waitFor(/ ready langgenius\/openai/);
    const withReady = out.split('\n');
    assert.ok(withReady.some((l) => /^\+\d+\.\d\ds pod-\d starting langgenius\/openai/.test(l)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    await assert.rejects(httpCall(`http://${m[1]}/health/check`), { code: 'ECONNREFUSED' });
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

test('the CLI rejects bad arguments with a usage line', async () => {
  const child = spawn(process.execPath, [MAIN, '--pods', 'many'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (err += c));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(killer);
  assert.equal(code, 2);
  assert.match(err, /--pods: "many"/);
  assert.match(err, /^usage: /m);
});
