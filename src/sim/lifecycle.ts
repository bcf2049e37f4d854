/**
 * The plugin lifecycle of one simulated daemon process (PLATFORM=local), with
 * no I/O: launch queue, retries, the metric series the daemon's notifier keeps,
 * and the PR #600 readiness snapshot. One instance is one process lifetime; a
 * pod restart throws it away and builds a new one from the installed list.
 */
import { createHash } from 'node:crypto';
import { DAEMON_SCAN_INTERVAL_MS, daemonRetryWaitMs } from '../core/daemon.js';
import { GateError } from '../core/errors.js';
import { isPluginId, type PluginId } from '../core/plugin-id.js';
import type { Scheduler, TimerHandle } from '../core/clock.js';

/** One installed plugin, as a test or scenario describes it. */
export interface PluginSpec {
  /** `author/name`. */
  readonly id: PluginId;
  /** Defaults to `0.0.1`. */
  readonly version?: string;
  /** Duration of one launch attempt (success or failure) in daemon ms, before `timeScale`. */
  readonly launchMs: number;
  /** Fail the first n launch attempts, or every attempt. */
  readonly failures?: number | 'always';
}

export const DEFAULT_PLUGIN_VERSION = '0.0.1';

const VERSION = /^[0-9]{1,4}(\.[0-9]{1,4}){1,3}(-\w{1,16})?$/;

/** `author/name:version@sha256`, the sha derived from id and version so every run agrees. */
export function uniqueIdentifierFor(id: PluginId, version: string = DEFAULT_PLUGIN_VERSION): string {
  const sha = createHash('sha256').update(`${id}:${version}`).digest('hex');
  return `${id}:${version}@${sha}`;
}

/** Checks a spec once, loudly, so a typo in a scenario fails at construction. */
export function checkSpec(spec: PluginSpec): void {
  const where = `plugin spec ${JSON.stringify(spec.id)}`;
  if (typeof spec.id !== 'string' || !isPluginId(spec.id)) {
    throw new GateError('config_invalid', `${where}: id must be author/name in [a-z0-9_-]`);
  }
  if (spec.version !== undefined && !VERSION.test(spec.version)) {
    throw new GateError('config_invalid', `${where}: version ${JSON.stringify(spec.version)} is not a daemon version`);
  }
  if (!Number.isFinite(spec.launchMs) || spec.launchMs < 0) {
    throw new GateError('config_invalid', `${where}: launchMs must be a finite number >= 0`);
  }
  const f = spec.failures;
  if (f !== undefined && f !== 'always' && !(Number.isInteger(f) && f >= 0)) {
    throw new GateError('config_invalid', `${where}: failures must be an integer >= 0 or 'always'`);
  }
}

/**
 * queued: waiting for a launch slot; launching: gauge 0.5; running: gauge 1;
 * retry_wait: failed, waiting out the retry delay; gave_up: retry limit reached.
 */
export type PluginPhase = 'queued' | 'launching' | 'running' | 'retry_wait' | 'gave_up';

export interface SimPluginState {
  readonly id: PluginId;
  readonly uniqueId: string;
  readonly phase: PluginPhase;
  /**
   * `plugin_runtime_status` for this plugin id as `/metrics/` shows it; undefined
   * when there is no series. Shared by every installed version of the id.
   */
  readonly gauge: number | undefined;
  /** `plugin_installations_total{status="failed"}` for this plugin id (0 when no series). */
  readonly failedLaunches: number;
  /** Launch attempts of this installation in this process lifetime. */
  readonly attempts: number;
  /** `plugin_restarts_total` for this plugin id. */
  readonly restarts: number;
  /** In the ready-check's locked initial set. */
  readonly initial: boolean;
}

/** PR #600 `LocalReadinessSnapshot`, keys exactly as Go marshals the struct. */
export interface ReadinessDetail {
  readonly Ready: boolean;
  readonly InitialPluginsReady: boolean;
  readonly InitialExpected: number;
  readonly InitialRunning: number;
  readonly InitialMissing: readonly string[];
  readonly InitialFailed: readonly string[];
  readonly RuntimePluginsLoading: number;
  readonly RuntimeMissing: readonly string[];
  readonly Expected: number;
  readonly Running: number;
  readonly Missing: readonly string[];
  readonly Failed: readonly string[];
  readonly UpdatedAt: string;
  readonly Platform: string;
  readonly Installed: number;
  readonly Ignored: number;
  readonly MaxRetries: number;
}

