/**
 * A stdout nobody reads (`plugin-gate … | sleep 100`): the log buffer stays
 * within log-buffer-bytes, what does not fit is dropped and counted, and
 * SIGTERM still ends the process after the drain. Before, memory grew with
 * every line and the process lived until the pipe's reader exited.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { metricValue, startGateProcess } from './support/gate-process.js';

const BUFFER = 65_536;

describe('logging to a blocked stdout', () => {
  it('drops and counts past log-buffer-bytes, keeps answering, and exits after the drain on SIGTERM', async () => {
    const gp = await startGateProcess({
      blockStdout: true,
      args: ['--decision-log', 'all', '--decision-log-rate', '0', '--log-buffer-bytes', String(BUFFER), '--drain', '300ms'],
    });
    const agent = new Agent({ connections: 16 });
    try {
      // Every check is a logged decision (no_live_pod): ~5,000 lines, far more
      // than the pipe, Node's read buffer and the sink together hold.
      let answered = 0;
      const one = async (i: number): Promise<void> => {
        const r = await request(`http://127.0.0.1:${gp.httpPort}/plugin/t/dispatch/tool/invoke?i=${i}`, {
          method: 'POST',
          headers: { 'x-plugin-id': 'langgenius/openai' },
          dispatcher: agent,
        });
        await r.body.dump();
        if (r.statusCode === 503) answered++;
      };
      for (let i = 0; i < 5_000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => one(i + j)));
      assert.equal(answered, 5_000, 'every check answered while stdout is blocked');

      const page = await fetch(`http://127.0.0.1:${gp.adminPort}/metrics`).then((r) => r.text());
      const dropped = metricValue(page, 'plugin_gate_log_lines_dropped_total');
      const buffered = metricValue(page, 'plugin_gate_log_buffer_bytes');
      assert.ok(dropped !== undefined && dropped > 1_000, `lines dropped and counted: ${dropped}`);
      assert.ok(buffered !== undefined && buffered > 0 && buffered <= BUFFER, `backlog within log-buffer-bytes: ${buffered}`);

      gp.child.kill('SIGTERM');
      // The pipe is still blocked: the exit must not wait for its reader.
      const exit = await Promise.race([gp.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
      assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${gp.stderr()}`);
    } finally {
      await agent.close();
      gp.kill();
    }
  });
});
