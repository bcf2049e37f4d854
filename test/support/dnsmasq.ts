/**
 * A real dnsmasq on loopback for tests: records come from a hosts file that a
 * test rewrites and reloads with SIGHUP. Needs the Debian package dnsmasq-base;
 * without it a test that uses this fails, on purpose.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';

const DNSMASQ = '/usr/sbin/dnsmasq';
/** Names under gate.test are the tests' own. */
export const NAME = 'pods.gate.test';

export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', resolve);
  });
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export class Dnsmasq {
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
