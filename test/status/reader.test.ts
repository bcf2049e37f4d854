import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualScheduler } from '../support/manual-scheduler.js';
import { configFor } from '../../src/config/config.js';
import { StatusHttp } from '../../src/status/http.js';
import { PodMemory, podReaderFor, readPod, type ReadPodOptions } from '../../src/status/reader.js';
import { readMetrics } from '../../src/status/metrics.js';
import { readHealth } from '../../src/status/health.js';
import { readReady } from '../../src/status/ready.js';
import type { SourceResult } from '../../src/status/types.js';
import { daemonExposition } from './daemon-exposition.js';
import { closedPort, hang, json, startServer, text, type TestServer } from './servers.js';

const SHA = 'b'.repeat(64);
const HEALTH = { status: 'ok', pool_status: { free: 1, busy: 0, total: 1 }, version: '0.5.7', build_time: 'x', platform: 'local', active_requests: 0, active_dispatch_requests: 4 };

function value<T>(r: SourceResult<T> | undefined): T {
  assert.ok(r !== undefined, 'source was not read');
  if (!r.ok) assert.fail(`expected ok, got ${r.error.code}: ${r.error.message}`);
  assert.ok(r.latencyMs >= 0);
  return r.data;
}
function code<T>(r: SourceResult<T> | undefined): string {
  assert.ok(r !== undefined, 'source was not read');
  assert.equal(r.ok, false, 'expected a failed read');
  return r.ok ? '' : r.error.code;
}