/** Lifecycle events, named after the daemon's log lines. */
export type LifecycleEventKind =
  | 'installed'
  | 'uninstalled'
  | 'starting'
  | 'ready'
  | 'start_failed'
  | 'retry_wait'
  | 'gave_up'
  | 'plugin_restarted';

export interface LifecycleOptions {
  readonly scheduler: Scheduler;
  readonly launchConcurrency: number;
  readonly retryLimit: number;
  readonly timeScale: number;
  readonly emit: (kind: LifecycleEventKind, pluginId: PluginId, detail?: string) => void;
}

interface Entry {
  readonly spec: PluginSpec;
  readonly pluginId: PluginId;
  readonly uniqueId: string;
  phase: PluginPhase;
  /** The daemon's fails record: failed launches since the last success. */
  failures: number;
  attempts: number;
  timer: TimerHandle | undefined;
}

/** Go marshals time.Time as RFC 3339 with trailing zero fractions dropped. */
function goTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.?0+Z$/, 'Z');
}

export class PluginLifecycle {
  /** Scheduler time this process started (feeds `process_start_time_seconds`). */
  readonly startedAt: number;
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  private launching = 0;
  private stopped = false;
  private scanTimer: TimerHandle | undefined;
  // Metric series keyed like the daemon's Prometheus vectors: by plugin id, never deleted.
  private readonly gauge = new Map<PluginId, number>();
  private readonly failedTotal = new Map<PluginId, number>();
  private readonly restartsTotal = new Map<PluginId, number>();
  private activeTotal: number | undefined;
  private initialSet: Set<string> | undefined;
  private readiness: ReadinessDetail | undefined;

  constructor(
    private readonly opts: LifecycleOptions,
    specs: readonly PluginSpec[],
  ) {
    this.startedAt = opts.scheduler.now();
    // The start-up scan queues every installed plugin in install order.
    for (const spec of specs) this.add(spec, false);
    this.pump();
    this.passMaybeDone();
    this.scheduleScan();
  }

  /** Installs at run time; queued behind the launch limit like the rest. Returns the unique identifier. */
  install(spec: PluginSpec): string {
    return this.add(spec, true);
  }

  /** Removes every installation matching a plugin id or a unique identifier; returns how many. */
  uninstall(idOrUniqueId: string): number {
    let removed = 0;
    for (const e of [...this.entries.values()]) {
      if (e.uniqueId !== idOrUniqueId && e.pluginId !== idOrUniqueId) continue;
      removed++;
      this.entries.delete(e.uniqueId);
      if (e.timer !== undefined) this.opts.scheduler.clearTimeout(e.timer);
      e.timer = undefined;
      if (e.phase === 'queued') {
        const at = this.queue.indexOf(e);
        if (at >= 0) this.queue.splice(at, 1);
      } else if (e.phase === 'launching') {
        this.launching--;
        this.gauge.set(e.pluginId, 0);
      } else if (e.phase === 'running') {
        // OnLocalRuntimeStopped: gauge 0 (the series stays), active count down.
        this.gauge.set(e.pluginId, 0);
        this.activeTotal = Math.max(0, (this.activeTotal ?? 1) - 1);
      }
      this.opts.emit('uninstalled', e.pluginId);
    }
    if (removed > 0) {
      this.pump();
      this.passMaybeDone();
    }
    return removed;
  }

  /**
   * An instance of a running plugin was replaced (e.g. no heartbeat for 120 s).
   * The daemon keeps reporting the runtime as running throughout; only the
   * restart counter moves. Returns false when the plugin is not running here.
   */
  restartPlugin(pluginId: PluginId): boolean {
    let hit = false;
    for (const e of this.entries.values()) {
      if (e.pluginId !== pluginId || e.phase !== 'running') continue;
      hit = true;
      this.restartsTotal.set(pluginId, (this.restartsTotal.get(pluginId) ?? 0) + 1);
      this.opts.emit('plugin_restarted', pluginId);
    }
    return hit;
  }

