/**
 * Expositions shaped like a real plugin-daemon's `/metrics/`: Go runtime and
 * process families, promhttp counters, HTTP histograms, and the plugin
 * families, in the order and spelling the Go client writes them.
 */
export interface PluginSeries {
  readonly id: string;
  /** plugin_runtime_status value; undefined = no series (queued behind the launch limit). */
  readonly status?: number | undefined;
  readonly runtime?: 'local' | 'remote';
  readonly failed?: number;
  readonly restarts?: number;
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const GO_RUNTIME = `# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.4e-05
go_gc_duration_seconds{quantile="0.25"} 4.1e-05
go_gc_duration_seconds{quantile="0.5"} 5.6e-05
go_gc_duration_seconds{quantile="0.75"} 8.7e-05
go_gc_duration_seconds{quantile="1"} 0.000733
go_gc_duration_seconds_sum 0.012
go_gc_duration_seconds_count 173
# HELP go_gc_gogc_percent Heap size target percentage configured by the user, otherwise 100.
# TYPE go_gc_gogc_percent gauge
go_gc_gogc_percent 100
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 187
# HELP go_info Information about the Go environment.
# TYPE go_info gauge
go_info{version="go1.23.4"} 1
# HELP go_memstats_alloc_bytes Number of bytes allocated in heap and currently in use.
# TYPE go_memstats_alloc_bytes gauge
go_memstats_alloc_bytes 2.3855864e+07
# HELP go_memstats_heap_objects Number of currently allocated objects.
# TYPE go_memstats_heap_objects gauge
go_memstats_heap_objects 142871
# HELP go_sched_gomaxprocs_threads The current runtime.GOMAXPROCS setting.
# TYPE go_sched_gomaxprocs_threads gauge
go_sched_gomaxprocs_threads 4
# HELP go_threads Number of OS threads created.
# TYPE go_threads gauge
go_threads 14
`;

const HTTP_FAMILIES = `# HELP http_request_duration_seconds Duration of HTTP requests.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="POST",path="/plugin/:tenant_id/dispatch/tool/invoke",status="200",le="0.005"} 0
http_request_duration_seconds_bucket{method="POST",path="/plugin/:tenant_id/dispatch/tool/invoke",status="200",le="0.1"} 12
http_request_duration_seconds_bucket{method="POST",path="/plugin/:tenant_id/dispatch/tool/invoke",status="200",le="1"} 40
http_request_duration_seconds_bucket{method="POST",path="/plugin/:tenant_id/dispatch/tool/invoke",status="200",le="+Inf"} 41
http_request_duration_seconds_sum{method="POST",path="/plugin/:tenant_id/dispatch/tool/invoke",status="200"} 13.2
http_request_duration_seconds_count{method="POST",path="/plugin/:tenant_id/dispatch/tool/invoke",status="200"} 41
# HELP http_requests_in_flight Requests being served, with a label full of escapes.
# TYPE http_requests_in_flight gauge
http_requests_in_flight{note="say \\"hi\\"\\\\ then\\nbye"} 0
`;

export function daemonExposition(
  plugins: readonly PluginSeries[],
  opts: { startSeconds?: number; crlf?: boolean; trailingNewline?: boolean; timestamps?: boolean } = {},
): string {
  const ts = opts.timestamps === true ? ' 1767225600000' : '';
  const parts: string[] = [GO_RUNTIME, HTTP_FAMILIES];
  parts.push('# HELP active_plugins_total Number of active plugins\n# TYPE active_plugins_total gauge\n');
  parts.push(`active_plugins_total{runtime_type="local"} ${plugins.filter((p) => p.status === 1).length}\n`);
  parts.push('# HELP plugin_installations_total Plugin installation attempts\n# TYPE plugin_installations_total counter\n');
  for (const p of plugins) {
    if (p.failed !== undefined) parts.push(`plugin_installations_total{plugin_id="${esc(p.id)}",status="failed"} ${num(p.failed)}${ts}\n`);
    if (p.status === 1) parts.push(`plugin_installations_total{plugin_id="${esc(p.id)}",status="success"} 1${ts}\n`);
  }
  parts.push('# HELP plugin_restarts_total Plugin restarts\n# TYPE plugin_restarts_total counter\n');
  for (const p of plugins) {
    if (p.restarts !== undefined) parts.push(`plugin_restarts_total{plugin_id="${esc(p.id)}",runtime_type="${p.runtime ?? 'local'}"} ${num(p.restarts)}${ts}\n`);
  }
  parts.push('# HELP plugin_runtime_status Plugin runtime status (1 running, 0.5 launching, 0 failed or stopped)\n# TYPE plugin_runtime_status gauge\n');
  for (const p of plugins) {
    if (p.status !== undefined) parts.push(`plugin_runtime_status{plugin_id="${esc(p.id)}",runtime_type="${p.runtime ?? 'local'}"} ${num(p.status)}${ts}\n`);
  }
  parts.push(
    '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 41.27\n',
    '# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds 61\n',
    '# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.0212e+08\n',
    `# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ${opts.startSeconds ?? 1767225500.12}\n`,
    '# HELP promhttp_metric_handler_requests_total Total number of scrapes by HTTP status code.\n# TYPE promhttp_metric_handler_requests_total counter\npromhttp_metric_handler_requests_total{code="200"} 12\npromhttp_metric_handler_requests_total{code="500"} 0\npromhttp_metric_handler_requests_total{code="503"} 0\n',
  );
  let text = parts.join('');
  if (opts.trailingNewline === false) text = text.replace(/\n$/, '');
  if (opts.crlf === true) text = text.replace(/\n/g, '\r\n');
  return text;
}

/** A valid exposition without any plugin family: a daemon before 0.5.7 with Prometheus on. */
export function legacyExposition(): string {
  return GO_RUNTIME + HTTP_FAMILIES;
}