describe('status readers against a loopback daemon', () => {
  let daemon: TestServer;
  let odd: TestServer;
  let http: StatusHttp;
  const clock = new ManualScheduler();
  let o: ReadPodOptions;

  before(async () => {
    daemon = await startServer({
      // The daemon's own /metrics/ is reached directly; /metrics redirects there.
      '/metrics/': text(200, daemonExposition([{ id: 'langgenius/openai', status: 1, failed: 0 }, { id: 'acme/slow', status: 0.5, failed: 2 }], { startSeconds: 1767225000 })),
      '/health/check': json(200, HEALTH),
      '/ready/check': json(503, {
        status: 'unready',
        ready: false,
        reason: 'plugins_starting',
        detail: { Expected: 2, Running: 1, Missing: [`acme/slow:0.0.1@${SHA}`], Failed: null, MaxRetries: 15 },
      }),
    });
    // A pod whose endpoints misbehave in every way a reader must survive.
    odd = await startServer({
      '/metrics': (_req, res) => res.writeHead(301, { location: '/metrics/' }).end(),
      '/metrics/': text(200, '<html><body>metrics are elsewhere</body></html>'),
      '/health/check': hang,
      // no /ready/check: a daemon without PR #600 answers 404
    });
    http = new StatusHttp({ timeoutMs: 300 });
    o = { http, clock, timeoutMs: 300, maxBytes: 1 << 20, maxPlugins: 100 };
  });

  after(async () => {
    await http.close();
    await daemon.close();
    await odd.close();
  });

  it('readMetrics: the plugin families of the pod', async () => {
    const m = value(await readMetrics(daemon.address, o));
    assert.deepEqual([...m.runtimeStatus], [['langgenius/openai', 1], ['acme/slow', 0.5]]);
    assert.deepEqual([...m.failedLaunches], [['langgenius/openai', 0], ['acme/slow', 2]]);
    assert.equal(m.processStartMs, 1767225000000);
  });

  it('readHealth: version, platform, dispatch load', async () => {
    assert.deepEqual(value(await readHealth(daemon.address, o)), { version: '0.5.7', platform: 'local', activeDispatchRequests: 4 });
  });

  it('readReady: a 503 is a successful read of an unready pod', async () => {
    assert.deepEqual(value(await readReady(daemon.address, o)), {
      ready: false,
      reason: 'plugins_starting',
      detail: { missing: ['acme/slow'], failed: [], expected: 2, running: 1, maxRetries: 15 },
    });
  });

  it('readPod reads every configured source into one report stamped by the clock', async () => {
    clock.set(Date.UTC(2026, 0, 1, 12));
    const r = await readPod(daemon.address, ['metrics', 'health-check', 'ready-check'], o);
    assert.equal(r.pod, daemon.address);
    assert.equal(r.at, Date.UTC(2026, 0, 1, 12));
    assert.equal(value(r.metrics).runtimeStatus.get('langgenius/openai'), 1);
    assert.equal(value(r.health).version, '0.5.7');
    assert.equal(value(r.ready).ready, false);
  });

  it('readPod reads only the configured sources', async () => {
    const before = { m: daemon.hits.get('/metrics/') ?? 0, h: daemon.hits.get('/health/check') ?? 0, r: daemon.hits.get('/ready/check') ?? 0 };
    const r = await readPod(daemon.address, ['health-check'], o);
    assert.equal(r.metrics, undefined);
    assert.equal(r.ready, undefined);
    assert.ok(r.health?.ok);
    assert.equal(daemon.hits.get('/metrics/') ?? 0, before.m);
    assert.equal(daemon.hits.get('/ready/check') ?? 0, before.r);
    assert.equal(daemon.hits.get('/health/check'), before.h + 1);
  });

  it('each source fails on its own: garbage, hang and 404 on one pod', async () => {
    const r = await readPod(odd.address, ['metrics', 'health-check', 'ready-check'], o);
    assert.equal(code(r.metrics), 'status_unparseable');
    assert.equal(code(r.health), 'status_timeout');
    assert.equal(code(r.ready), 'status_http_error');
  });

  it('readPod never rejects: a pod with nothing listening gives status_refused per source', async () => {
    const r = await readPod(`127.0.0.1:${await closedPort()}`, ['metrics', 'health-check'], o);
    assert.equal(code(r.metrics), 'status_refused');
    assert.equal(code(r.health), 'status_refused');
  });

  it('a body over max-status-bytes is status_too_large', async () => {
    assert.equal(code(await readMetrics(daemon.address, { ...o, maxBytes: 1024 })), 'status_too_large');
  });

  it('podReaderFor binds the configuration', async () => {
    const cfg = configFor({ targets: daemon.address, sources: 'metrics,ready-check', 'poll-timeout': '300ms', 'max-plugins': '1' });
    const read = podReaderFor(cfg, http, clock);
    const r = await read(daemon.address, new AbortController().signal);
    assert.equal(r.health, undefined);
    assert.equal(value(r.metrics).runtimeStatus.size, 1, 'max-plugins applied');
    assert.equal(value(r.ready).reason, 'plugins_starting');
  });

  it('with memory: health-check once per interval or new process, unchanged metrics handed on as the same object', async () => {
    const memory = new PodMemory(60_000);
    const withMemory = { ...o, memory };
    const sources = ['metrics', 'health-check'] as const;
    const hits = (): number => daemon.hits.get('/health/check') ?? 0;
    const h0 = hits();
    const first = await readPod(daemon.address, sources, withMemory);
    assert.equal(value(first.health).version, '0.5.7');
    assert.equal(hits(), h0 + 1);
    clock.advance(2_000);
    const second = await readPod(daemon.address, sources, withMemory);
    assert.equal(second.health, undefined, 'health-check not read again within the interval');
    assert.equal(hits(), h0 + 1);
    assert.equal(value(second.metrics), value(first.metrics), 'byte-identical plugin families: the same object');
    clock.advance(60_000);
    const third = await readPod(daemon.address, sources, withMemory);
    assert.ok(third.health?.ok, 'read again once the interval has passed');
    assert.equal(hits(), h0 + 2);
    // A pod whose metrics answer garbage is read on health-check too, every time: it tells "answering" from "gone".
    const oddMemory = { ...o, memory, timeoutMs: 200 };
    await readPod(odd.address, sources, oddMemory);
    const again = await readPod(odd.address, sources, oddMemory);
    assert.equal(code(again.metrics), 'status_unparseable');
    assert.equal(code(again.health), 'status_timeout');
    // health-check-interval 0: every poll, as without memory.
    const every = { ...o, memory: new PodMemory(0) };
    await readPod(daemon.address, sources, every);
    assert.ok((await readPod(daemon.address, sources, every)).health?.ok);
  });

  it('with memory: a new daemon process (start time changed) is read on health-check at once', async () => {
    let start = 1767225000;
    const pod = await startServer({
      '/metrics/': (_req, res) => res.writeHead(200).end(daemonExposition([{ id: 'a/b', status: 1, failed: 0 }], { startSeconds: start })),
      '/health/check': json(200, HEALTH),
    });
    try {
      const memory = new PodMemory(60_000);
      const opts = { ...o, memory };
      await readPod(pod.address, ['metrics', 'health-check'], opts);
      assert.equal((await readPod(pod.address, ['metrics', 'health-check'], opts)).health, undefined);
      start += 100;
      const r = await readPod(pod.address, ['metrics', 'health-check'], opts);
      assert.ok(r.health?.ok);
      assert.equal(pod.hits.get('/health/check'), 2);
    } finally {
      await pod.close();
    }
  });

  it('with memory: the first read asks metrics and health-check at once; the periodic re-read waits for metrics (one connection)', async () => {
    let metricsInFlight = 0;
    const overlapped: boolean[] = [];
    const ports: number[] = [];
    const pod = await startServer({
      '/metrics/': (req, res) => {
        ports.push(req.socket.remotePort!);
        metricsInFlight++;
        setTimeout(() => {
          metricsInFlight--;
          res.writeHead(200).end(daemonExposition([{ id: 'a/b', status: 1, failed: 0 }], { startSeconds: 1767225000 }));
        }, 40);
      },
      '/health/check': (req, res) => {
        ports.push(req.socket.remotePort!);
        overlapped.push(metricsInFlight > 0);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(HEALTH));
      },
    });
    try {
      const opts = { ...o, timeoutMs: 2_000, memory: new PodMemory(60_000) };
      assert.ok((await readPod(pod.address, ['metrics', 'health-check'], opts)).health?.ok);
      clock.advance(60_000);
      const before = new Set(ports);
      const seen = ports.length;
      const r = await readPod(pod.address, ['metrics', 'health-check'], opts);
      assert.ok(r.health?.ok && r.metrics?.ok);
      assert.deepEqual(overlapped, [true, false], 'first read concurrent, periodic re-read after metrics');
      assert.equal(ports.length, seen + 2);
      assert.ok(ports.slice(seen).every((p) => before.has(p)), 'the re-read reuses a kept-alive connection');
    } finally {
      await pod.close();
    }
  });

  it('an aborted signal ends a pod read early, as failed sources', async () => {
    const ac = new AbortController();
    const p = readPod(odd.address, ['health-check'], { ...o, timeoutMs: 10_000, signal: ac.signal });
    ac.abort();
    assert.equal(code((await p).health), 'status_timeout');
  });
});
