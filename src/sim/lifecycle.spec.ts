import { test } from 'node:test';
import assert from 'node:assert/strict';
import { daemonRetryWaitMs } from '../core/daemon.js';
import { pluginIdFromUniqueId } from '../core/plugin-id.js';
import {
  PluginLifecycle,
  uniqueIdentifierFor,
  type LifecycleEventKind,
  type PluginSpec,
} from './lifecycle.js';
import { ManualScheduler } from '../../test/support/manual-scheduler.js';

interface Logged {
  readonly at: number;
  readonly kind: LifecycleEventKind;
  readonly id: string;
}

function make(
  specs: PluginSpec[],
  over: { launchConcurrency?: number; retryLimit?: number; timeScale?: number } = {},
): { s: ManualScheduler; lc: PluginLifecycle; log: Logged[] } {
  const s = new ManualScheduler(0);
  const log: Logged[] = [];
  const lc = new PluginLifecycle(
    {
      scheduler: s,
      launchConcurrency: over.launchConcurrency ?? 2,
      retryLimit: over.retryLimit ?? 15,
      timeScale: over.timeScale ?? 1,
      emit: (kind, id) => log.push({ at: s.now(), kind, id }),
    },
    specs,
  );
  return { s, lc, log };
}

const state = (lc: PluginLifecycle, id: string) => {
  const found = lc.snapshot().find((p) => p.id === id);
  assert.ok(found, `no state for ${id}`);
  return found;
};

test('unique identifiers are deterministic and match the daemon pattern', () => {
  const u = uniqueIdentifierFor('langgenius/openai', '0.2.1');
  assert.equal(u, uniqueIdentifierFor('langgenius/openai', '0.2.1'));
  assert.match(u, /^langgenius\/openai:0\.2\.1@[a-f0-9]{64}$/);
  assert.equal(pluginIdFromUniqueId(u), 'langgenius/openai');
  assert.notEqual(u, uniqueIdentifierFor('langgenius/openai', '0.2.2'));
  assert.match(uniqueIdentifierFor('a/b'), /^a\/b:0\.0\.1@/);
});

test('plugins queue behind the launch limit with no series, then 0.5 while launching, 1 when running', () => {
  const { s, lc } = make([
    { id: 'a/one', launchMs: 100 },
    { id: 'a/two', launchMs: 300 },
    { id: 'a/three', launchMs: 50 },
  ]);
  assert.deepEqual(
    lc.snapshot().map((p) => [p.id, p.phase, p.gauge]),
    [
      ['a/one', 'launching', 0.5],
      ['a/two', 'launching', 0.5],
      ['a/three', 'queued', undefined],
    ],
  );
  assert.equal(lc.series().runtimeStatus.has('a/three'), false);
  s.advance(100);
  assert.deepEqual([state(lc, 'a/one').phase, state(lc, 'a/one').gauge], ['running', 1]);
  assert.deepEqual([state(lc, 'a/three').phase, state(lc, 'a/three').gauge], ['launching', 0.5]);
  s.advance(50);
  assert.equal(state(lc, 'a/three').gauge, 1);
  assert.equal(state(lc, 'a/two').gauge, 0.5);
  s.advance(150);
  assert.equal(state(lc, 'a/two').gauge, 1);
  assert.equal(lc.series().active, 3);
  assert.equal(state(lc, 'a/one').restarts, 0);
  assert.equal(lc.series().restarts.get('a/one'), 0);
});

