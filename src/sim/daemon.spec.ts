import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import http from 'node:http';
import { pluginIdFromUniqueId } from '../core/plugin-id.js';
import { SimDaemon, type SimDaemonOptions } from './daemon.js';
import { uniqueIdentifierFor } from './lifecycle.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';
import { httpCall, parseExposition, sampleValue, type Sample } from '../../test/support/sim-http.js';

const START = Date.UTC(2026, 0, 1, 12, 0, 0, 250);

async function withDaemon(
  opts: Partial<SimDaemonOptions>,
  fn: (d: SimDaemon, s: ManualScheduler) => Promise<void>,
): Promise<void> {
  const s = new ManualScheduler(START);
  const d = new SimDaemon({ name: 'pod-1', scheduler: s, ...opts });
  await d.start();
  try {
    await fn(d, s);
  } finally {
    await d.close();
  }
}

async function scrape(d: SimDaemon): Promise<Sample[]> {
  const r = await httpCall(`${d.url}/metrics/`);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(r.body);
}

const gauge = (samples: Sample[], id: string) =>
  sampleValue(samples, 'plugin_runtime_status', { plugin_id: id, runtime_type: 'local' });

/** Waits (bounded) until the daemon holds exactly `n` received, unanswered requests. */
async function untilOpen(d: SimDaemon, n: number): Promise<void> {
  for (let i = 0; i < 300 && d.snapshot().openRequests !== n; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(d.snapshot().openRequests, n, 'open requests');
}

const UNIQUE_ID =
  /^(?:([a-z0-9_-]{1,64})\/)?([a-z0-9_-]{1,255}):([0-9]{1,4})(\.[0-9]{1,4}){1,3}(-\w{1,16})?@[a-f0-9]{32,64}$/;

test('/metrics/ follows the lifecycle: no series while queued, 0.5 launching, 1 running; Go-shaped exposition', async () => {
  await withDaemon(
    {
      plugins: [
        { id: 'langgenius/openai', launchMs: 1000 },
        { id: 'langgenius/anthropic', launchMs: 2000 },
        { id: 'langgenius/tavily', launchMs: 500 },
      ],
    },
    async (d, s) => {
      const first = await httpCall(`${d.url}/metrics/`);
      assert.equal(first.headers['x-sim-pod'], 'pod-1');
      const text = first.body;
      // HELP/TYPE lines, Go runtime and process families, HTTP histogram with escaped labels.
      assert.match(text, /^# HELP go_gc_duration_seconds /);
      assert.match(text, /\n# TYPE go_gc_duration_seconds summary\ngo_gc_duration_seconds\{quantile="0"\} /);
      assert.match(text, /\ngo_memstats_alloc_bytes \d\.\d+e\+06\n/);
      assert.match(text, /\nprocess_virtual_memory_max_bytes 1\.8446744073709552e\+19\n/);
      assert.match(text, /endpoint="\/e\/:hook_id\/\*path\?q=\\"a,b\\"\\\\c\\nd"/);
      assert.match(text, /le="\+Inf"/);
      assert.ok(text.indexOf('go_goroutines') < text.indexOf('process_start_time_seconds'));
      assert.ok(text.indexOf('process_start_time_seconds') < text.indexOf('plugin_runtime_status'));
      // Labels arrive in varied order.
      assert.match(text, /plugin_runtime_status\{plugin_id="langgenius\/openai",runtime_type="local"\} 0\.5/);
      assert.match(text, /plugin_runtime_status\{runtime_type="local",plugin_id="langgenius\/anthropic"\} 0\.5/);

      let m = parseExposition(text);
      assert.equal(sampleValue(m, 'process_start_time_seconds'), START / 1000);
      assert.match(text, /\nprocess_start_time_seconds 1\.76726880025e\+09\n/);
      assert.equal(gauge(m, 'langgenius/tavily'), undefined, 'queued plugin has no series');
      assert.equal(m.some((x) => x.labels['plugin_id'] === 'langgenius/tavily'), false);
      assert.equal(sampleValue(m, 'active_plugins_total'), undefined);

      s.advance(1000);
      m = await scrape(d);
      assert.equal(gauge(m, 'langgenius/openai'), 1);
      assert.equal(gauge(m, 'langgenius/tavily'), 0.5);
      assert.equal(sampleValue(m, 'plugin_restarts_total', { plugin_id: 'langgenius/openai' }), 0);
      assert.equal(sampleValue(m, 'active_plugins_total', { runtime_type: 'local' }), 1);
      assert.equal(sampleValue(m, 'plugin_installations_total', { plugin_id: 'langgenius/openai' }), undefined);

      s.advance(1000);
      m = await scrape(d);
      assert.deepEqual(
        ['langgenius/openai', 'langgenius/anthropic', 'langgenius/tavily'].map((id) => gauge(m, id)),
        [1, 1, 1],
      );
      assert.equal(sampleValue(m, 'active_plugins_total', { runtime_type: 'local' }), 3);
      // Earlier scrapes are counted, as gin's middleware counts a request once it has been answered.
      assert.equal(sampleValue(m, 'plugin_http_requests_total', { endpoint: '/metrics/', status: '200' }), 2);

      assert.equal(d.restartPlugin('langgenius/openai'), true);
      m = await scrape(d);
      assert.equal(sampleValue(m, 'plugin_restarts_total', { plugin_id: 'langgenius/openai' }), 1);
      assert.equal(gauge(m, 'langgenius/openai'), 1);
    },
  );
});

test('retries and give-up are visible: failed-launch counter reaches 15, gauge 0, no more launches', async () => {
  const kinds: string[] = [];
  await withDaemon(
    {
      plugins: [{ id: 'langgenius/comfyui', launchMs: 100, failures: 'always' }],
      onEvent: (e) => kinds.push(e.kind),
    },
    async (d, s) => {
      s.advance(100);
      let m = await scrape(d);
      assert.equal(sampleValue(m, 'plugin_installations_total', { plugin_id: 'langgenius/comfyui', status: 'failed' }), 1);
      assert.equal(gauge(m, 'langgenius/comfyui'), 0.5, 'retry 0 starts at once');
      s.advance(3_600_000);
      m = await scrape(d);
      assert.equal(sampleValue(m, 'plugin_installations_total', { plugin_id: 'langgenius/comfyui', status: 'failed' }), 15);
      assert.equal(gauge(m, 'langgenius/comfyui'), 0);
      const [p] = d.snapshot().plugins;
      assert.equal(p?.phase, 'gave_up');
      s.advance(3_600_000);
      assert.equal(d.snapshot().plugins[0]?.attempts, 15);
      assert.equal(kinds.filter((k) => k === 'starting').length, 15);
      assert.equal(kinds.filter((k) => k === 'gave_up').length, 1);
    },
  );
});

test('GET /metrics answers 301 to /metrics/; gzip when the scraper accepts it; health check shape', async () => {
  await withDaemon({ plugins: [{ id: 'a/b', launchMs: 10 }], version: '0.5.9' }, async (d) => {
    const r = await httpCall(`${d.url}/metrics`);
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, '/metrics/');
    assert.equal(r.headers['x-sim-pod'], 'pod-1');

    const gz = await new Promise<Buffer>((resolve, reject) => {
      http
        .get(`${d.url}/metrics/`, { headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
          assert.equal(res.headers['content-encoding'], 'gzip');
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
        })
        .on('error', reject);
    });
    assert.equal(gauge(parseExposition(gunzipSync(gz).toString()), 'a/b'), 0.5);

    const h = await httpCall(`${d.url}/health/check`);
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-type'], 'application/json; charset=utf-8');
    const body = JSON.parse(h.body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), [
      'status',
      'pool_status',
      'version',
      'build_time',
      'platform',
      'active_requests',
      'active_dispatch_requests',
    ]);
    assert.equal(body['status'], 'ok');
    assert.equal(body['version'], '0.5.9');
    assert.equal(body['platform'], 'local');
    assert.equal(body['active_requests'], 1);
    assert.equal(body['active_dispatch_requests'], 0);
    const pool = body['pool_status'] as { free: number; busy: number; total: number };
    assert.equal(pool.free + pool.busy, pool.total);
  });
});

test('/ready/check: 404 unless enabled; PR #600 shapes as the plugins come up', async () => {
  await withDaemon({ plugins: [{ id: 'a/b', launchMs: 10 }] }, async (d) => {
    const r = await httpCall(`${d.url}/ready/check`);
    assert.equal(r.status, 404);
    assert.equal(r.body, '404 page not found');
  });

  await withDaemon(
    {
      readyCheck: true,
      plugins: [
        { id: 'langgenius/openai', version: '0.2.1', launchMs: 50_000 },
        { id: 'langgenius/jina', launchMs: 10 },
      ],
    },
    async (d, s) => {
      let r = await httpCall(`${d.url}/ready/check`);
      assert.equal(r.status, 503);
      assert.deepEqual(JSON.parse(r.body), {
        status: 'unready',
        ready: false,
        reason: 'plugin_monitor_not_ready',
        detail: null,
      });
      // The first launch pass ends when openai is up; until then there is no snapshot.
      s.advance(49_999);
      assert.equal((await httpCall(`${d.url}/ready/check`)).status, 503);
      s.advance(1);
      r = await httpCall(`${d.url}/ready/check`);
      assert.equal(r.status, 200);
      assert.equal(r.body, '{"status":"ok","ready":true,"reason":"plugins_ready"}');
      // A restarted process has no snapshot again until its first pass completes.
      await d.restart();
      r = await httpCall(`${d.url}/ready/check`);
      assert.equal(JSON.parse(r.body).reason, 'plugin_monitor_not_ready');
    },
  );

  await withDaemon(
    {
      readyCheck: true,
      retryLimit: 4,
      launchConcurrency: 3,
      plugins: [
        { id: 'langgenius/broken', launchMs: 10, failures: 'always' },
        { id: 'langgenius/openai', version: '0.2.1', launchMs: 10 },
        { id: 'langgenius/flaky', launchMs: 20, failures: 3 },
      ],
    },
    async (d, s) => {
      // t=60: broken and flaky both wait 30 s after their third failure; nothing is launching.
      s.advance(100);
      let r = await httpCall(`${d.url}/ready/check`);
      assert.equal(r.status, 503);
      assert.equal(JSON.parse(r.body).reason, 'plugins_starting');
      // t=30040: broken fails its 4th (last) attempt; flaky still waits until 30060.
      s.advanceTo(START + 30_050);
      r = await httpCall(`${d.url}/ready/check`);
      assert.equal(r.status, 503);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
      const body = JSON.parse(r.body) as { status: string; ready: boolean; reason: string; detail: Record<string, unknown> };
      assert.equal(body.status, 'unready');
      assert.equal(body.ready, false);
      assert.equal(body.reason, 'plugins_failed');
      assert.deepEqual(Object.keys(body.detail), [
        'Ready',
        'InitialPluginsReady',
        'InitialExpected',
        'InitialRunning',
        'InitialMissing',
        'InitialFailed',
        'RuntimePluginsLoading',
        'RuntimeMissing',
        'Expected',
        'Running',
        'Missing',
        'Failed',
        'UpdatedAt',
        'Platform',
        'Installed',
        'Ignored',
        'MaxRetries',
      ]);
      const detail = body.detail as {
        InitialMissing: string[];
        InitialFailed: string[];
        Failed: string[];
        Running: number;
        MaxRetries: number;
        Platform: string;
        UpdatedAt: string;
      };
      assert.deepEqual(detail.InitialFailed, [uniqueIdentifierFor('langgenius/broken')]);
      assert.deepEqual(detail.Failed, detail.InitialFailed);
      assert.deepEqual(detail.InitialMissing, [uniqueIdentifierFor('langgenius/flaky')]);
      for (const u of [...detail.InitialFailed, ...detail.InitialMissing]) assert.match(u, UNIQUE_ID);
      assert.equal(detail.Running, 1);
      assert.equal(detail.MaxRetries, 4);
      assert.equal(detail.Platform, 'local');
      assert.equal(detail.UpdatedAt, '2026-01-01T12:00:30.29Z');
      // flaky's 4th attempt succeeds at 30080: only a permanent failure is left, which 200 hides.
      s.advanceTo(START + 30_080);
      r = await httpCall(`${d.url}/ready/check`);
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { status: 'ok', ready: true, reason: 'plugins_ready' });
    },
  );
});

