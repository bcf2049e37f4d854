#!/usr/bin/env node
/**
 * A cheap stand-in for a large daemon fleet, for the polling-scale benchmark:
 * N loopback HTTP servers in one process answering `/metrics/` and
 * `/health/check` as a daemon does, with none of the simulator's lifecycle
 * machinery, so that 500 pods cost the fleet process little and the figures
 * are the gate's.
 *
 *   node dist/bench/scale-fleet-main.js --pods 500 --plugins 200 --cold-ms 20000
 *
 * Every pod starts with the process (a whole-fleet cold start): plugins launch
 * two at a time, in order, so plugin j has no series until it is taken from
 * the queue, is launching (0.5) for one launch slot, then running (1); the
 * last launch ends at --cold-ms. Pods are offset from each other by a fraction
 * of a slot. Each `/metrics/` body also carries the Go runtime, process and
 * HTTP families a real daemon serves, with values that move on every scrape.
 * First stdout line: `targets=…`; `settled` once every plugin on every pod runs.
 */
import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';
import { ExpositionWriter, DEFAULT_BUCKETS } from '../src/sim/exposition.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '50' },
    plugins: { type: 'string', default: '200' },
    'cold-ms': { type: 'string', default: '10000' },
    'pad-first-pod': { type: 'string', default: '0' },
  },
  strict: true,
});
const pods = Number(values.pods);
const plugins = Number(values.plugins);
const coldMs = Math.max(1, Number(values['cold-ms']));
/** Bytes of extra (unwanted) series the first pod adds to every /metrics/ answer: an oversized body. */
const padBytes = Number(values['pad-first-pod']);
const padding = ((): string => {
  if (padBytes <= 0) return '';
  const lines = ['# HELP go_padding_total Padding.', '# TYPE go_padding_total counter'];
  let size = 0;
  for (let i = 0; size < padBytes; i++) {
    const line = `go_padding_total{shard="${i}",path="/a/long/label/value/that/takes/room/${i}"} ${i}`;
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
})();
const CONCURRENCY = 2;
/** One launch slot: `plugins / CONCURRENCY` slots fill the cold start. */
const slotMs = coldMs / Math.ceil(plugins / CONCURRENCY);
const startedAt = Date.now();
/**
 * The daemons' process start time, as reported: a real cold start of 200
 * plugins two at a time takes many minutes, compressed here into --cold-ms, so
 * the processes claim to be older than they are. Their launching plugins keep
 * them in start-up during the cold start; once settled they are past the
 * gate's startup-grace (60 s), as a real fleet at that point would be.
 */
const reportedStartMs = startedAt - 50_000;
const ids = Array.from({ length: plugins }, (_, j) => `bench-${j % 13}/plugin-${j}`);

/** The Go runtime, process and HTTP families, with `@n@` where a per-scrape number goes. */
function preamble(): string[] {
  const w = new ExpositionWriter();
  w.family('go_gc_duration_seconds', 'A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.', 'summary');
  for (const q of ['0', '0.25', '0.5', '0.75', '1']) w.sample('go_gc_duration_seconds', [['quantile', q]], 4.1e-5 + Number(q) * 1e-4);
  w.sample('go_gc_duration_seconds_sum', [], 0.0123).sample('go_gc_duration_seconds_count', [], 4242);
  w.family('go_goroutines', 'Number of goroutines that currently exist.', 'gauge').sample('go_goroutines', [], 4242);
  w.family('go_info', 'Information about the Go environment.', 'gauge').sample('go_info', [['version', 'go1.23.4']], 1);
  for (const s of ['alloc_bytes', 'alloc_bytes_total', 'buck_hash_sys_bytes', 'frees_total', 'gc_sys_bytes', 'heap_alloc_bytes', 'heap_idle_bytes', 'heap_inuse_bytes', 'heap_objects', 'heap_released_bytes', 'heap_sys_bytes', 'mallocs_total', 'next_gc_bytes', 'sys_bytes']) {
    w.family(`go_memstats_${s}`, `Go memory statistic ${s}.`, s.endsWith('total') ? 'counter' : 'gauge').sample(`go_memstats_${s}`, [], 4242);
  }
  w.family('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter').sample('process_cpu_seconds_total', [], 4242);
  w.family('process_open_fds', 'Number of open file descriptors.', 'gauge').sample('process_open_fds', [], 4242);
  w.family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge').sample('process_resident_memory_bytes', [], 4242);
  w.family('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge').sample('process_start_time_seconds', [], reportedStartMs / 1000);
  w.family('plugin_http_request_duration_seconds', 'HTTP request latency in seconds', 'histogram');
  for (const endpoint of ['/health/check', '/metrics/', '/plugin/:tenant_id/dispatch/tool/invoke']) {
    w.histogram('plugin_http_request_duration_seconds', [['endpoint', endpoint], ['method', 'GET']], DEFAULT_BUCKETS, [4242, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4242);
  }
  w.family('plugin_http_requests_total', 'Total number of HTTP requests', 'counter');
  w.sample('plugin_http_requests_total', [['method', 'GET'], ['endpoint', '/health/check'], ['status', '200']], 4242);
  w.sample('plugin_http_requests_total', [['method', 'GET'], ['endpoint', '/metrics/'], ['status', '200']], 4242);
  return w.toString().split('4242');
}
const parts = preamble();

function goFamilies(scrapes: number): string {
  let out = parts[0]!;
  for (let k = 1; k < parts.length; k++) out += String(scrapes * 7 + k) + parts[k]!;
  return out;
}

interface Pod {
  readonly server: Server;
  readonly offsetMs: number;
  scrapes: number;
  /** Plugin families as last rendered, and the launch step they were rendered for. */
  step: number;
  plugins: string;
}

/** Launch step at `t`: plugins [0, 2·step) have left the queue. */
function stepAt(pod: Pod, t: number): number {
  return Math.max(0, Math.floor((t - startedAt - pod.offsetMs) / slotMs) + 1);
}

function pluginFamilies(step: number): string {
  const started = Math.min(plugins, step * CONCURRENCY);
  const running = Math.min(plugins, Math.max(0, (step - 1) * CONCURRENCY));
  const w = new ExpositionWriter();
  if (started > 0) {
    w.family('plugin_runtime_status', 'Current status of plugin runtime (1=active, 0.5=launching, 0=stopped)', 'gauge');
    for (let j = 0; j < started; j++) w.sample('plugin_runtime_status', [['plugin_id', ids[j]!], ['runtime_type', 'local']], j < running ? 1 : 0.5);
    w.family('plugin_restarts_total', 'Total number of plugin restarts', 'counter');
    for (let j = 0; j < started; j += 11) w.sample('plugin_restarts_total', [['plugin_id', ids[j]!], ['runtime_type', 'local']], 0);
  }
  w.family('active_plugins_total', 'Total number of active plugins', 'gauge').sample('active_plugins_total', [['runtime_type', 'local']], running);
  return w.toString();
}

const health = JSON.stringify({ status: 'ok', pool_status: { free: 10, busy: 0, total: 10 }, version: '0.5.7', build_time: '2026-01-01T00:00:00Z', platform: 'local', active_requests: 0, active_dispatch_requests: 0 });
let settledSaid = false;
let unsettled = pods;
const finalStep = Math.ceil(plugins / CONCURRENCY) + 1;

function startPod(i: number): Promise<Pod> {
  const pod: Pod = { server: createServer(), offsetMs: ((i * 0.618033988749895) % 1) * slotMs, scrapes: 0, step: -1, plugins: '' };
  pod.server.keepAliveTimeout = 60_000;
  pod.server.on('request', (req, res) => {
    if (req.url === '/metrics/') {
      const step = Math.min(finalStep, stepAt(pod, Date.now()));
      if (step !== pod.step) {
        pod.step = step;
        pod.plugins = pluginFamilies(step);
        if (step === finalStep && --unsettled === 0 && !settledSaid) {
          settledSaid = true;
          process.stdout.write('settled\n');
        }
      }
      const body = goFamilies(++pod.scrapes) + (pod === all[0] ? padding : '') + pod.plugins;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else if (req.url === '/health/check') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(health) });
      res.end(health);
    } else if (req.url === '/metrics') {
      res.writeHead(301, { location: '/metrics/', 'content-length': 0 });
      res.end();
    } else {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    pod.server.once('error', reject);
    pod.server.listen(0, '127.0.0.1', () => resolve(pod));
  });
}

const all: Pod[] = [];
for (let i = 0; i < pods; i++) all.push(await startPod(i));
process.stdout.write(`targets=${all.map((p) => `127.0.0.1:${(p.server.address() as { port: number }).port}`).join(',')}\n`);

const stop = (): void => {
  for (const p of all) p.server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000).unref();
