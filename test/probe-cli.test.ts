/** `plugin-gate probe` as a process: help, --check-config, configuration errors, a real run, SIGTERM. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../src/core/package-root.js';
import { SimDaemon } from '../src/sim/daemon.js';
import { ManualScheduler } from './support/manual-scheduler.js';

const MAIN = join(packageRoot(), 'dist/src/cli/main.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env['PATH'] ?? '', ...env } });

describe('plugin-gate probe command', () => {
  it('--help lists the probe options, the shared ones and their environment names, and exits 0', () => {
    const r = run(['probe', '--help']);
    assert.equal(r.status, 0);
    for (const k of ['--target', '--listen', '--require', '--min-running', '--failed', '--latch', '--poll-interval', '--startup-grace']) assert.match(r.stdout, new RegExp(`^  ${k} `, 'm'), k);
    assert.match(r.stdout, /PLUGIN_GATE_MIN_RUNNING/);
    assert.doesNotMatch(r.stdout, /--grpc-listen/, 'no gate-only option in the probe help');
    assert.match(run(['--help']).stdout, /plugin-gate probe --target/, 'the gate help points to the probe');
  });

  it('--check-config prints the policy and exits 0', () => {
    const r = run(['probe', '--target', '127.0.0.1:5002', '--require', 'langgenius/openai', '--check-config'], { PLUGIN_GATE_FAILED: 'block' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^config ok$/m);
    assert.match(r.stdout, /target 127\.0\.0\.1:5002, listen 0\.0\.0\.0:9193/);
    assert.match(r.stdout, /ready when: require langgenius\/openai; failed block; latch on/);
  });

  it('a bad option exits 2 with one line per problem naming the key', () => {
    const r = run(['probe', '--target', '127.0.0.1:5002', '--min-running', 'most', '--grpc-listen', '0.0.0.0:9191', '--bogus', '1']);
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 3, r.stderr);
    assert.ok(lines.includes('plugin-gate probe: config: min-running: "most" must be a number from 0 to 1, e.g. 0.9'), r.stderr);
    assert.ok(lines.some((l) => l.startsWith('plugin-gate probe: config: --grpc-listen: a gate option')));
    assert.ok(lines.some((l) => l.startsWith('plugin-gate probe: config: --bogus: unknown option')));
    assert.equal(run(['probe']).status, 2, 'no target');
  });

  it('runs against a daemon: 503 while its plugin launches, 200 once it runs; SIGTERM exits 0', async () => {
    // Daemon time is moved by hand: the plugin runs when the test says, however slow the machine.
    // Its process started "long ago" for the probe's wall clock, so start-up is over by age.
    const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
    const daemon = new SimDaemon({ name: 'pod-1', scheduler: sched, plugins: [{ id: 'a/one', launchMs: 10_000 }] });
    await daemon.start();
    const child = spawn(
      process.execPath,
      [MAIN, 'probe', '--target', daemon.address, '--listen', '127.0.0.1:0', '--poll-interval', '200ms', '--poll-timeout', '200ms', '--log-level', 'info'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '' } },
    );
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      // The port comes from the start-up log line.
      let out = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /"listen":(\d+)/.exec(out);
          if (m !== null) resolve(Number(m[1]));
        });
        child.once('exit', () => reject(new Error(`exited before listening: ${out}`)));
      });
      const base = `http://127.0.0.1:${port}`;
      const until = async (want: number, body: RegExp): Promise<{ status: number; text: string }> => {
        const deadline = Date.now() + 15_000;
        let got = { status: 0, text: '' };
        while (Date.now() < deadline && !(got.status === want && body.test(got.text))) {
          const r = await fetch(`${base}/readyz`);
          got = { status: r.status, text: await r.text() };
          if (got.status !== want) await new Promise((r) => setTimeout(r, 100));
        }
        return got;
      };
      const launching = await until(503, /a\/one: starting: launching/);
      assert.equal(launching.status, 503, 'unready while a/one launches');
      assert.match(launching.text, /^not ready: 1 plugin starting/);
      sched.advance(10_000);
      assert.equal((await until(200, /^ready/)).status, 200, 'ready once it runs');
      const status = (await (await fetch(`${base}/status`)).json()) as { reason: string; daemon: { plugins: Record<string, { state: string }> } };
      assert.equal(status.reason, 'ready');
      assert.equal(status.daemon.plugins['a/one']?.state, 'ready');
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      clearTimeout(kill);
      child.kill('SIGKILL');
      await daemon.close();
    }
  });
});
