import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GateError } from '../core/errors.js';
import { configFor } from '../config/config.js';
import { DnsDiscovery, dnsDiscoveryFor, type ResolverLike } from './dns.js';
import { ManualScheduler, settle } from '../../test/support/manual-scheduler.js';

type Answer = string[] | string; // records, or an error code

function dnsError(code: string): Error {
  return Object.assign(new Error(`query failed: ${code}`), { code });
}

/** A resolver answering from mutable state; `hang` leaves queries open until cancel(). */
class FakeDns {
  v4: Answer = [];
  v6: Answer = 'ENODATA';
  hang = false;
  lookups = 0;
  cancels = 0;
  newResolver = (): ResolverLike => {
    this.lookups++;
    const open: ((e: Error) => void)[] = [];
    const answer = (a: Answer) =>
      this.hang
        ? new Promise<string[]>((_, reject) => open.push(reject))
        : typeof a === 'string'
          ? Promise.reject(dnsError(a))
          : Promise.resolve([...a]);
    return {
      resolve4: () => answer(this.v4),
      resolve6: () => answer(this.v6),
      cancel: () => {
        this.cancels++;
        for (const r of open.splice(0)) r(dnsError('ECANCELLED'));
      },
    };
  };
}

const INTERVAL = 5000;
const TIMEOUT = 2000;

function setup(listener?: (a: readonly string[], e: GateError | undefined) => void) {
  const dns = new FakeDns();
  const sched = new ManualScheduler(0);
  const calls: { addresses: readonly string[]; error: GateError | undefined }[] = [];
  const errors: GateError[] = [];
  const d = new DnsDiscovery({
    name: { host: 'plugin-daemon-headless.dify.svc.cluster.local', port: 5002 },
    intervalMs: INTERVAL,
    timeoutMs: TIMEOUT,
    scheduler: sched,
    newResolver: dns.newResolver,
    onError: (e) => errors.push(e),
  });
  const start = () => d.start(listener ?? ((addresses, error) => calls.push({ addresses, error })));
  /** Lets the interval pass and the next lookup finish. */
  const tick = async () => {
    sched.advance(INTERVAL);
    await settle();
  };
  return { dns, sched, calls, errors, d, start, tick };
}

