/** One poll of one pod: the configured sources read concurrently, folded into a PodReport. */
import type { Clock } from '../core/clock.js';
import type { Config } from '../config/config.js';
import type { PodReport, SourceName } from './types.js';
import type { StatusHttp } from './http.js';
import { readMetrics } from './metrics.js';
import { readHealth } from './health.js';
import { readReady } from './ready.js';
import type { ReadOptions } from './source.js';
import type { ExpositionMemo } from './prometheus.js';

export interface ReadPodOptions extends ReadOptions {
  /** Stamps `PodReport.at`. */
  readonly clock: Clock;
  /** What earlier polls learned of each pod; without it every source is read every time. */
  readonly memory?: PodMemory;
}

/** What the reader keeps of one pod between polls. */
interface PodNote {
  /** The last good metrics answer: an unchanged one is handed on as the same object. */
  memo: ExpositionMemo | undefined;
  /** When health-check last answered, and the process start time metrics gave then. */
  healthAt: number | undefined;
  healthStartMs: number | undefined;
  seenAt: number;
}

/** Failures after which the pod may still answer another path: health-check is then read to tell. */
const ANSWERED: ReadonlySet<string> = new Set(['status_http_error', 'status_unparseable', 'status_too_large', 'status_timeout']);
/** Notes of pods not read for this long are dropped (pods gone from discovery). */
const FORGET_MS = 10 * 60_000;

/**
 * Per-pod memory of the status readers: the last metrics answer, and when
 * health-check last answered. health-check carries only the daemon's version
 * and platform, so once it has answered it is read again only every
 * `healthIntervalMs`, when the process changed (a new start time), or when
 * metrics failed in a way that leaves the pod possibly answering (then it
 * tells reachable from not, as it always did).
 */
export class PodMemory {
  private readonly notes = new Map<string, PodNote>();
  private reads = 0;

  constructor(private readonly healthIntervalMs: number) {}

  note(address: string, now: number): PodNote {
    if (++this.reads % 1024 === 0) {
      for (const [a, n] of this.notes) if (now - n.seenAt > FORGET_MS) this.notes.delete(a);
    }
    let n = this.notes.get(address);
    if (n === undefined) this.notes.set(address, (n = { memo: undefined, healthAt: undefined, healthStartMs: undefined, seenAt: now }));
    n.seenAt = now;
    return n;
  }

  healthDue(n: PodNote, now: number): boolean {
    return n.healthAt === undefined || this.healthIntervalMs <= 0 || now - n.healthAt >= this.healthIntervalMs;
  }

  /** Pods remembered (tests). */
  get size(): number {
    return this.notes.size;
  }
}

/** Reads `sources` of the pod at `address` concurrently. Never rejects: failures are inside the report. */
export async function readPod(address: string, sources: readonly SourceName[], opts: ReadPodOptions): Promise<PodReport> {
  const memory = opts.memory;
  const note = memory?.note(address, opts.clock.now());
  const withMetrics = sources.includes('metrics');
  const withHealth = sources.includes('health-check');
  // Without metrics, health-check is the pod's only sign of life: read every time. A pod's first
  // read asks both at once (a cold start wants the answer soon); the periodic re-read waits for
  // metrics, so that it goes over the same kept-alive connection instead of opening a second one
  // once a minute per pod, which then idles out and is opened again the next minute.
  const healthFirst = withHealth && (note === undefined || !withMetrics || note.healthAt === undefined);
  const healthDue = withHealth && !healthFirst && memory!.healthDue(note!, opts.clock.now());
  const [metrics, firstHealth, ready] = await Promise.all([
    withMetrics ? readMetrics(address, opts, note) : undefined,
    healthFirst ? readHealth(address, opts) : undefined,
    sources.includes('ready-check') ? readReady(address, opts) : undefined,
  ]);
  let health = firstHealth;
  if (withHealth && health === undefined && metrics !== undefined) {
    const restarted = metrics.ok && metrics.data.processStartMs !== note?.healthStartMs;
    if (healthDue || restarted || (!metrics.ok && ANSWERED.has(metrics.error.code))) health = await readHealth(address, opts);
  }
  if (note !== undefined && health?.ok === true) {
    note.healthAt = opts.clock.now();
    note.healthStartMs = metrics?.ok === true ? metrics.data.processStartMs : note.healthStartMs;
  }
  const report: { -readonly [K in keyof PodReport]: PodReport[K] } = { pod: address, at: opts.clock.now() };
  if (metrics !== undefined) report.metrics = metrics;
  if (health !== undefined) report.health = health;
  if (ready !== undefined) report.ready = ready;
  return report;
}

/** What the Poller calls for each pod. */
export type PodReader = (address: string, signal: AbortSignal) => Promise<PodReport>;

/** Binds readPod to the configuration: sources, poll-timeout, max-status-bytes, max-plugins, health-check-interval. */
export function podReaderFor(
  config: Pick<Config, 'sources' | 'pollTimeoutMs' | 'maxStatusBytes' | 'maxPlugins'> & { readonly healthCheckIntervalMs?: number },
  http: StatusHttp,
  clock: Clock,
): PodReader {
  // Without the option (the probe, which watches one pod), health-check is read on every poll.
  const memory = new PodMemory(config.healthCheckIntervalMs ?? 0);
  const base = { http, clock, memory, timeoutMs: config.pollTimeoutMs, maxBytes: config.maxStatusBytes, maxPlugins: config.maxPlugins };
  return (address, signal) => readPod(address, config.sources, { ...base, signal });
}
