/**
 * Large inputs must not stall Checks (the hardening issue, item 5). Two
 * attacks, each with its defined outcome:
 *
 * - a pod serving a 7 MB `/metrics/` body: refused as status_too_large under
 *   the default max-status-bytes (1 MiB; a daemon with 2,000 plugins serves
 *   about 290 KiB) without being read to the end; with the limit raised, parsed
 *   in slices between which the event loop runs (before, one parse held it for
 *   56–99 ms);
 * - a CheckRequest of about 1 MB: RESOURCE_EXHAUSTED under the default
 *   grpc-max-message-bytes (128 KiB), before it is decoded; the next Check is
 *   answered as usual.
 *
 * Behaviour only: no timing is asserted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { configFor } from '../src/config/config.js';
import { startGrpcServer, type GrpcServer } from '../src/front/grpc/server.js';
import { limitServerOptions } from '../src/front/grpc/limits.js';
import { StatusHttp } from '../src/status/http.js';
import { readMetrics } from '../src/status/metrics.js';
import { parseExpositionInSlices } from '../src/status/prometheus.js';
import { takeTurn } from '../src/status/turns.js';
import type { ReadOptions } from '../src/status/source.js';
import { officialClient, StubService } from './front/fixtures.js';
import { daemonExposition } from './status/daemon-exposition.js';
import { startServer, text, type TestServer } from './status/servers.js';

/** A daemon exposition of about `bytes`: its plugins, then Go-runtime-like noise. */
function hugeExposition(bytes: number): string {
  const head = daemonExposition([{ id: 'langgenius/openai', status: 1, failed: 0 }], { startSeconds: 1767225000 });
  const lines: string[] = [head, '# HELP go_noise_total Padding.', '# TYPE go_noise_total counter'];
  let size = head.length;
  for (let i = 0; size < bytes; i++) {
    const line = `go_noise_total{shard="${i}",path="/a/very/long/label/value/that/takes/room/${i}"} ${i}`;
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

describe('a 7 MB /metrics/ body', () => {
  const body = hugeExposition(7 * 1024 * 1024);
  let pod: TestServer;
  let http: StatusHttp;
  let opts: ReadOptions;

  before(async () => {
    pod = await startServer({ '/metrics/': text(200, body) });
    http = new StatusHttp({ timeoutMs: 20_000 });
    opts = { http, timeoutMs: 20_000, maxBytes: configFor({ targets: pod.address }).maxStatusBytes, maxPlugins: 2000 };
  });
  after(async () => {
    await http.close();
    await pod.close();
  });

  it('is status_too_large under the default max-status-bytes', async () => {
    assert.ok(body.length > opts.maxBytes, 'the default is below the attack');
    const r = await readMetrics(pod.address, opts);
    assert.equal(r.ok, false);
    assert.equal(r.ok ? '' : r.error.code, 'status_too_large');
  });

  it('with the limit raised, is read and parsed in slices: the event loop keeps turning during the parse', async () => {
    const r = await readMetrics(pod.address, { ...opts, maxBytes: 16 * 1024 * 1024 });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.data.runtimeStatus.get('langgenius/openai'), 1);
    // The parse alone (no I/O pending): every turn another callback got is a slice boundary.
    let turns = 0;
    let parsing = true;
    const spin = (): void => {
      turns++;
      if (parsing) setImmediate(spin);
    };
    setImmediate(spin);
    const parsed = await parseExpositionInSlices(body, 2000, undefined, takeTurn);
    parsing = false;
    assert.ok(parsed.ok);
    // 7 MB in slices of 64 KiB: over a hundred, each in its own loop iteration.
    assert.ok(turns >= 100, `the loop turned ${turns} times during the parse`);
  });
});

describe('a CheckRequest of about 1 MB', () => {
  let server: GrpcServer;
  let client: ReturnType<typeof officialClient>;
  const stub = new StubService();

  before(async () => {
    const limits = configFor({ targets: '127.0.0.1:1' });
    server = await startGrpcServer({
      listen: { host: '127.0.0.1', port: 0 },
      service: stub,
      config: { routeHeader: undefined, grpcReflection: false, grpcMaxMessageBytes: limits.grpcMaxMessageBytes },
    });
    client = officialClient(server.port);
  });
  after(async () => {
    client.close();
    await server.close(0);
  });

  const call = (headers: Record<string, string>): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => {
      const req = { attributes: { request: { http: { method: 'POST', path: '/plugin/t/dispatch/tool/invoke', headers: { 'x-plugin-id': 'a/b', ...headers } } } } };
      client.Check(req, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => resolve(err));
    });

  it('is RESOURCE_EXHAUSTED under the default grpc-max-message-bytes, and the next Check is answered', async () => {
    assert.deepEqual(limitServerOptions({ grpcMaxMessageBytes: 131072 })['grpc.max_receive_message_length'], 131072);
    const huge: Record<string, string> = {};
    for (let i = 0; i < 240; i++) huge[`x-filler-${i}`] = 'v'.repeat(4000);
    const calls = stub.calls.length;
    const err = await call(huge);
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(stub.calls.length, calls, 'never decoded into a check');
    assert.equal(await call({}), null);
  });
});
