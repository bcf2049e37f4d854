/**
 * The probe's Prometheus metrics, on its own registry. Readiness and plugin
 * counts are computed at scrape time from the current verdict; labels come
 * only from closed sets (verdict reasons, plugin states, sources, error codes).
 */
import client from 'prom-client';
import { PollCounter } from '../observe/metrics.js';
import type { PodReport } from '../status/types.js';
import type { PodView } from '../fleet/types.js';
import { VERDICT_REASONS, type Latch, type Verdict } from './policy.js';

export interface ProbeMetricsSource {
  readonly verdict: () => Verdict;
  readonly view: () => PodView | undefined;
  readonly latch: () => Latch | undefined;
  readonly flips: { readonly ready: number; readonly unready: number };
}

export class ProbeMetrics {
  readonly registry = new client.Registry();
  private readonly polls: PollCounter;

  constructor(src: ProbeMetricsSource) {
    const reg = [this.registry];
    this.polls = new PollCounter(this.registry);
    new client.Gauge({
      name: 'plugin_gate_probe_ready',
      help: '1 while /readyz answers 200.',
      registers: reg,
      collect() {
        this.set(src.verdict().ready ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_probe_reason',
      help: 'The reason of the current verdict: 1 on the current one, 0 on the others.',
      labelNames: ['reason'] as const,
      registers: reg,
      collect() {
        const now = src.verdict().reason;
        for (const r of VERDICT_REASONS) this.labels(r).set(r === now ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_probe_latched',
      help: '1 while readiness is latched for the current daemon process.',
      registers: reg,
      collect() {
        this.set(src.latch() === undefined ? 0 : 1);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_probe_daemon_live',
      help: '1 while the daemon answers with fresh plugin data.',
      registers: reg,
      collect() {
        this.set(src.view()?.state === 'live' ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'plugin_gate_probe_plugins',
      help: 'Plugins the daemon reports, by state on this pod.',
      labelNames: ['state'] as const,
      registers: reg,
      collect() {
        const n = { ready: 0, starting: 0, failed: 0, absent: 0 };
        for (const p of src.view()?.plugins.values() ?? []) n[p.state]++;
        for (const [state, v] of Object.entries(n)) this.labels(state).set(v);
      },
    });
    new client.Counter({
      name: 'plugin_gate_probe_flips_total',
      help: 'Readiness changes, by the state entered.',
      labelNames: ['to'] as const,
      registers: reg,
      collect() {
        this.reset();
        this.labels('ready').inc(src.flips.ready);
        this.labels('unready').inc(src.flips.unready);
      },
    });
    client.collectDefaultMetrics({ register: this.registry, prefix: 'plugin_gate_probe_' });
  }

  report(r: PodReport): void {
    this.polls.report(r);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
