import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sleeper, every, systemScheduler } from './clock.js';
import { ManualScheduler, settle } from '../../test/support/manual-scheduler.js';

test('systemScheduler timers fire and are unref()d', async () => {
  const fired = await new Promise<boolean>((resolve) => {
    const h = systemScheduler.setTimeout(() => resolve(true), 1);
    assert.equal((h as unknown as NodeJS.Timeout).hasRef(), false);
    // Keep the test process alive until the unref'd timer fires.
    const keep = setTimeout(() => resolve(false), 2000);
    systemScheduler.setTimeout(() => clearTimeout(keep), 1);
  });
  assert.equal(fired, true);
  let cancelled = true;
  const h = systemScheduler.setTimeout(() => (cancelled = false), 1);
  systemScheduler.clearTimeout(h);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(cancelled, true);
});

test('every runs once per period as time moves, and not after it is stopped', () => {
  const s = new ManualScheduler(0);
  const at: number[] = [];
  const stop = every(s, 1000, () => at.push(s.now()));
  s.advance(3500);
  assert.deepEqual(at, [1000, 2000, 3000]);
  stop();
  s.advance(5000);
  assert.deepEqual(at, [1000, 2000, 3000]);
  assert.equal(s.pending(), 0);
});

test('a Sleeper ends after its time or at once on wake, and leaves no timer behind', async () => {
  const s = new ManualScheduler(0);
  const sleeper = new Sleeper(s);
  let woke = false;
  const p = sleeper.sleep(1000).then(() => (woke = true));
  s.advance(999);
  await settle();
  assert.equal(woke, false);
  assert.equal(s.pending(), 1);
  sleeper.wake();
  await p;
  assert.equal(woke, true);
  assert.equal(s.pending(), 0);
});
