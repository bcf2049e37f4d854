/**
 * Signals sent to the real `plugin-gate` process: each one does what the
 * README's "Signals" says. Before, SIGHUP and SIGUSR2 killed the gate at once,
 * a second SIGTERM took Node's default, and SIGUSR1 opened the inspector.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startGateProcess, within, type GateProcess } from './support/gate-process.js';

async function status(gp: GateProcess, path: string): Promise<number> {
  return fetch(`http://127.0.0.1:${gp.adminPort}${path}`).then((r) => r.status, () => 0);
}

function logLines(gp: GateProcess): Record<string, unknown>[] {
  return gp
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('signals to the plugin-gate process', () => {
  it('SIGHUP and SIGUSR2 are logged and ignored: the gate keeps serving, not draining', async () => {
    const gp = await startGateProcess();
    try {
      for (const signal of ['SIGHUP', 'SIGUSR2'] as const) {
        gp.child.kill(signal);
        assert.ok(await within(10_000, () => logLines(gp).some((l) => l['signal'] === signal)), `${signal} logged:\n${gp.stdout()}`);
        assert.equal(gp.alive(), true, `${signal} did not stop the process`);
        assert.equal(await status(gp, '/readyz'), 200, `${signal} did not start a drain`);
      }
      const hup = logLines(gp).find((l) => l['signal'] === 'SIGHUP');
      assert.match(String(hup?.['msg']), /ignored: options are read at start-up/);
    } finally {
      gp.kill();
    }
  });

  it('SIGUSR1 never opens the Node inspector (a control process on the same Node does open it)', async () => {
    // --inspect-port=0: were the inspector to start, it would bind an ephemeral
    // port (never another test's 9229) and say so on stderr.
    // It says "up" once its JavaScript runs: Node's own SIGUSR1 handler is in place by then.
    const control = spawn(process.execPath, ['--inspect-port=0', '-e', 'console.log("up"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let controlErr = '';
    let controlOut = '';
    control.stdout!.on('data', (d: Buffer) => (controlOut += d.toString()));
    control.stderr!.on('data', (d: Buffer) => (controlErr += d.toString()));
    try {
      assert.ok(await within(15_000, () => controlOut.includes('up')), 'the control process started');
      control.kill('SIGUSR1');
      assert.ok(await within(10_000, () => /Debugger listening/.test(controlErr)), `the control's inspector opened: ${controlErr}`);
    } finally {
      control.kill('SIGKILL');
    }

    const gp = await startGateProcess({ nodeArgs: ['--inspect-port=0'] });
    try {
      gp.child.kill('SIGUSR1');
      assert.ok(await within(10_000, () => logLines(gp).some((l) => l['signal'] === 'SIGUSR1')), gp.stdout());
      await new Promise((r) => setTimeout(r, 500));
      assert.doesNotMatch(gp.stderr(), /Debugger listening/);
      assert.equal(gp.alive(), true);
      assert.equal(await status(gp, '/healthz'), 200);
    } finally {
      gp.kill();
    }
  });

  it('a second SIGTERM during the drain exits at once with code 1 and a log line', async () => {
    const gp = await startGateProcess({ args: ['--drain', '60s'] });
    try {
      gp.child.kill('SIGTERM');
      assert.ok(await within(10_000, () => logLines(gp).some((l) => l['msg'] === 'shutting down')), gp.stdout());
      assert.equal(await status(gp, '/readyz'), 503, 'draining');
      gp.child.kill('SIGTERM');
      // The drain is 60 s: an exit well before it can only be the exit-now path.
      const exit = await Promise.race([gp.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
      assert.deepEqual(exit, { code: 1, signal: null }, 'exited by its own hand, not killed by the signal');
      assert.ok(logLines(gp).some((l) => l['msg'] === 'second signal: exiting now' && l['signal'] === 'SIGTERM'), gp.stdout());
    } finally {
      gp.kill();
    }
  });

  it('SIGINT drains like SIGTERM, and a SIGTERM after it is the second signal', async () => {
    const gp = await startGateProcess({ args: ['--drain', '60s'] });
    try {
      gp.child.kill('SIGINT');
      assert.ok(await within(10_000, () => logLines(gp).some((l) => l['msg'] === 'shutting down' && l['signal'] === 'SIGINT')), gp.stdout());
      assert.equal(gp.alive(), true, 'draining, not dead');
      gp.child.kill('SIGTERM');
      const exit = await Promise.race([gp.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
      assert.deepEqual(exit, { code: 1, signal: null });
    } finally {
      gp.kill();
    }
  });

  it('one SIGTERM drains for `drain`, then exits 0', async () => {
    const gp = await startGateProcess({ args: ['--drain', '300ms'] });
    try {
      gp.child.kill('SIGTERM');
      const exit = await Promise.race([gp.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(logLines(gp).some((l) => l['msg'] === 'stopped'), gp.stdout());
    } finally {
      gp.kill();
    }
  });
});