describe('DnsDiscovery', () => {
  it('merges A and AAAA into sorted, deduplicated IP:port / [v6]:port', async () => {
    const { dns, calls, d, start } = setup();
    dns.v4 = ['10.0.0.2', '10.0.0.1', '10.0.0.2'];
    dns.v6 = ['fd00::1'];
    start();
    await settle();
    assert.deepEqual(calls, [{ addresses: ['10.0.0.1:5002', '10.0.0.2:5002', '[fd00::1]:5002'], error: undefined }]);
    await d.stop();
  });

  it('looks up every interval and reports only when the set changes', async () => {
    const { dns, calls, d, start, tick, sched } = setup();
    dns.v4 = ['10.0.0.1'];
    start();
    await settle();
    assert.deepEqual(sched.delays(), [INTERVAL]);
    await tick();
    await tick();
    assert.equal(dns.lookups, 3);
    assert.equal(calls.length, 1);
    dns.v4 = ['10.0.0.1', '10.0.0.3'];
    await tick();
    assert.deepEqual(calls.at(-1), { addresses: ['10.0.0.1:5002', '10.0.0.3:5002'], error: undefined });
    dns.v4 = ['10.0.0.3'];
    await tick();
    assert.deepEqual(calls.at(-1), { addresses: ['10.0.0.3:5002'], error: undefined });
    assert.equal(calls.length, 3);
    await d.stop();
  });

  for (const code of ['ESERVFAIL', 'ENOTFOUND', 'EREFUSED', 'ECONNREFUSED']) {
    it(`a failed lookup (${code}) keeps the last good set and reports discovery_failed once, then recovers`, async () => {
      const { dns, calls, d, start, tick } = setup();
      dns.v4 = ['10.0.0.1'];
      start();
      await settle();
      dns.v4 = code;
      dns.v6 = code;
      await tick();
      assert.equal(calls.length, 2);
      assert.deepEqual(calls[1]!.addresses, ['10.0.0.1:5002']);
      assert.equal(calls[1]!.error?.code, 'discovery_failed');
      await tick();
      assert.equal(calls.length, 2, 'the same failure again is not a change');
      dns.v4 = ['10.0.0.1'];
      dns.v6 = 'ENODATA';
      await tick();
      assert.deepEqual(calls[2], { addresses: ['10.0.0.1:5002'], error: undefined });
      await d.stop();
    });
  }

  it('one family failing makes the whole answer unusable (its pods would vanish)', async () => {
    const { dns, calls, d, start, tick } = setup();
    dns.v4 = ['10.0.0.1'];
    dns.v6 = ['fd00::1'];
    start();
    await settle();
    dns.v6 = 'ETIMEOUT';
    await tick();
    assert.deepEqual(calls[1]!.addresses, ['10.0.0.1:5002', '[fd00::1]:5002']);
    assert.equal(calls[1]!.error?.code, 'discovery_failed');
    assert.match(calls[1]!.error!.message, /no answer within 2000ms/);
    await d.stop();
  });

  it('a lookup that never answers is cancelled at dns-timeout and counts as failed', async () => {
    const { dns, sched, calls, d, start } = setup();
    dns.hang = true;
    start();
    await settle();
    assert.deepEqual(sched.delays(), [TIMEOUT]);
    sched.advance(TIMEOUT);
    await settle();
    assert.equal(dns.cancels, 1);
    assert.deepEqual(calls, [{ addresses: [], error: calls[0]!.error }]);
    assert.equal(calls[0]!.error?.code, 'discovery_failed');
    assert.deepEqual(sched.delays(), [INTERVAL], 'the deadline timer is gone, the next lookup is scheduled');
    await d.stop();
  });

  it('a first failed lookup reports the empty set with discovery_failed', async () => {
    const { dns, calls, d, start } = setup();
    dns.v4 = 'ENOTFOUND';
    dns.v6 = 'ENOTFOUND';
    start();
    await settle();
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.addresses, []);
    assert.equal(calls[0]!.error?.code, 'discovery_failed');
    assert.match(calls[0]!.error!.message, /NXDOMAIN/);
    await d.stop();
  });

  it('a first empty answer reports the empty set with discovery_empty', async () => {
    const { dns, calls, d, start, tick } = setup();
    dns.v4 = 'ENODATA';
    start();
    await settle();
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.addresses, []);
    assert.equal(calls[0]!.error?.code, 'discovery_empty');
    dns.v4 = ['10.0.0.1'];
    await tick();
    assert.deepEqual(calls[1], { addresses: ['10.0.0.1:5002'], error: undefined });
    await d.stop();
  });

  it('an empty answer later keeps the last set and reports discovery_empty: DNS never empties the fleet', async () => {
    const { dns, calls, d, start, tick } = setup();
    dns.v4 = ['10.0.0.1', '10.0.0.2'];
    start();
    await settle();
    dns.v4 = [];
    await tick();
    assert.deepEqual(calls[1]!.addresses, ['10.0.0.1:5002', '10.0.0.2:5002']);
    assert.equal(calls[1]!.error?.code, 'discovery_empty');
    await d.stop();
  });

  it('a listener that throws goes to onError and discovery goes on', async () => {
    const { dns, errors, d, start, tick } = setup(() => {
      throw new Error('consumer bug');
    });
    dns.v4 = ['10.0.0.1'];
    start();
    await settle();
    dns.v4 = ['10.0.0.2'];
    await tick();
    assert.equal(errors.length, 2);
    assert.equal(errors[0]!.code, 'internal');
    assert.equal(dns.lookups, 2);
    await d.stop();
  });

  it('stop() cancels an open lookup, clears timers and calls no listener after', async () => {
    const { dns, sched, calls, d, start } = setup();
    dns.hang = true;
    start();
    await settle();
    await d.stop();
    assert.equal(dns.cancels, 1);
    assert.equal(sched.pending(), 0);
    assert.equal(calls.length, 0);
    d.start(() => assert.fail('restarted'));
    await settle();
    assert.equal(dns.lookups, 1);
  });

  it('stop() while waiting for the next lookup ends the loop at once', async () => {
    const { dns, sched, d, start } = setup();
    dns.v4 = ['10.0.0.1'];
    start();
    await settle();
    assert.equal(sched.pending(), 1);
    await d.stop();
    assert.equal(sched.pending(), 0);
    assert.equal(dns.lookups, 1);
  });

  it('dnsDiscoveryFor builds from dns-name, dns-server, dns-interval, dns-timeout', () => {
    const cfg = configFor({ discovery: 'dns', 'dns-name': 'daemon.test:5002', 'dns-server': '127.0.0.1:53', 'dns-interval': '1s', 'dns-timeout': '500ms' });
    assert.ok(dnsDiscoveryFor(cfg) instanceof DnsDiscovery);
    assert.throws(() => dnsDiscoveryFor({ ...cfg, dnsName: undefined }), (e: unknown) => e instanceof GateError && e.code === 'config_invalid');
  });
});
