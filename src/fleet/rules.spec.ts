import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pluginOnPod, podInStartup, podSettled, settledPollInterval, type PodData } from './rules.js';
import { failReport, metrics, newTracker, okReport, T0, OLD } from '../../test/support/fleet.js';
import type { ReadyData } from '../status/types.js';

const cfg = { daemonRetryLimit: 15, startupGraceMs: 60_000, startupMaxMs: 900_000, retryStallMs: 300_000 };
const now = T0;
const data = (m: PodData['metrics'], ready?: ReadyData): PodData => ({ metrics: m, ready, firstSeenAt: T0 - 1_000 });
const unready = (missing: string[], failed: string[], maxRetries?: number): ReadyData => ({
  ready: false,
  reason: 'plugins_starting',
  detail: { missing, failed, expected: undefined, running: undefined, maxRetries },
});

describe('state table: is a pod in start-up?', () => {
  it('S1 a pod younger than startup-grace is in start-up even with everything running', () => {
    assert.equal(podInStartup(data(metrics({ 'a/x': { g: 1 } }, now - 5_000)), cfg, now), true);
  });
  it('S2 a pod older than startup-max is past start-up even while launching', () => {
    assert.equal(podInStartup(data(metrics({ 'a/x': { g: 0.5 } }, now - 1_000_000)), cfg, now), false);
  });
  it('S3 ready-check unready with a start-up reason means start-up', () => {
    assert.equal(podInStartup(data(metrics({ 'a/x': { g: 1 } }, now - 120_000), unready([], [])), cfg, now), true);
  });
  it('S4 a launching plugin (gauge 0.5) means start-up', () => {
    assert.equal(podInStartup(data(metrics({ 'a/x': { g: 1 }, 'a/y': { g: 0.5 } }, now - 120_000)), cfg, now), true);
  });
  it('S5 a plugin waiting for a retry (gauge 0, failures below the limit) means start-up', () => {
    assert.equal(podInStartup(data(metrics({ 'a/y': { g: 0, f: 4 } }, now - 120_000)), cfg, now), true);
  });
  it('S6 no plugin data yet means start-up (uses first-seen time when the process start is unknown)', () => {
    assert.equal(podInStartup({ metrics: undefined, ready: undefined, firstSeenAt: now - 120_000 }, cfg, now), true);
    assert.equal(podInStartup({ metrics: undefined, ready: undefined, firstSeenAt: now - 2_000_000 }, cfg, now), false);
  });
  it('S7 otherwise the pod is past start-up (running and given-up plugins only)', () => {
    assert.equal(podInStartup(data(metrics({ 'a/x': { g: 1 }, 'a/y': { g: 0, f: 15 } }, now - 120_000)), cfg, now), false);
  });
});

