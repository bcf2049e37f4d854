/**
 * DnsDiscovery against a real dnsmasq on loopback: records change through its
 * hosts file (reloaded on SIGHUP), and a stopped dnsmasq is a failing resolver.
 * Needs the Debian package dnsmasq-base; without it this test fails, on purpose.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import type { GateError } from '../../src/core/errors.js';
import { DnsDiscovery } from '../../src/discovery/dns.js';

const DNSMASQ = '/usr/sbin/dnsmasq';
const NAME = 'pods.gate.test';
const PORT = 5002;

interface Call {
  readonly addresses: readonly string[];
  readonly error: GateError | undefined;
}

/** Collects listener calls and lets a test wait for the next one that matches. */
class Calls {
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
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', resolve);
  });
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

class Dnsmasq {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  port = 0;
  stderr = '';
  constructor(private readonly hostsFile: string, private readonly pidFile: string) {}

  async start(): Promise<void> {
    if (!existsSync(DNSMASQ)) {
      assert.fail(`${DNSMASQ} not found: install the Debian package dnsmasq-base (apt-get install -y dnsmasq-base) to run the DNS discovery test`);
    }
    // A UDP port free a moment ago may be taken on TCP (dnsmasq binds both): try a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = await freeUdpPort();
      const args = [
        '--keep-in-foreground',
        `--port=${this.port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        `--addn-hosts=${this.hostsFile}`,
        `--pid-file=${this.pidFile}`,
        '--conf-file=/dev/null',
        '--log-facility=-',
        // Names under gate.test are ours: unknown ones are NXDOMAIN, never forwarded.
        '--local=/gate.test/',
        // Keeps the name existing when it has no address: A/AAAA then answer NODATA (an empty answer), not NXDOMAIN.
        `--txt-record=${NAME},pods`,
        '--txt-record=empty.gate.test,none',
      ];
      if (process.getuid?.() === 0) args.push('--user=root');
      const child = spawn(DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      this.child = child;
      this.stderr = '';
      child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
      this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
      if (await this.answers()) return;
      await this.stop();
    }
    assert.fail(`dnsmasq did not start: ${this.stderr}`);
  }

  /** True once dnsmasq answers on its port; false if it exited or stayed silent for 5 s. */
  private async answers(): Promise<boolean> {
    const deadline = Date.now() + 5000;
    let gone = false;
    void this.exited.then(() => (gone = true));
    while (!gone && Date.now() < deadline) {
      const r = new Resolver({ timeout: 200, tries: 1 });
      r.setServers([`127.0.0.1:${this.port}`]);
      try {
        await r.resolveTxt(NAME);
        return true;
      } catch {
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    return false;
  }

  reload(): void {
    this.child?.kill('SIGHUP');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(t);
  }
}

describe('DnsDiscovery against dnsmasq', () => {
  let dir: string;
  let hosts: string;
  let dnsmasq: Dnsmasq;
  const discoveries: DnsDiscovery[] = [];

  const setHosts = (lines: string[]) => writeFileSync(hosts, lines.map((l) => l + '\n').join(''));
  const discovery = (name: string) => {
    const d = new DnsDiscovery({
      name: { host: name, port: PORT },
      server: { host: '127.0.0.1', port: dnsmasq.port },
      intervalMs: 50,
      timeoutMs: 500,
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
    const empty = new Calls();
    discovery('empty.gate.test').start(empty.listener);
    const e = await empty.next('empty answer', () => true);
    assert.deepEqual(e.addresses, []);
    assert.equal(e.error?.code, 'discovery_empty');

    const missing = new Calls();
    discovery('nope.gate.test').start(missing.listener);
    const m = await missing.next('NXDOMAIN', () => true);
    assert.deepEqual(m.addresses, []);
    assert.equal(m.error?.code, 'discovery_failed');
    assert.match(m.error!.message, /NXDOMAIN/);
  });

  it('pods appear and disappear with the records; failures keep the last good set', async () => {
    const calls = new Calls();
    discovery(NAME).start(calls.listener);
    const first = await calls.next('first answer', () => true);
    assert.deepEqual(first, { addresses: ['10.1.0.1:5002', '10.1.0.2:5002', '[fd00::5]:5002'], error: undefined });

    // A pod appears and another goes away.
    setHosts([`10.1.0.2 ${NAME}`, `10.1.0.3 ${NAME}`, `fd00::5 ${NAME}`]);
    dnsmasq.reload();
    const changed = await calls.next('changed set', (c) => c.addresses.includes('10.1.0.3:5002'));
    assert.deepEqual(changed, { addresses: ['10.1.0.2:5002', '10.1.0.3:5002', '[fd00::5]:5002'], error: undefined });

    // Every record gone: the fleet is kept, the emptiness reported.
    setHosts([]);
    dnsmasq.reload();
    const empty = await calls.next('empty answer', (c) => c.error !== undefined);
    assert.equal(empty.error?.code, 'discovery_empty');
    assert.deepEqual(empty.addresses, changed.addresses);

    setHosts([`10.1.0.4 ${NAME}`]);
    dnsmasq.reload();
    const back = await calls.next('records back', (c) => c.error === undefined);
    assert.deepEqual(back.addresses, ['10.1.0.4:5002']);

    // The resolver goes away: lookups fail, the last good set stays.
    await dnsmasq.stop();
    const failed = await calls.next('lookup failure', (c) => c.error !== undefined);
    assert.equal(failed.error?.code, 'discovery_failed');
    assert.deepEqual(failed.addresses, ['10.1.0.4:5002']);
    // Between the calls above the set only ever changed on purpose: never emptied.
    assert.ok(calls.all.every((c) => c.addresses.length > 0));
  });
});
