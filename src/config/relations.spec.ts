/** Relations between options are configuration errors, one line each (issue: a config that makes healthy plugins flap). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configFor, type RawValues } from './config.js';
import { GateError } from '../core/errors.js';

function problems(flags: RawValues): string[] {
  try {
    configFor({ targets: '10.0.0.1:5002', ...flags });
  } catch (err) {
    if (err instanceof GateError && err.code === 'config_invalid') return [...err.problems];
    throw err;
  }
  return [];
}

describe('option relations', () => {
  it('the defaults agree with each other', () => {
    assert.deepEqual(problems({}), []);
  });

  it('poll-interval 15s with the default stale-after 10s: a healthy pod would flap, so stale-after is refused', () => {
    const p = problems({ 'poll-interval': '15s' });
    assert.equal(p.length, 1, p.join('\n'));
    assert.match(p[0]!, /^stale-after: 10s must be longer than poll-interval × \(1 \+ poll-jitter\) \+ poll-timeout \(15s × 1\.1 \+ 1s = 17\.5s\)/);
  });

  it('poll-interval 2s with stale-after 100ms is refused', () => {
    const p = problems({ 'poll-interval': '2s', 'stale-after': '100ms' });
    assert.equal(p.length, 1, p.join('\n'));
    assert.match(p[0]!, /^stale-after: 100ms must be longer than/);
  });

  it('the bound counts jitter and the poll timeout, and is strict', () => {
    // 2s × 1.1 + 1s = 3.2s
    assert.match(problems({ 'stale-after': '3200ms' })[0]!, /^stale-after:/);
    assert.deepEqual(problems({ 'stale-after': '3201ms' }), []);
    assert.deepEqual(problems({ 'stale-after': '3200ms', 'poll-jitter': '0' }), []);
    assert.match(problems({ 'stale-after': '5s', 'poll-timeout': '3s' })[0]!, /^stale-after:/);
  });

  it('listeners need distinct addresses; a wildcard overlaps a specific address on the same port; port 0 never clashes', () => {
    const p = problems({ 'grpc-listen': '0.0.0.0:9000', 'http-listen': '127.0.0.1:9000', 'admin-listen': '0.0.0.0:9000' });
    assert.deepEqual(p, [
      'http-listen: 127.0.0.1:9000 uses the same port as grpc-listen (0.0.0.0:9000): each listener needs its own address',
      'admin-listen: 0.0.0.0:9000 uses the same port as grpc-listen (0.0.0.0:9000): each listener needs its own address',
      'admin-listen: 0.0.0.0:9000 uses the same port as http-listen (127.0.0.1:9000): each listener needs its own address',
    ]);
    assert.deepEqual(problems({ 'grpc-listen': '127.0.0.1:9000', 'http-listen': '127.0.0.2:9000' }), []);
    assert.deepEqual(problems({ 'grpc-listen': '127.0.0.1:0', 'http-listen': '127.0.0.1:0', 'admin-listen': '127.0.0.1:0' }), []);
    assert.deepEqual(problems({ 'grpc-listen': '127.0.0.1:9000', 'http-listen': 'off', 'admin-listen': '127.0.0.1:9001' }), []);
    assert.match(problems({ 'grpc-listen': '[::]:9000', 'http-listen': '127.0.0.1:9000' })[0]!, /^http-listen: 127\.0\.0\.1:9000 uses the same port as grpc-listen \(\[::\]:9000\)/);
  });

  it('retry-stall must outlast the daemon retry wait plus one poll, or be 0', () => {
    assert.match(problems({ 'retry-stall': '60s' })[0]!, /^retry-stall: 60s must be 0 \(off\) or longer than the daemon's longest gap between launch attempts \(90s\) plus one poll/);
    assert.deepEqual(problems({ 'retry-stall': '0ms' }), []);
    assert.match(problems({ 'retry-stall': '93s' })[0]!, /^retry-stall:/);
    assert.deepEqual(problems({ 'retry-stall': '94s' }), []);
  });

  it('route-header must not be a header the daemon or the gate reads', () => {
    for (const h of ['x-plugin-id', 'X-Plugin-Unique-Identifier', 'x-plugin-gate-reason', 'authorization', 'host']) {
      assert.match(problems({ 'route-header': h })[0] ?? '', /^route-header: ".*" is a header the daemon or the gate reads/, h);
    }
    assert.deepEqual(problems({ 'route-header': 'x-envoy-original-dst-host' }), []);
  });

  it('every broken relation is its own line, all reported at once', () => {
    const p = problems({ 'poll-interval': '15s', 'retry-stall': '10s', 'grpc-listen': '127.0.0.1:9000', 'admin-listen': '127.0.0.1:9000', 'route-header': 'x-plugin-id' });
    assert.equal(p.length, 4, p.join('\n'));
  });
});
