/** The `plugin-gate` command as a process: help, configuration errors, start-up failure, drain on SIGTERM. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../src/core/package-root.js';

const MAIN = join(packageRoot(), 'dist/src/cli/main.js');
const run = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env['PATH'] ?? '' } });

async function busyPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return { server, port: typeof a === 'object' && a !== null ? a.port : 0 };
}

describe('plugin-gate command', () => {
  it('--help lists the options and exits 0', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--poll-interval/);
    assert.match(r.stdout, /PLUGIN_GATE_TARGETS/);
  });

  it('a bad configuration exits 2 with one line per problem naming the key', () => {
    const r = run(['--targets', 'daemon', '--poll-timeout', 'soon', '--nope', 'x']);
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 3, r.stderr);
    assert.ok(lines.some((l) => l.startsWith('plugin-gate: config: targets: "daemon"')));
    assert.ok(lines.some((l) => l.startsWith('plugin-gate: config: poll-timeout: "soon"')));
    assert.ok(lines.some((l) => l.startsWith('plugin-gate: config: --nope: unknown option')));
  });

  it('--check-config refuses options that contradict each other, one line each, exit 2', () => {
    // The reproduction: poll-interval 15s beside the default stale-after 10s made a healthy plugin flap.
    const r = run(['--check-config', '--targets', '10.0.0.1:5002', '--poll-interval', '15s', '--grpc-listen', '127.0.0.1:9000', '--admin-listen', '127.0.0.1:9000']);
    assert.equal(r.status, 2, r.stdout);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0]!, /^plugin-gate: config: stale-after: 10s must be longer than poll-interval/);
    assert.match(lines[1]!, /^plugin-gate: config: admin-listen: 127\.0\.0\.1:9000 uses the same port as grpc-listen/);
    assert.doesNotMatch(r.stdout, /config ok/);
    const ok = run(['--check-config', '--targets', '10.0.0.1:5002', '--poll-interval', '15s', '--stale-after', '30s']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^config ok/);
  });

  it('a port in use stops start-up with exit 1 and says which', async () => {
    const { server, port } = await busyPort();
    try {
      const r = run(['--targets', '127.0.0.1:9', '--admin-listen', `127.0.0.1:${port}`, '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', 'silent']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${port}`));
    } finally {
      server.close();
    }
  });

  it('on SIGTERM reports not ready, keeps answering for the drain, then exits 0', async () => {
    const { server, port } = await busyPort();
    server.close(); // a port that was free a moment ago, for the admin listener
    const child = spawn(process.execPath, [MAIN, '--targets', '127.0.0.1:9', '--admin-listen', `127.0.0.1:${port}`, '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--poll-timeout', '200ms', '--drain', '1500ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    try {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 10_000;
      let ready = 0;
      while (Date.now() < deadline && ready !== 200) {
        ready = await fetch(`${base}/readyz`).then((r) => r.status, () => 0);
        if (ready !== 200) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(ready, 200, 'ready once the first round (a refused pod) completes');
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await fetch(`${base}/readyz`)).status, 503, 'draining: not ready, still answering');
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal(await exited, 0);
    } finally {
      clearTimeout(kill);
      child.kill('SIGKILL');
    }
  });
});