  /** Process exit: no timer of this lifetime fires again. */
  stop(): void {
    this.stopped = true;
    if (this.scanTimer !== undefined) this.opts.scheduler.clearTimeout(this.scanTimer);
    this.scanTimer = undefined;
    for (const e of this.entries.values()) {
      if (e.timer !== undefined) this.opts.scheduler.clearTimeout(e.timer);
      e.timer = undefined;
    }
    this.queue.length = 0;
  }

  /** Whether some installed version of `pluginId` is running in this process. */
  isRunning(pluginId: PluginId): boolean {
    for (const e of this.entries.values()) if (e.pluginId === pluginId && e.phase === 'running') return true;
    return false;
  }

  /** Series for the exposition, in first-seen order (stable between scrapes). */
  series(): {
    readonly runtimeStatus: ReadonlyMap<PluginId, number>;
    readonly failedLaunches: ReadonlyMap<PluginId, number>;
    readonly restarts: ReadonlyMap<PluginId, number>;
    readonly active: number | undefined;
  } {
    return {
      runtimeStatus: this.gauge,
      failedLaunches: this.failedTotal,
      restarts: this.restartsTotal,
      active: this.activeTotal,
    };
  }

  /** The last computed readiness snapshot; undefined until the first launch pass completed. */
  readinessDetail(): ReadinessDetail | undefined {
    return this.readiness;
  }

  snapshot(): SimPluginState[] {
    const out: SimPluginState[] = [];
    for (const e of this.entries.values()) {
      out.push({
        id: e.pluginId,
        uniqueId: e.uniqueId,
        phase: e.phase,
        gauge: this.gauge.get(e.pluginId),
        failedLaunches: this.failedTotal.get(e.pluginId) ?? 0,
        attempts: e.attempts,
        restarts: this.restartsTotal.get(e.pluginId) ?? 0,
        initial: this.initialSet?.has(e.uniqueId) ?? false,
      });
    }
    return out;
  }

  /** Launch slots in use and queue length (for `/health/check`'s pool figures). */
  load(): { readonly launching: number; readonly queued: number; readonly running: number } {
    let running = 0;
    for (const e of this.entries.values()) if (e.phase === 'running') running++;
    return { launching: this.launching, queued: this.queue.length, running };
  }

  private add(spec: PluginSpec, announce: boolean): string {
    checkSpec(spec);
    const uniqueId = uniqueIdentifierFor(spec.id, spec.version);
    if (this.entries.has(uniqueId)) return uniqueId;
    const e: Entry = {
      spec,
      pluginId: spec.id,
      uniqueId,
      phase: 'queued',
      failures: 0,
      attempts: 0,
      timer: undefined,
    };
    this.entries.set(uniqueId, e);
    this.queue.push(e);
    if (announce) {
      this.opts.emit('installed', e.pluginId, uniqueId);
      this.pump();
    }
    return uniqueId;
  }

  /** Starts queued plugins while slots are free; a queued plugin has no series until it starts. */
  private pump(): void {
    while (!this.stopped && this.launching < this.opts.launchConcurrency) {
      const e = this.queue.shift();
      if (e === undefined) break;
      this.launch(e);
    }
  }

  private launch(e: Entry): void {
    e.phase = 'launching';
    e.attempts++;
    this.launching++;
    // OnLocalRuntimeStarting
    this.gauge.set(e.pluginId, 0.5);
    this.opts.emit('starting', e.pluginId, `attempt ${e.attempts}`);
    const f = e.spec.failures ?? 0;
    const succeeds = f !== 'always' && e.attempts > f;
    e.timer = this.opts.scheduler.setTimeout(() => this.finish(e, succeeds), e.spec.launchMs * this.opts.timeScale);
  }

