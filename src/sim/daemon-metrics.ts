/**
 * The simulated daemon's `/metrics/` body: the Go runtime and process
 * families a real daemon's registry holds, its HTTP request metrics, and the
 * plugin families its notifier keeps (from the plugin lifecycle). One instance
 * is one process lifetime: a pod restart starts a new one.
 */
import { DEFAULT_BUCKETS, ExpositionWriter, type Labels } from './exposition.js';
import type { PluginLifecycle } from './lifecycle.js';
import { ROUTE_LABEL, type Route } from './routes.js';

const GO_VERSION = 'go1.23.4';

/** What the exposition reads of the process at the moment of a scrape. */
export interface ProcessView {
  readonly lifecycle: PluginLifecycle | undefined;
  /** Scheduler ms. */
  readonly now: number;
  readonly activeRequests: number;
  readonly openSockets: number;
}

interface HttpSeries {
  readonly method: string;
  readonly route: Route;
  count: number;
  sum: number;
  readonly buckets: number[];
}

export class DaemonMetrics {
  /** Scrapes of `/metrics/` in this process lifetime. */
  private scrapes = 0;
  private readonly httpCounts = new Map<string, { method: string; route: Route; status: number; n: number }>();
  private readonly httpDurations = new Map<string, HttpSeries>();

  /** A scrape: counted, then rendered. */
  scrape(at: ProcessView): string {
    this.scrapes++;
    return this.render(at);
  }

  /** One answered request, into `plugin_http_requests_total` and its latency histogram. */
  record(method: string, route: Route, status: number, seconds: number): void {
    const countKey = `${method} ${route} ${status}`;
    const c = this.httpCounts.get(countKey);
    if (c !== undefined) c.n++;
    else this.httpCounts.set(countKey, { method, route, status, n: 1 });
    const durKey = `${method} ${route}`;
    let d = this.httpDurations.get(durKey);
    if (d === undefined) {
      d = { method, route, count: 0, sum: 0, buckets: new Array<number>(DEFAULT_BUCKETS.length + 1).fill(0) };
      this.httpDurations.set(durKey, d);
    }
    d.count++;
    d.sum += seconds;
    let i = DEFAULT_BUCKETS.findIndex((b) => seconds <= b);
    if (i < 0) i = DEFAULT_BUCKETS.length;
    d.buckets[i] = (d.buckets[i] ?? 0) + 1;
  }