test('an always-failing plugin is retried on the upstream schedule and given up after 15 failures', () => {
  const launchMs = 1000;
  const { s, lc, log } = make([{ id: 'a/broken', launchMs, failures: 'always' }]);
  // Expected launch start times: each failure f waits daemonRetryWaitMs(f) before the next attempt.
  const expected: number[] = [0];
  let t = 0;
  for (let f = 1; f < 15; f++) {
    t += launchMs + daemonRetryWaitMs(f);
    expected.push(t);
  }
  s.advance(3_600_000);
  const starts = log.filter((e) => e.kind === 'starting').map((e) => e.at);
  assert.deepEqual(starts, expected);
  // waits: none after failures 1–2, 30 s after 3–7, 60 s after 8–14.
  assert.deepEqual(
    expected.slice(1).map((at, i) => at - (expected[i] ?? 0) - launchMs),
    [0, 0, 30_000, 30_000, 30_000, 30_000, 30_000, 60_000, 60_000, 60_000, 60_000, 60_000, 60_000, 60_000],
  );
  const p = state(lc, 'a/broken');
  assert.equal(p.phase, 'gave_up');
  assert.equal(p.failedLaunches, 15);
  assert.equal(p.attempts, 15);
  assert.equal(p.gauge, 0);
  assert.equal(log.filter((e) => e.kind === 'gave_up').length, 1);
  s.advance(3_600_000);
  assert.equal(log.filter((e) => e.kind === 'starting').length, 15);
  assert.equal(lc.series().active, undefined);
});

test('a plugin with failures: 3 runs on its fourth attempt, after a 30 s wait', () => {
  const { s, lc, log } = make([{ id: 'a/flaky', launchMs: 10, failures: 3 }]);
  s.advance(30);
  assert.equal(state(lc, 'a/flaky').phase, 'retry_wait');
  assert.equal(state(lc, 'a/flaky').gauge, 0);
  assert.equal(state(lc, 'a/flaky').failedLaunches, 3);
  s.advance(30_000);
  assert.equal(state(lc, 'a/flaky').gauge, 0.5);
  s.advance(10);
  const p = state(lc, 'a/flaky');
  assert.deepEqual([p.phase, p.gauge, p.failedLaunches, p.attempts], ['running', 1, 3, 4]);
  assert.deepEqual(
    log.filter((e) => e.kind === 'starting').map((e) => e.at),
    [0, 10, 20, 30_030],
  );
});

test('a retrying plugin frees its launch slot while it waits; immediate retries queue behind others; waits follow timeScale', () => {
  const { s, lc } = make(
    [
      { id: 'a/broken', launchMs: 10, failures: 'always' },
      { id: 'a/next', launchMs: 10 },
    ],
    { launchConcurrency: 1, timeScale: 0.1 },
  );
  // Launches take 1 ms (10 × 0.1). broken fails at t = 1 and goes behind next, which launches.
  s.advance(1);
  assert.equal(state(lc, 'a/next').phase, 'launching');
  assert.equal(state(lc, 'a/broken').phase, 'queued');
  s.advanceTo(2);
  assert.equal(state(lc, 'a/next').phase, 'running');
  // Attempts 2 and 3 run at t = 2 and 3; the third failure (t = 4) starts a 3 s wait (30 s × 0.1).
  s.advanceTo(4);
  assert.equal(state(lc, 'a/broken').phase, 'retry_wait');
  assert.equal(state(lc, 'a/broken').failedLaunches, 3);
  // The slot is free during the wait: a new install launches at once.
  lc.install({ id: 'a/third', launchMs: 10 });
  assert.equal(state(lc, 'a/third').phase, 'launching');
  s.advanceTo(4 + 3000 - 1);
  assert.equal(state(lc, 'a/broken').phase, 'retry_wait');
  s.advanceTo(4 + 3000);
  assert.equal(state(lc, 'a/broken').phase, 'launching');
});

test('two versions of one plugin share one series; uninstall stops it (gauge 0, series kept)', () => {
  const { s, lc } = make([
    { id: 'a/dup', version: '1.0.0', launchMs: 10 },
    { id: 'a/dup', version: '2.0.0', launchMs: 20, failures: 'always' },
  ], { retryLimit: 1 });
  s.advance(10);
  assert.equal(lc.series().runtimeStatus.get('a/dup'), 1);
  s.advance(10);
  // The failing second version overwrites the shared gauge: the pitfall the gate must live with.
  assert.equal(lc.series().runtimeStatus.get('a/dup'), 0);
  assert.equal(lc.isRunning('a/dup'), true);
  assert.equal(lc.uninstall(uniqueIdentifierFor('a/dup', '1.0.0')), 1);
  assert.equal(lc.isRunning('a/dup'), false);
  assert.equal(lc.series().active, 0);
  assert.equal(lc.series().runtimeStatus.get('a/dup'), 0);
  assert.equal(lc.uninstall('a/dup'), 1);
  assert.equal(lc.snapshot().length, 0);
});