test('dispatch: 200 stream when the plugin runs here, 404 daemon envelope otherwise; stats count both', async () => {
  await withDaemon(
    {
      plugins: [
        { id: 'langgenius/openai', version: '0.2.1', launchMs: 10 },
        { id: 'langgenius/tongyi', launchMs: 1_000 },
      ],
    },
    async (d, s) => {
      s.advance(10);
      const body = JSON.stringify({ user_id: 'u', data: { prompt: 'x'.repeat(10_000) } });
      const ok = await httpCall(`${d.url}/plugin/tenant-1/dispatch/llm/invoke`, {
        method: 'POST',
        headers: { 'x-plugin-id': 'langgenius/openai', 'content-type': 'application/json' },
        body,
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers['content-type'], 'text/event-stream');
      assert.equal(ok.headers['x-sim-pod'], 'pod-1');
      assert.equal(
        ok.body,
        '{"code":0,"message":"","data":{"served_by":"pod-1","plugin_id":"langgenius/openai"}}\n',
      );

      const miss = await httpCall(`${d.url}/plugin/tenant-1/dispatch/tool/invoke`, {
        method: 'POST',
        headers: { 'x-plugin-id': 'langgenius/tongyi' },
        body: '{}',
      });
      assert.equal(miss.status, 404);
      assert.equal(
        miss.body,
        '{"code":-500,"message":"{\\"message\\":\\"no available node, plugin runtime not found\\",\\"error_type\\":\\"PluginDaemonInternalServerError\\",\\"args\\":null}","data":null}',
      );
      const env = JSON.parse(miss.body) as { code: number; message: string; data: null };
      assert.deepEqual(JSON.parse(env.message), {
        message: 'no available node, plugin runtime not found',
        error_type: 'PluginDaemonInternalServerError',
        args: null,
      });

      const uid = uniqueIdentifierFor('langgenius/openai', '0.2.1');
      assert.equal(pluginIdFromUniqueId(uid), 'langgenius/openai');
      const v2 = await httpCall(`${d.url}/v2/invoke/dispatch/llm/invoke`, {
        method: 'POST',
        headers: { 'x-plugin-unique-identifier': uid },
        body: '{"tenant_id":"t"}',
      });
      assert.equal(v2.status, 200);
      assert.match(v2.body, /"served_by":"pod-1"/);
      const extract = await httpCall(`${d.url}/v2/invoke/extract`, {
        headers: { 'x-plugin-unique-identifier': uniqueIdentifierFor('langgenius/tongyi') },
      });
      assert.equal(extract.status, 404);
      const bad = await httpCall(`${d.url}/v2/invoke/dispatch/tool/invoke`, {
        method: 'POST',
        headers: { 'x-plugin-unique-identifier': 'not-an-identifier' },
      });
      assert.equal(bad.status, 400);
      assert.equal(JSON.parse(bad.body).code, -400);

      assert.deepEqual([...d.stats.hits], [['langgenius/openai', 2]]);
      assert.deepEqual([...d.stats.misses], [['langgenius/tongyi', 2]]);

      const hook = await httpCall(`${d.url}/e/abc123/some/path`, { method: 'PUT', body: 'x' });
      assert.equal(hook.status, 200);
      assert.equal(JSON.parse(hook.body).hook_id, 'abc123');
      const mgmt = await httpCall(`${d.url}/plugin/tenant-1/management/list`);
      assert.equal(mgmt.status, 200);
      assert.equal(JSON.parse(mgmt.body).code, 0);
      const unknown = await httpCall(`${d.url}/nope`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.headers['x-sim-pod'], 'pod-1');
      d.resetStats();
      assert.equal(d.stats.hits.size, 0);
    },
  );
});

test('restart: refuses while down, then a new process with a new start time relaunches everything from scratch', async () => {
  await withDaemon(
    { plugins: [{ id: 'a/one', launchMs: 100 }, { id: 'a/flaky', launchMs: 10, failures: 1 }] },
    async (d, s) => {
      s.advance(100);
      d.restartPlugin('a/one');
      let m = await scrape(d);
      assert.equal(gauge(m, 'a/one'), 1);
      assert.equal(sampleValue(m, 'plugin_installations_total', { plugin_id: 'a/flaky' }), 1);
      const address = d.address;

      const back = d.restart({ downMs: 5_000 });
      s.advance(1_000);
      await assert.rejects(httpCall(`${d.url}/health/check`), { code: 'ECONNREFUSED' });
      assert.equal(d.snapshot().listening, false);
      s.advance(4_000);
      await back;
      assert.equal(d.address, address);
      m = await scrape(d);
      assert.equal(sampleValue(m, 'process_start_time_seconds'), (START + 5_100) / 1000);
      assert.equal(gauge(m, 'a/one'), 0.5, 'relaunching');
      assert.equal(sampleValue(m, 'plugin_installations_total', { plugin_id: 'a/flaky' }), undefined, 'counters reset');
      assert.equal(sampleValue(m, 'plugin_restarts_total', { plugin_id: 'a/one' }), undefined);
      assert.equal(sampleValue(m, 'active_plugins_total'), undefined);
      // The per-process attempt count restarted too: flaky fails its first attempt again.
      s.advance(10);
      assert.equal(d.snapshot().plugins.find((p) => p.id === 'a/flaky')?.failedLaunches, 1);
      s.advance(100);
      m = await scrape(d);
      assert.equal(gauge(m, 'a/one'), 1);
      assert.equal(gauge(m, 'a/flaky'), 1);

      // A restart without downtime comes straight back.
      await d.restart();
      m = await scrape(d);
      assert.equal(gauge(m, 'a/one'), 0.5);
    },
  );
});

test('install and uninstall at run time', async () => {
  await withDaemon({ plugins: [{ id: 'a/one', launchMs: 10 }], launchConcurrency: 1 }, async (d, s) => {
    const uid = d.install({ id: 'a/two', version: '1.2.3', launchMs: 10 });
    assert.equal(uid, uniqueIdentifierFor('a/two', '1.2.3'));
    let m = await scrape(d);
    assert.equal(gauge(m, 'a/two'), undefined, 'queued behind the limit');
    s.advance(20);
    m = await scrape(d);
    assert.equal(gauge(m, 'a/two'), 1);
    assert.equal(d.uninstall('a/one'), 1);
    m = await scrape(d);
    assert.equal(gauge(m, 'a/one'), 0, 'stopped: the series stays at 0');
    assert.equal(sampleValue(m, 'active_plugins_total', { runtime_type: 'local' }), 1);
    const miss = await httpCall(`${d.url}/plugin/t/dispatch/tool/invoke`, { method: 'POST', headers: { 'x-plugin-id': 'a/one' } });
    assert.equal(miss.status, 404);
    // Storage is shared across restarts: the uninstalled plugin does not come back.
    await d.restart();
    assert.deepEqual(
      d.snapshot().plugins.map((p) => p.id),
      ['a/two'],
    );
  });
});

test('setMode refuse: ECONNREFUSED, then normal again on the same address', async () => {
  await withDaemon({}, async (d) => {
    await d.setMode('refuse');
    await assert.rejects(httpCall(`${d.url}/health/check`), { code: 'ECONNREFUSED' });
    await d.setMode('normal');
    const r = await httpCall(`${d.url}/health/check`);
    assert.equal(r.status, 200);
  });
  // A pod may start out refusing and still have an address to put in a target list.
  const d = new SimDaemon({ name: 'pod-r', scheduler: new ManualScheduler(START) });
  await d.setMode('refuse');
  await d.start();
  try {
    await assert.rejects(httpCall(`${d.url}/health/check`), { code: 'ECONNREFUSED' });
    await d.setMode('normal');
    assert.equal((await httpCall(`${d.url}/health/check`)).status, 200);
  } finally {
    await d.close();
  }
});

test('setMode hang: connections are accepted and never answered, until the mode changes', async () => {
  await withDaemon({ plugins: [{ id: 'a/one', launchMs: 0 }] }, async (d, s) => {
    s.advance(0);
    await d.setMode('hang');
    await assert.rejects(httpCall(`${d.url}/metrics/`, { timeoutMs: 150 }), { code: 'ETIMEDOUT' });
    await assert.rejects(
      httpCall(`${d.url}/plugin/t/dispatch/tool/invoke`, { method: 'POST', headers: { 'x-plugin-id': 'a/one' }, timeoutMs: 150 }),
      { code: 'ETIMEDOUT' },
    );
    await untilOpen(d, 0);
    const pending = httpCall(`${d.url}/health/check`, { timeoutMs: 5000 });
    await untilOpen(d, 1);
    await d.setMode('normal');
    // The held request is dropped, not answered late.
    await assert.rejects(pending, (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET');
    assert.equal((await httpCall(`${d.url}/health/check`)).status, 200);
  });
});

test('setMode slowMs delays the status endpoints only (wall-clock)', async () => {
  await withDaemon({ plugins: [{ id: 'a/one', launchMs: 0 }] }, async (d, s) => {
    s.advance(0);
    await d.setMode({ slowMs: 400 });
    await assert.rejects(httpCall(`${d.url}/health/check`, { timeoutMs: 50 }), { code: 'ETIMEDOUT' });
    const dispatch = await httpCall(`${d.url}/plugin/t/dispatch/tool/invoke`, {
      method: 'POST',
      headers: { 'x-plugin-id': 'a/one' },
      timeoutMs: 2000,
    });
    assert.equal(dispatch.status, 200);
    const slow = await httpCall(`${d.url}/metrics/`, { timeoutMs: 3000 });
    assert.equal(slow.status, 200);
    assert.equal(gauge(parseExposition(slow.body), 'a/one'), 1);
  });
});

test('setMode garbage: status endpoints answer 200 with neither JSON nor Prometheus text', async () => {
  await withDaemon({ readyCheck: true }, async (d) => {
    await d.setMode('garbage');
    for (const path of ['/metrics/', '/health/check', '/ready/check']) {
      const r = await httpCall(`${d.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.throws(() => JSON.parse(r.body), SyntaxError);
      assert.ok(r.body.includes('\u0000'), 'binary junk');
      assert.equal(r.body.includes('plugin_runtime_status{'), false);
    }
  });
});

test('setMode oversizeBytes: /metrics/ answers a valid-looking body of exactly n bytes', async () => {
  await withDaemon({ plugins: [{ id: 'a/one', launchMs: 0 }] }, async (d, s) => {
    s.advance(0);
    const n = 3 * 1024 * 1024 + 7;
    await d.setMode({ oversizeBytes: n });
    const r = await httpCall(`${d.url}/metrics/`, { timeoutMs: 5000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(n));
    assert.equal(r.bytes, n);
    assert.match(r.body, /^# HELP go_gc_duration_seconds /);
    assert.equal(gauge(parseExposition(r.body.slice(0, r.body.lastIndexOf('\n') + 1)), 'a/one'), 1);
    const small = 100;
    await d.setMode({ oversizeBytes: small });
    const t = await httpCall(`${d.url}/metrics/`);
    assert.equal(t.bytes, small);
    assert.equal((await httpCall(`${d.url}/health/check`)).status, 200);
  });
});

test('close() returns promptly with a hanging connection and a pending restart', async () => {
  const s = new ManualScheduler(START);
  const d = new SimDaemon({ name: 'pod-9', scheduler: s });
  await d.start();
  await d.setMode('hang');
  const hanging = httpCall(`${d.url}/health/check`, { timeoutMs: 5000 });
  await untilOpen(d, 1);
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), 3000);
  });
  const closed = await Promise.race([d.close().then(() => 'closed' as const), bound]);
  clearTimeout(timer);
  assert.equal(closed, 'closed');
  await assert.rejects(hanging);
  // Idempotent.
  await d.close();

  const d2 = new SimDaemon({ name: 'pod-10', scheduler: s });
  await d2.start();
  const restarting = d2.restart({ downMs: 60_000 });
  await d2.close();
  await restarting;
  assert.equal(d2.snapshot().listening, false);
});

test('bad options fail loudly at construction', () => {
  assert.throws(() => new SimDaemon({ name: '' }), { code: 'config_invalid' });
  assert.throws(() => new SimDaemon({ name: 'p', plugins: [{ id: 'Bad Id', launchMs: 1 }] }), { code: 'config_invalid' });
  assert.throws(() => new SimDaemon({ name: 'p', plugins: [{ id: 'a/b', launchMs: -1 }] }), { code: 'config_invalid' });
  assert.throws(() => new SimDaemon({ name: 'p', plugins: [{ id: 'a/b', version: 'v1', launchMs: 1 }] }), { code: 'config_invalid' });
  assert.throws(() => new SimDaemon({ name: 'p', launchConcurrency: 0 }), { code: 'config_invalid' });
  assert.throws(() => new SimDaemon({ name: 'p', timeScale: -1 }), { code: 'config_invalid' });
});
