import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DAEMON_LAUNCH_CONCURRENCY, DAEMON_MAX_RETRY_COUNT, DAEMON_SCAN_INTERVAL_MS, daemonRetryWaitMs } from './daemon.js';

describe('daemon facts', () => {
  it('waits by the failed launches so far: none after 0-2, 30 s after 3-7, 60 s after 8-14', () => {
    // Every boundary of calculateWaitTime(RetryCount), RetryCount = failed launches so far.
    const expected: [number, number][] = [
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 30_000],
      [4, 30_000],
      [7, 30_000],
      [8, 60_000],
      [9, 60_000],
      [14, 60_000],
    ];
    for (const [failures, wait] of expected) assert.equal(daemonRetryWaitMs(failures), wait, `after ${failures} failed launches`);
  });

  it('stops after 15 failed launches, launches two at once, scans every 30 s', () => {
    assert.equal(DAEMON_MAX_RETRY_COUNT, 15);
    assert.equal(DAEMON_LAUNCH_CONCURRENCY, 2);
    assert.equal(DAEMON_SCAN_INTERVAL_MS, 30_000);
  });
});
