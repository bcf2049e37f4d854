/**
 * DnsDiscovery against a real dnsmasq on loopback: records change through its
 * hosts file (reloaded on SIGHUP), and a stopped dnsmasq is a failing resolver.
 * Needs the Debian package dnsmasq-base; without it this test fails, on purpose.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GateError } from '../../src/core/errors.js';
import { DnsDiscovery } from '../../src/discovery/dns.js';
import { Dnsmasq, NAME } from '../support/dnsmasq.js';
import { ManualScheduler } from '../support/manual-scheduler.js';

const PORT = 5002;
const INTERVAL_MS = 50;

interface Call {
  readonly addresses: readonly string[];
  readonly error: GateError | undefined;
}

/**
 * Collects listener calls and lets a test wait for the next one that matches,
 * moving the discovery's manual time one interval per short real pause so the
 * next lookup (real DNS on loopback) starts.
 */
class Calls {
  constructor(private readonly sched: ManualScheduler) {}
  readonly all: Call[] = [];
  private seen = 0;
  private wake: (() => void) | undefined;
  readonly listener = (addresses: readonly string[], error: GateError | undefined): void => {
    this.all.push({ addresses, error });
    this.wake?.();
  };
  async next(what: string, match: (c: Call) => boolean, ms = 5000): Promise<Call> {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.seen < this.all.length) {
        const c = this.all[this.seen++]!;
        if (match(c)) return c;
      }
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`${what}: not reported within ${ms}ms; calls so far: ${JSON.stringify(this.all.map((c) => [c.addresses, c.error?.code]))}`);
      this.sched.advance(INTERVAL_MS);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 10));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}


describe('DnsDiscovery against dnsmasq', () => {
  let dir: string;
  let hosts: string;
  let dnsmasq: Dnsmasq;
  const discoveries: DnsDiscovery[] = [];
  const sched = new ManualScheduler(Date.now());

  const setHosts = (lines: string[]) => writeFileSync(hosts, lines.map((l) => l + '\n').join(''));
  const discovery = (name: string) => {
    const d = new DnsDiscovery({
      name: { host: name, port: PORT },
      server: { host: '127.0.0.1', port: dnsmasq.port },
      intervalMs: INTERVAL_MS,
      // The lookup deadline runs on the manual time the test moves: far enough that a
      // slow real answer is never cut short by the test's own stepping.
      timeoutMs: 60_000,
      scheduler: sched,
    });
    discoveries.push(d);
    return d;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gate-dns-'));
    hosts = join(dir, 'hosts');
    setHosts([`10.1.0.2 ${NAME}`, `10.1.0.1 ${NAME}`, `fd00::5 ${NAME}`]);
    dnsmasq = new Dnsmasq(hosts, join(dir, 'dnsmasq.pid'));
    await dnsmasq.start();
  });

  after(async () => {
    for (const d of discoveries) await d.stop();
    await dnsmasq?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('a name with no records reports the empty set with discovery_empty; an unknown name discovery_failed', async () => {
    const empty = new Calls(sched);
    discovery('empty.gate.test').start(empty.listener);
    const e = await empty.next('empty answer', () => true);
    assert.deepEqual(e.addresses, []);
    assert.equal(e.error?.code, 'discovery_empty');

    const missing = new Calls(sched);
    discovery('nope.gate.test').start(missing.listener);
    const m = await missing.next('NXDOMAIN', () => true);
    assert.deepEqual(m.addresses, []);
    assert.equal(m.error?.code, 'discovery_failed');
    assert.match(m.error!.message, /NXDOMAIN/);
  });

  it('pods appear and disappear with the records; failures keep the last good set', async () => {
    const calls = new Calls(sched);
    discovery(NAME).start(calls.listener);
    const first = await calls.next('first answer', () => true);
    assert.deepEqual(first, { addresses: ['10.1.0.1:5002', '10.1.0.2:5002', '[fd00::5]:5002'], error: undefined });

    // A pod appears and another goes away.
    setHosts([`10.1.0.2 ${NAME}`, `10.1.0.3 ${NAME}`, `fd00::5 ${NAME}`]);
    dnsmasq.reload();
    // Matched on the whole answer: right around a SIGHUP dnsmasq may answer one family from the
    // old records or none, and a lookup every few ms of real time meets that now and then.
    const changed = await calls.next('changed set', (c) => c.error === undefined && c.addresses.join() === '10.1.0.2:5002,10.1.0.3:5002,[fd00::5]:5002');
    assert.deepEqual(changed, { addresses: ['10.1.0.2:5002', '10.1.0.3:5002', '[fd00::5]:5002'], error: undefined });

    // Every record gone: the fleet is kept, the emptiness reported.
    setHosts([]);
    dnsmasq.reload();
    const empty = await calls.next('empty answer', (c) => c.error?.code === 'discovery_empty');
    assert.equal(empty.error?.code, 'discovery_empty');
    // The fleet is kept as last reported (normally `changed`; a lookup whose A and AAAA answers straddled
    // the reload may have reported one family's new records just before).
    assert.deepEqual(empty.addresses, calls.all[calls.all.indexOf(empty) - 1]?.addresses);
    assert.ok(empty.addresses.length > 0);

    setHosts([`10.1.0.4 ${NAME}`]);
    dnsmasq.reload();
    const back = await calls.next('records back', (c) => c.error === undefined && c.addresses.join() === '10.1.0.4:5002');
    assert.deepEqual(back.addresses, ['10.1.0.4:5002']);

    // The resolver goes away: lookups fail, the last good set stays.
    await dnsmasq.stop();
    const failed = await calls.next('lookup failure', (c) => c.error?.code === 'discovery_failed');
    assert.equal(failed.error?.code, 'discovery_failed');
    assert.deepEqual(failed.addresses, ['10.1.0.4:5002']);
    // Between the calls above the set only ever changed on purpose: never emptied.
    assert.ok(calls.all.every((c) => c.addresses.length > 0));
  });
});