  private finish(e: Entry, ok: boolean): void {
    e.timer = undefined;
    if (this.stopped || this.entries.get(e.uniqueId) !== e) return;
    this.launching--;
    if (ok) {
      // OnLocalRuntimeReady; the fails record is deleted on success.
      e.phase = 'running';
      e.failures = 0;
      this.gauge.set(e.pluginId, 1);
      if (!this.restartsTotal.has(e.pluginId)) this.restartsTotal.set(e.pluginId, 0);
      this.activeTotal = (this.activeTotal ?? 0) + 1;
      this.opts.emit('ready', e.pluginId);
    } else {
      // OnLocalRuntimeStartFailed
      e.failures++;
      this.gauge.set(e.pluginId, 0);
      this.failedTotal.set(e.pluginId, (this.failedTotal.get(e.pluginId) ?? 0) + 1);
      this.opts.emit('start_failed', e.pluginId, `failure ${e.failures}/${this.opts.retryLimit}`);
      if (e.failures >= this.opts.retryLimit) {
        e.phase = 'gave_up';
        this.opts.emit('gave_up', e.pluginId, `after ${e.failures} failed launches`);
      } else {
        const wait = daemonRetryWaitMs(e.failures) * this.opts.timeScale;
        if (wait <= 0) {
          e.phase = 'queued';
          this.queue.push(e);
        } else {
          // The slot is released while the plugin waits out its retry delay.
          e.phase = 'retry_wait';
          this.opts.emit('retry_wait', e.pluginId, `${daemonRetryWaitMs(e.failures) / 1000} s`);
          e.timer = this.opts.scheduler.setTimeout(() => {
            e.timer = undefined;
            if (this.stopped || this.entries.get(e.uniqueId) !== e) return;
            e.phase = 'queued';
            this.queue.push(e);
            this.pump();
          }, wait);
        }
      }
    }
    this.pump();
    this.passMaybeDone();
  }

  /**
   * Readiness recompute points. Upstream recomputes after each full launch pass;
   * here a pass is complete when nothing is launching or queued (every launch the
   * pass started has ended), and the 30 s scan tick recomputes while idle. So the
   * snapshot lags like the daemon's: it does not move while launches are in flight.
   */
  private passMaybeDone(): void {
    if (!this.stopped && this.launching === 0 && this.queue.length === 0) this.recomputeReadiness();
  }

  private scheduleScan(): void {
    if (this.stopped) return;
    // At least 1 ms so a zero time scale cannot spin a manual scheduler forever.
    const every = Math.max(1, DAEMON_SCAN_INTERVAL_MS * this.opts.timeScale);
    this.scanTimer = this.opts.scheduler.setTimeout(() => {
      this.scanTimer = undefined;
      this.passMaybeDone();
      this.scheduleScan();
    }, every);
  }

  private recomputeReadiness(): void {
    const all = [...this.entries.values()];
    // The initial set is locked by the first snapshot that sees any plugin, as upstream does.
    if (this.initialSet === undefined && all.length > 0) this.initialSet = new Set(all.map((e) => e.uniqueId));
    const initial = this.initialSet ?? new Set<string>();
    const missing: string[] = [];
    const failed: string[] = [];
    const initialMissing: string[] = [];
    const initialFailed: string[] = [];
    const runtimeMissing: string[] = [];
    let running = 0;
    let initialExpected = 0;
    let initialRunning = 0;
    for (const e of all) {
      const isInitial = initial.has(e.uniqueId);
      if (isInitial) initialExpected++;
      if (e.phase === 'running') {
        running++;
        if (isInitial) initialRunning++;
      } else if (e.phase === 'gave_up') {
        failed.push(e.uniqueId);
        if (isInitial) initialFailed.push(e.uniqueId);
      } else {
        missing.push(e.uniqueId);
        if (isInitial) initialMissing.push(e.uniqueId);
        else runtimeMissing.push(e.uniqueId);
      }
    }
    // Permanently failed initial plugins do not block readiness: only missing ones do.
    const ready = initialMissing.length === 0;
    this.readiness = {
      Ready: ready,
      InitialPluginsReady: ready,
      InitialExpected: initialExpected,
      InitialRunning: initialRunning,
      InitialMissing: initialMissing,
      InitialFailed: initialFailed,
      RuntimePluginsLoading: runtimeMissing.length,
      RuntimeMissing: runtimeMissing,
      Expected: all.length,
      Running: running,
      Missing: missing,
      Failed: failed,
      UpdatedAt: goTime(this.opts.scheduler.now()),
      Platform: 'local',
      Installed: all.length,
      Ignored: 0,
      MaxRetries: this.opts.retryLimit,
    };
  }
}