describe('state table: a plugin on a pod', () => {
  const on = (s: Parameters<typeof metrics>[0], id: string, inStartup: boolean, ready?: ReadyData) =>
    pluginOnPod(id, data(metrics(s, OLD), ready), inStartup, cfg, now);

  it('R1 gauge 1 is ready, whatever a stale ready-check list says', () => {
    assert.equal(on({ 'a/x': { g: 1 } }, 'a/x', false, unready(['a/x'], [])).state, 'ready');
  });
  it('R2 listed failed by the daemon ready-check is failed', () => {
    assert.equal(on({ 'a/x': { g: 0, f: 2 } }, 'a/x', true, unready([], ['a/x'])).state, 'failed');
  });
  it('R3 gauge 0.5 is starting (launching)', () => {
    const p = on({ 'a/x': { g: 0.5 } }, 'a/x', true);
    assert.equal(p.state, 'starting');
    assert.equal(p.why, 'launching');
  });
  it('R4 gauge 0 with failed launches at the retry limit is failed', () => {
    const p = on({ 'a/x': { g: 0, f: 15 } }, 'a/x', false);
    assert.equal(p.state, 'failed');
    assert.match(p.why, /gave up after 15 failed launches/);
  });
  it('R4 the ready-check MaxRetries overrides the configured limit', () => {
    assert.equal(on({ 'a/x': { g: 0, f: 5 } }, 'a/x', false, unready([], [], 5)).state, 'failed');
    assert.equal(on({ 'a/x': { g: 0, f: 5 } }, 'a/x', false).state, 'starting');
  });
  it('R5 gauge 0 with failed launches below the limit is starting (retrying)', () => {
    const p = on({ 'a/x': { g: 0, f: 14 } }, 'a/x', false);
    assert.equal(p.state, 'starting');
    assert.match(p.why, /retrying after 14 failed launches/);
  });
  it('R5 a plugin between retries whose gauge and count have not moved for retry-stall has given up', () => {
    const d = (since: number): PodData => ({ ...data(metrics({ 'a/x': { g: 0, f: 4 } }, OLD)), changedAt: new Map([['a/x', { since }]]) });
    assert.equal(pluginOnPod('a/x', d(now - 60_000), false, cfg, now).state, 'starting');
    const stalled = pluginOnPod('a/x', d(now - 300_001), false, cfg, now);
    assert.equal(stalled.state, 'failed');
    assert.match(stalled.why, /no launch attempt for 300s after 4 failed launches/);
    assert.equal(pluginOnPod('a/x', d(now - 300_001), false, { ...cfg, retryStallMs: 0 }, now).state, 'starting', 'retry-stall 0 trusts the count');
    assert.equal(podInStartup(d(now - 300_001), cfg, now), false, 'a stalled plugin does not keep the pod in start-up');
  });
  it('R4 a retry limit learned from an earlier /ready/check detail still applies when it answers 200', () => {
    const d: PodData = { ...data(metrics({ 'a/x': { g: 0, f: 3 } }, OLD)), learnedMaxRetries: 3 };
    assert.equal(pluginOnPod('a/x', d, false, cfg, now).state, 'failed');
  });
  it('R6 gauge 0 without failures: starting during start-up, absent (stopped) after', () => {
    assert.equal(on({ 'a/x': { g: 0 } }, 'a/x', true).state, 'starting');
    assert.equal(on({ 'a/x': { g: 0 } }, 'a/x', false).state, 'absent');
  });
  it('R7 no series but listed missing by the daemon ready-check is starting', () => {
    assert.equal(on({}, 'a/x', false, unready(['a/x'], [])).state, 'starting');
  });
  it('R8 no series is absent: queued during start-up, not running after', () => {
    assert.match(on({}, 'a/x', true).why, /queued/);
    assert.equal(on({}, 'a/x', true).state, 'absent');
    assert.equal(on({}, 'a/x', false).state, 'absent');
  });
});

describe('podSettled: which pods may be polled less often', () => {
  const A = '10.0.0.1:5002';
  const view = (plugins: Record<string, { g?: number; f?: number }>, start = OLD) => {
    const { tracker } = newTracker([A]);
    tracker.ingest(okReport(A, T0, metrics(plugins, start)));
    return tracker.snapshot().pods.get(A);
  };
  it('a live pod past start-up with every plugin running, failed or stopped is settled', () => {
    assert.equal(podSettled(view({ 'a/x': { g: 1 }, 'a/y': { g: 0, f: 15 } })), true);
  });
  it('a pod in start-up, with a plugin launching or between retries, or not live, is not', () => {
    assert.equal(podSettled(view({ 'a/x': { g: 1 } }, T0 - 1_000)), false);
    assert.equal(podSettled(view({ 'a/x': { g: 1 }, 'a/y': { g: 0.5 } })), false);
    assert.equal(podSettled(view({ 'a/x': { g: 0, f: 3 } })), false);
    const { tracker } = newTracker([A]);
    tracker.ingest(failReport(A, T0));
    assert.equal(podSettled(tracker.snapshot().pods.get(A)), false);
    assert.equal(podSettled(undefined), false);
  });
});

describe('settledPollInterval', () => {
  const base = { pollIntervalMs: 2_000, settledPollIntervalMs: 6_000, staleAfterMs: 10_000, pollTimeoutMs: 1_000, pollJitterPercent: 10 };
  it('is settled-poll-interval when a settled pod stays fresh between polls', () => {
    assert.equal(settledPollInterval(base), 6_000);
  });
  it('never goes below poll-interval, and is capped so that the longest wait plus a read stays within stale-after', () => {
    assert.equal(settledPollInterval({ ...base, settledPollIntervalMs: 0 }), 2_000);
    const capped = settledPollInterval({ ...base, staleAfterMs: 5_000 });
    assert.ok(capped * 1.1 + 1_000 < 5_000 && capped > 2_000, String(capped));
  });
});
