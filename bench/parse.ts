/**
 * parse: parseExposition on the body a large daemon serves, taken from a real
 * SimDaemon's `/metrics/` (the sim writes Go client_golang's format: Go runtime
 * and process families, HTTP histograms, then the plugin families).
 */
import { parseExposition } from '../src/status/prometheus.js';
import { SimDaemon, type PluginSpec } from '../src/sim/index.js';
import { ManualScheduler } from '../test/support/manual-scheduler.js';
import type { BenchContext } from './context.js';
import { micro } from './lib/micro.js';
import { sig } from './lib/report.js';

/**
 * A daemon with `plugins` installed, all launching at once, stopped mid-way:
 * most running, some launching, some retrying or given up; some restarts.
 */
async function exposition(plugins: number): Promise<string> {
  const sched = new ManualScheduler();
  const specs: PluginSpec[] = [];
  for (let j = 0; j < plugins; j++) {
    specs.push({
      id: `author-${j % 41}/plugin-${j}`,
      version: '1.2.3',
      launchMs: 1000 + ((j * 7919) % 9000),
      ...(j % 50 === 0 ? { failures: 'always' as const } : j % 23 === 0 ? { failures: 2 } : {}),
    });
  }
  const pod = new SimDaemon({ name: 'pod-1', plugins: specs, scheduler: sched, launchConcurrency: plugins });
  await pod.start();
  try {
    sched.advance(8_000);
    const running = pod.snapshot().plugins.filter((p) => p.phase === 'running');
    for (const p of running.slice(0, Math.ceil(running.length / 10))) pod.restartPlugin(p.id);
    // A few scrapes and dispatches so the HTTP families carry series too.
    for (let i = 0; i < 3; i++) await (await fetch(`${pod.url}/health/check`)).text();
    await (await fetch(`${pod.url}/metrics/`)).text();
    const res = await fetch(`${pod.url}/metrics/`);
    return await res.text();
  } finally {
    await pod.close();
  }
}

export async function benchParse(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const opts = ctx.quick ? { warmupMs: 30, roundMs: 30, rounds: 3 } : { warmupMs: 300, roundMs: 200, rounds: 9 };
  report.section('parse', 'parseExposition on realistic daemon expositions', [
    "bodies: a SimDaemon's own /metrics/ (Go runtime + process + HTTP histogram families, then plugin_runtime_status,",
    'plugin_installations_total, plugin_restarts_total, active_plugins_total) with 200 and 2000 plugins installed;',
    `timing: ${opts.warmupMs} ms warm-up, ${opts.rounds} rounds of ~${opts.roundMs} ms; figure = median; max-plugins 2000 (the default).`,
  ]);
  for (const plugins of ctx.quick ? [2000] : [200, 2000]) {
    const text = await exposition(plugins);
    const bytes = Buffer.byteLength(text);
    const lines = text.split('\n').length - 1;
    const parsed = parseExposition(text, 2000);
    if (!parsed.ok) {
      report.problem('parse', `the ${plugins}-plugin exposition did not parse: ${parsed.error.code} ${parsed.error.message}`);
      continue;
    }
    const seen = parsed.data.runtimeStatus.size;
    report.note(`${plugins} plugins: ${sig(bytes / 1024)} KiB, ${lines} lines; parsed ${seen} runtime series, ${parsed.data.failedLaunches.size} with failed launches`);
    if (seen !== plugins) report.problem('parse', `expected ${plugins} plugin_runtime_status series, parsed ${seen}`);
    const r = micro((n) => {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const p = parseExposition(text, 2000);
        acc += p.ok ? p.data.runtimeStatus.size : -1;
      }
      return acc;
    }, opts);
    const msPerParse = r.median / 1e6;
    report.figure('parse', `${plugins} plugins`, sig(msPerParse), 'ms/parse', `${sig(bytes / 1e6 / (msPerParse / 1000))} MB/s; ${sig(bytes / 1024)} KiB body; spread ${sig(r.min / 1e6)}–${sig(r.max / 1e6)} ms`);
  }
}