test('restartPlugin bumps plugin_restarts_total and keeps the runtime reported as running', () => {
  const { s, lc } = make([{ id: 'a/one', launchMs: 10 }]);
  assert.equal(lc.restartPlugin('a/one'), false);
  s.advance(10);
  assert.equal(lc.restartPlugin('a/one'), true);
  assert.deepEqual([state(lc, 'a/one').restarts, state(lc, 'a/one').gauge], [1, 1]);
});

test('readiness: none before the first pass, starting while missing, ready when only permanent failures remain', () => {
  const { s, lc } = make(
    [
      { id: 'a/ok', launchMs: 100 },
      { id: 'a/broken', launchMs: 1, failures: 'always' },
    ],
    { retryLimit: 4 },
  );
  assert.equal(lc.readinessDetail(), undefined);
  // Failures 1–3 retry at once; the pass ends at t=100 when a/ok is up and a/broken waits 30 s.
  s.advance(100);
  const d1 = lc.readinessDetail();
  assert.ok(d1);
  assert.equal(d1.Ready, false);
  assert.equal(d1.InitialExpected, 2);
  assert.equal(d1.InitialRunning, 1);
  assert.deepEqual(d1.InitialMissing, [uniqueIdentifierFor('a/broken')]);
  assert.equal(d1.MaxRetries, 4);
  assert.equal(d1.UpdatedAt, '1970-01-01T00:00:00.1Z');
  s.advance(30_001);
  const d2 = lc.readinessDetail();
  assert.ok(d2);
  assert.equal(d2.Ready, true);
  assert.deepEqual(d2.InitialFailed, [uniqueIdentifierFor('a/broken')]);
  assert.deepEqual(d2.Failed, [uniqueIdentifierFor('a/broken')]);
  // Plugins installed after the lock are runtime plugins: they never make the pod unready.
  lc.install({ id: 'a/late', launchMs: 50 });
  s.advance(30_000);
  s.advance(1);
  const d3 = lc.readinessDetail();
  assert.ok(d3);
  assert.equal(d3.Ready, true);
  assert.equal(d3.Expected, 3);
  assert.equal(d3.Running, 2);
  assert.equal(d3.RuntimePluginsLoading, 0);
  assert.equal(state(lc, 'a/late').initial, false);
  assert.equal(state(lc, 'a/ok').initial, true);
});

test('the snapshot holds still while launches are in flight; a retrying run-time plugin is RuntimeMissing', () => {
  const { s, lc } = make([{ id: 'a/ok', launchMs: 1 }], { launchConcurrency: 1 });
  s.advance(1);
  const before = lc.readinessDetail();
  assert.ok(before);
  lc.install({ id: 'a/slow', launchMs: 100_000 });
  s.advance(60_000);
  // Two scan ticks passed, but a launch is in flight: upstream recomputes only after the pass.
  assert.equal(lc.readinessDetail(), before);
  lc.uninstall('a/slow');
  lc.install({ id: 'a/late', launchMs: 1, failures: 3 });
  s.advance(3);
  const d = lc.readinessDetail();
  assert.ok(d);
  assert.equal(d.Ready, true);
  assert.equal(d.RuntimePluginsLoading, 1);
  assert.deepEqual(d.RuntimeMissing, [uniqueIdentifierFor('a/late')]);
  assert.deepEqual(d.Missing, [uniqueIdentifierFor('a/late')]);
  assert.deepEqual(d.InitialMissing, []);
});
