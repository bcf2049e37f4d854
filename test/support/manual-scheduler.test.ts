import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/core/clock.js';
import { ManualScheduler } from './manual-scheduler.js';

test('ManualScheduler fires due timers in due order, ties in scheduling order, with now() at the due time', () => {
  const s = new ManualScheduler(1000);
  const seen: string[] = [];
  s.setTimeout(() => seen.push(`b@${s.now()}`), 20);
  s.setTimeout(() => seen.push(`a@${s.now()}`), 10);
  s.setTimeout(() => seen.push(`c@${s.now()}`), 20);
  s.setTimeout(() => seen.push(`late@${s.now()}`), 31);
  s.advance(30);
  assert.deepEqual(seen, ['a@1010', 'b@1020', 'c@1020']);
  assert.equal(s.now(), 1030);
  assert.equal(s.pending(), 1);
  assert.equal(s.nextDue(), 1031);
});

test('ManualScheduler fires timers scheduled by fired timers inside the window, not beyond it', () => {
  const s = new ManualScheduler(0);
  const seen: number[] = [];
  const chain = (): void => {
    seen.push(s.now());
    s.setTimeout(chain, 10);
  };
  s.setTimeout(chain, 0);
  s.advance(35);
  assert.deepEqual(seen, [0, 10, 20, 30]);
  s.setTimeout(() => seen.push(-1), 0);
  s.advance(0);
  assert.deepEqual(seen, [0, 10, 20, 30, -1]);
});

test('ManualScheduler clearTimeout cancels, advance rejects negative time, and it is a Clock', () => {
  const s = new ManualScheduler(5);
  let fired = false;
  const h = s.setTimeout(() => (fired = true), 1);
  s.clearTimeout(h);
  s.advance(10);
  assert.equal(fired, false);
  assert.throws(() => s.advance(-1), RangeError);
  const clock: Clock = s;
  s.advanceTo(100);
  assert.equal(clock.now(), 100);
  s.advanceTo(50);
  assert.equal(clock.now(), 100);
});

test('ManualScheduler lists time left per timer, runs every pending one, and set() moves time either way without firing', () => {
  const s = new ManualScheduler(0);
  const seen: number[] = [];
  s.setTimeout(() => seen.push(s.now()), 30);
  s.setTimeout(() => seen.push(s.now()), 10);
  assert.deepEqual(s.delays(), [10, 30]);
  s.runPending();
  assert.deepEqual(seen, [10, 30]);
  s.setTimeout(() => seen.push(-1), 5);
  s.set(-100);
  assert.equal(s.now(), -100);
  assert.deepEqual(seen, [10, 30]);
});