  /**
   * The exposition: Go runtime and process families first, then HTTP, then the
   * plugin families, as a real daemon's registry holds them. Label order varies
   * between series on purpose (parsers must not depend on it); families without
   * series are left out, as client_golang does for vectors with no children.
   */
  private render(at: ProcessView): string {
    const lc = at.lifecycle;
    const now = at.now;
    const startedAt = lc?.startedAt ?? now;
    const uptime = Math.max(0, (now - startedAt) / 1000);
    const load = lc?.load() ?? { launching: 0, queued: 0, running: 0 };
    const n = this.scrapes;
    const w = new ExpositionWriter();

    w.family('go_gc_duration_seconds', 'A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.', 'summary');
    const gcs = 12 + Math.floor(uptime / 7) + n;
    w.sample('go_gc_duration_seconds', [['quantile', '0']], 2.3041e-5)
      .sample('go_gc_duration_seconds', [['quantile', '0.25']], 4.1208e-5)
      .sample('go_gc_duration_seconds', [['quantile', '0.5']], 5.6125e-5)
      .sample('go_gc_duration_seconds', [['quantile', '0.75']], 8.9e-5)
      .sample('go_gc_duration_seconds', [['quantile', '1']], 0.000734291)
      .sample('go_gc_duration_seconds_sum', [], gcs * 6.1e-5)
      .sample('go_gc_duration_seconds_count', [], gcs);
    w.family('go_goroutines', 'Number of goroutines that currently exist.', 'gauge')
      .sample('go_goroutines', [], 38 + at.activeRequests + 3 * load.launching + 4 * load.running);
    w.family('go_info', 'Information about the Go environment.', 'gauge').sample('go_info', [['version', GO_VERSION]], 1);
    const alloc = 2_863_936 + load.running * 1_245_184 + (n % 17) * 65_536;
    const memstats: Array<[string, string, 'gauge' | 'counter', number]> = [
      ['alloc_bytes', 'Number of bytes allocated in heap and currently in use.', 'gauge', alloc],
      ['alloc_bytes_total', 'Total number of bytes allocated in heap until now, even if released already.', 'counter', alloc * (3 + n)],
      ['buck_hash_sys_bytes', 'Number of bytes used by the profiling bucket hash table.', 'gauge', 1_459_843],
      ['frees_total', 'Total number of heap objects frees.', 'counter', 41_822 + 311 * n],
      ['gc_sys_bytes', 'Number of bytes used for garbage collection system metadata.', 'gauge', 3_544_832],
      ['heap_alloc_bytes', 'Number of heap bytes allocated and currently in use.', 'gauge', alloc],
      ['heap_idle_bytes', 'Number of heap bytes waiting to be used.', 'gauge', 5_365_760],
      ['heap_inuse_bytes', 'Number of heap bytes that are in use.', 'gauge', alloc + 1_171_456],
      ['heap_objects', 'Number of currently allocated objects.', 'gauge', 18_503 + 977 * load.running],
      ['heap_released_bytes', 'Number of heap bytes released to OS.', 'gauge', 3_022_848],
      ['heap_sys_bytes', 'Number of heap bytes obtained from system.', 'gauge', 11_534_336],
      ['last_gc_time_seconds', 'Number of seconds since 1970 of last garbage collection.', 'gauge', (startedAt + uptime * 900) / 1000],
      ['mallocs_total', 'Total number of heap objects allocated.', 'counter', 60_325 + 402 * n],
      ['mcache_inuse_bytes', 'Number of bytes in use by mcache structures.', 'gauge', 9_600],
      ['mspan_inuse_bytes', 'Number of bytes in use by mspan structures.', 'gauge', 181_280],
      ['next_gc_bytes', 'Number of heap bytes when next garbage collection will take place.', 'gauge', 6_291_456],
      ['stack_inuse_bytes', 'Number of bytes obtained from system for stack allocator in non-CGO environments.', 'gauge', 1_146_880],
      ['sys_bytes', 'Number of bytes obtained from system.', 'gauge', 20_272_392],
    ];
    for (const [suffix, help, type, value] of memstats) {
      w.family(`go_memstats_${suffix}`, help, type).sample(`go_memstats_${suffix}`, [], value);
    }
    w.family('go_threads', 'Number of OS threads created.', 'gauge').sample('go_threads', [], 9);

    w.family('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter')
      .sample('process_cpu_seconds_total', [], Math.round(uptime * 2) / 100);
    w.family('process_max_fds', 'Maximum number of open file descriptors.', 'gauge').sample('process_max_fds', [], 1_048_576);
    w.family('process_network_receive_bytes_total', 'Number of bytes received by the process over the network.', 'counter')
      .sample('process_network_receive_bytes_total', [], 48_211 + 1_310 * n);
    w.family('process_network_transmit_bytes_total', 'Number of bytes sent by the process over the network.', 'counter')
      .sample('process_network_transmit_bytes_total', [], 95_020 + 6_733 * n);
    w.family('process_open_fds', 'Number of open file descriptors.', 'gauge')
      .sample('process_open_fds', [], 21 + at.openSockets + 2 * load.running);
    w.family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge')
      .sample('process_resident_memory_bytes', [], 45_355_008 + load.running * 2_097_152);
    w.family('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge')
      .sample('process_start_time_seconds', [], startedAt / 1000);
    w.family('process_virtual_memory_bytes', 'Virtual memory size in bytes.', 'gauge')
      .sample('process_virtual_memory_bytes', [], 1_316_388_864);
    // Go reports "no limit" as the largest uint64, which prints as 1.8446744073709552e+19.
    w.family('process_virtual_memory_max_bytes', 'Maximum amount of virtual memory available in bytes.', 'gauge')
      .sample('process_virtual_memory_max_bytes', [], 18_446_744_073_709_551_615);

    w.family('plugin_http_request_duration_seconds', 'HTTP request latency in seconds', 'histogram');
    // A fixed series whose label value needs every escape the format has: quotes, backslash, comma, newline.
    w.histogram(
      'plugin_http_request_duration_seconds',
      [['method', 'GET'], ['endpoint', '/e/:hook_id/*path?q="a,b"\\c\nd']],
      DEFAULT_BUCKETS,
      [3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      0.0173,
    );
    for (const d of this.httpDurations.values()) {
      w.histogram('plugin_http_request_duration_seconds', [['endpoint', ROUTE_LABEL[d.route]], ['method', d.method]], DEFAULT_BUCKETS, d.buckets, d.sum);
    }
    w.family('plugin_http_requests_total', 'Total number of HTTP requests', 'counter');
    w.sample('plugin_http_requests_total', [['status', '200'], ['method', 'GET'], ['endpoint', '/e/:hook_id/*path?q="a,b"\\c\nd']], 4);
    for (const c of this.httpCounts.values()) {
      w.sample('plugin_http_requests_total', [['method', c.method], ['endpoint', ROUTE_LABEL[c.route]], ['status', String(c.status)]], c.n);
    }

    w.family('promhttp_metric_handler_requests_in_flight', 'Current number of scrapes being served.', 'gauge')
      .sample('promhttp_metric_handler_requests_in_flight', [], 1);
    w.family('promhttp_metric_handler_requests_total', 'Total number of scrapes by HTTP status code.', 'counter')
      .sample('promhttp_metric_handler_requests_total', [['code', '200']], Math.max(0, n - 1))
      .sample('promhttp_metric_handler_requests_total', [['code', '500']], 0)
      .sample('promhttp_metric_handler_requests_total', [['code', '503']], 0);

    if (lc !== undefined) this.pluginFamilies(w, lc);
    return w.toString();
  }

  private pluginFamilies(w: ExpositionWriter, lc: PluginLifecycle): void {
    const s = lc.series();
    const flip = (i: number, a: readonly [string, string], b: readonly [string, string]): Labels => (i % 2 === 0 ? [a, b] : [b, a]);
    if (s.runtimeStatus.size > 0) {
      w.family('plugin_runtime_status', 'Current status of plugin runtime (1=active, 0.5=launching, 0=stopped)', 'gauge');
      let i = 0;
      for (const [id, v] of s.runtimeStatus) {
        w.sample('plugin_runtime_status', flip(i++, ['plugin_id', id], ['runtime_type', 'local']), v);
      }
    }
    if (s.failedLaunches.size > 0) {
      w.family('plugin_installations_total', 'Total number of plugin installations', 'counter');
      let i = 1;
      for (const [id, v] of s.failedLaunches) {
        w.sample('plugin_installations_total', flip(i++, ['plugin_id', id], ['status', 'failed']), v);
      }
    }
    if (s.restarts.size > 0) {
      w.family('plugin_restarts_total', 'Total number of plugin restarts', 'counter');
      let i = 1;
      for (const [id, v] of s.restarts) {
        w.sample('plugin_restarts_total', flip(i++, ['plugin_id', id], ['runtime_type', 'local']), v);
      }
    }
    if (s.active !== undefined) {
      w.family('active_plugins_total', 'Total number of active plugins', 'gauge')
        .sample('active_plugins_total', [['runtime_type', 'local']], s.active);
    }
  }
}
