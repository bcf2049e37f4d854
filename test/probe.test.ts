/**
 * `plugin-gate probe` against a simulated daemon over real loopback HTTP: each
 * readiness rule, as the kubelet would see it on /readyz and /status. Daemon
 * time is a ManualScheduler shared with the probe as its clock, and polls are
 * triggered on demand, so nothing here sleeps or races the machine's load.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualScheduler } from './support/manual-scheduler.js';
import { SimDaemon, type SimDaemonOptions } from '../src/sim/daemon.js';
import { probeConfigFor } from '../src/probe/config.js';
import { startProbe, type RunningProbe } from '../src/probe/probe.js';
import { createLogger } from '../src/observe/logger.js';
import { neverPolls } from './support/gate.js';

/** Port ephemeral, logs silent; no background polls (neverPolls): the tests poll with pollNow(). */
const FLAGS = { listen: '127.0.0.1:0', 'poll-timeout': '1s', 'log-level': 'silent' };

interface Answer {
  readonly status: number;
  readonly body: string;
}

interface StatusDoc {
  ready: boolean;
  reason: string;
  missing: { plugin_id: string | null; state: string; why: string }[];
  latch: { since: string; process_start: string | null } | null;
  daemon: { state: string; plugins: Record<string, { state: string }> } | null;
}

class Rig {
  readonly probes: RunningProbe[] = [];
  constructor(
    readonly sched: ManualScheduler,
    readonly daemon: SimDaemon,
  ) {}

  async probe(flags: Record<string, string> = {}): Promise<RunningProbe> {
    const p = await startProbe(probeConfigFor({ ...FLAGS, target: this.daemon.address, ...flags }), { scheduler: this.sched, logger: createLogger('silent'), pollScheduler: neverPolls(this.sched) });
    this.probes.push(p);
    return p;
  }

  /** Moves daemon time, then polls with every probe. */
  async advance(ms: number): Promise<void> {
    this.sched.advance(ms);
    await Promise.all(this.probes.map((p) => p.pollNow()));
  }

  async close(): Promise<void> {
    await Promise.all(this.probes.map((p) => p.close()));
    await this.daemon.close();
  }
}

const rigs: Rig[] = [];
after(async () => {
  await Promise.all(rigs.map((r) => r.close()));
});

async function rig(opts: Omit<SimDaemonOptions, 'name' | 'scheduler'>): Promise<Rig> {
  const sched = new ManualScheduler(Date.UTC(2026, 0, 1));
  const daemon = new SimDaemon({ name: 'pod-1', scheduler: sched, ...opts });
  await daemon.start();
  const r = new Rig(sched, daemon);
  rigs.push(r);
  return r;
}

async function get(p: RunningProbe, path: string): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${p.port}${path}`);
  return { status: res.status, body: await res.text() };
}

async function readyz(p: RunningProbe): Promise<number> {
  return (await get(p, '/readyz')).status;
}

async function status(p: RunningProbe): Promise<StatusDoc & { code: number }> {
  const a = await get(p, '/status');
  return { ...(JSON.parse(a.body) as StatusDoc), code: a.status };
}

const missingIds = (s: StatusDoc): (string | null)[] => s.missing.map((m) => m.plugin_id);

describe('plugin-gate probe: readiness from the daemon\'s plugins', () => {
  it('a cold daemon is unready until its plugins run and its start-up is over; /status names what is missing', async () => {
    const r = await rig({
      plugins: [
        { id: 'a/one', launchMs: 10_000 },
        { id: 'a/two', launchMs: 10_000 },
        { id: 'a/three', launchMs: 10_000 },
      ],
    });
    const p = await r.probe();
    assert.equal(await readyz(p), 503, 'not polled yet counts as unready');
    await r.advance(0);
    let s = await status(p);
    assert.equal(s.code, 503);
    assert.equal(s.reason, 'plugins_starting');
    assert.deepEqual(missingIds(s), ['a/one', 'a/two', null], 'the launching plugins, and the start-up (a/three is queued with no series yet)');
    const text = (await get(p, '/readyz')).body;
    assert.match(text, /^not ready: 2 plugins starting/);
    assert.match(text, /a\/one: starting: launching/);

    await r.advance(10_000);
    s = await status(p);
    assert.equal(s.code, 503);
    assert.deepEqual(missingIds(s), ['a/three', null]);

    await r.advance(10_000);
    s = await status(p);
    assert.equal(s.daemon?.plugins['a/three']?.state, 'ready');
    assert.equal(s.reason, 'daemon_in_startup', 'all running, but younger than startup-grace: a queued plugin would not show yet');
    assert.equal(await readyz(p), 503);

    await r.advance(41_000); // past the 60 s start-up grace
    s = await status(p);
    assert.equal(s.code, 200);
    assert.equal(s.reason, 'ready');
    assert.deepEqual(s.missing, []);
    assert.equal(await readyz(p), 200);
  });

  it('a plugin that gave up: ready with --failed ignore, unready with --failed block', async () => {
    const r = await rig({
      retryLimit: 3,
      plugins: [
        { id: 'a/good', launchMs: 1_000 },
        { id: 'a/bad', launchMs: 1_000, failures: 'always' },
      ],
    });
    const ignore = await r.probe({ 'daemon-retry-limit': '3' });
    const block = await r.probe({ 'daemon-retry-limit': '3', failed: 'block' });
    await r.advance(2_000);
    // Retrying: starting for both policies (it may still start).
    for (const p of [ignore, block]) {
      const s = await status(p);
      assert.equal(s.code, 503);
      assert.ok(missingIds(s).includes('a/bad'));
      assert.equal(s.daemon?.plugins['a/bad']?.state, 'starting');
    }
    await r.advance(600_000);
    const si = await status(ignore);
    assert.equal(si.daemon?.plugins['a/bad']?.state, 'failed');
    assert.equal(si.code, 200, JSON.stringify(si));
    assert.equal(si.reason, 'ready');
    const sb = await status(block);
    assert.equal(sb.code, 503);
    assert.equal(sb.reason, 'plugins_failed');
    assert.deepEqual(missingIds(sb), ['a/bad']);
    assert.match(sb.missing[0]!.why, /gave up after 3 failed launches/);
  });

  it('--require: ready once the required plugins run, whatever the rest do; a required plugin that gave up keeps it unready', async () => {
    const r = await rig({
      retryLimit: 2,
      plugins: [
        { id: 'a/fast', launchMs: 1_000 },
        { id: 'a/slow', launchMs: 300_000 },
        { id: 'a/bad', launchMs: 1_000, failures: 'always' },
      ],
    });
    const fast = await r.probe({ require: 'a/fast', 'daemon-retry-limit': '2' });
    const bad = await r.probe({ require: 'a/fast,a/bad', 'daemon-retry-limit': '2' });
    const all = await r.probe({ 'daemon-retry-limit': '2' });
    await r.advance(0);
    let s = await status(fast);
    assert.equal(s.reason, 'required_not_running');
    assert.deepEqual(missingIds(s), ['a/fast']);

    await r.advance(1_000);
    assert.equal(await readyz(fast), 200, 'a/fast runs: ready though a/slow is launching and the daemon is young');
    assert.equal(await readyz(all), 503, 'the default rule still waits for a/slow');

    await r.advance(120_000);
    s = await status(bad);
    assert.equal(s.daemon?.plugins['a/bad']?.state, 'failed');
    assert.equal(s.code, 503);
    assert.equal(s.reason, 'required_failed', 'gave up: no --failed setting makes a required plugin optional');
    assert.deepEqual(missingIds(s), ['a/bad']);
  });

  it('--min-running: ready once that fraction of the reported plugins runs', async () => {
    const r = await rig({
      plugins: [
        { id: 'a/one', launchMs: 1_000 },
        { id: 'a/two', launchMs: 1_000 },
        { id: 'a/three', launchMs: 100_000 },
        { id: 'a/four', launchMs: 100_000 },
      ],
    });
    const half = await r.probe({ 'min-running': '0.5' });
    const most = await r.probe({ 'min-running': '0.75' });
    await r.advance(0);
    let s = await status(half);
    assert.equal(s.reason, 'too_few_running');
    assert.equal(s.code, 503);

    await r.advance(1_000); // one, two running; three, four launching
    s = await status(half);
    assert.equal(s.code, 200, JSON.stringify(s));
    s = await status(most);
    assert.equal(s.code, 503);
    assert.equal(s.reason, 'too_few_running');
    assert.deepEqual(missingIds(s).sort(), ['a/four', 'a/three']);

    await r.advance(100_000);
    assert.equal(await readyz(most), 200);
  });

  it('the latch holds through later plugin trouble; without it the pod flaps out', async () => {
    const r = await rig({ plugins: [{ id: 'a/one', launchMs: 1_000 }, { id: 'a/two', launchMs: 1_000 }] });
    const latched = await r.probe();
    const unlatched = await r.probe({ latch: 'false' });
    await r.advance(61_000);
    assert.equal(await readyz(latched), 200);
    assert.equal(await readyz(unlatched), 200);
    assert.notEqual((await status(latched)).latch, null);

    // a/two's runtime stops and is launched again, and that launch keeps failing:
    // the gauge goes 1 → 0 → 0.5 → 0 with failures, as after a crash.
    r.daemon.uninstall('a/two');
    r.daemon.install({ id: 'a/two', launchMs: 5_000, failures: 'always' });
    await r.advance(1_000);
    const s = await status(latched);
    assert.equal(s.daemon?.plugins['a/two']?.state, 'starting');
    assert.equal(s.code, 200);
    assert.equal(s.reason, 'latched');
    // A launching plugin puts the daemon back "in start-up" by the gate's rules (S4): both are listed.
    assert.deepEqual(missingIds(s), ['a/two', null], 'the latch says what it rides over');
    const u = await status(unlatched);
    assert.equal(u.code, 503);
    assert.equal(u.reason, 'plugins_starting');

    await r.advance(900_000); // a/two gives up for good
    assert.equal((await status(latched)).daemon?.plugins['a/two']?.state, 'failed');
    assert.equal(await readyz(latched), 200);
  });

  it('a daemon restart (new process_start_time_seconds) resets the latch', async () => {
    const r = await rig({ plugins: [{ id: 'a/one', launchMs: 30_000 }] });
    const p = await r.probe();
    await r.advance(61_000);
    assert.equal(await readyz(p), 200);
    const before = (await status(p)).latch;
    assert.ok(before?.process_start);

    const restarted = r.daemon.restart({ downMs: 2_000 });
    r.sched.advance(2_000);
    await restarted;
    await r.advance(0);
    const s = await status(p);
    assert.equal(s.code, 503, JSON.stringify(s));
    assert.equal(s.latch, null);
    assert.equal(s.reason, 'plugins_starting');
    assert.deepEqual(missingIds(s), ['a/one', null]);

    await r.advance(61_000);
    const again = await status(p);
    assert.equal(again.code, 200);
    assert.notEqual(again.latch?.process_start, before.process_start, 'latched again, for the new process');
  });

  it('an unreachable daemon is unready with a reason, latched or not, and ready again when it answers', async () => {
    const r = await rig({ plugins: [{ id: 'a/one', launchMs: 1_000 }] });
    const p = await r.probe({ 'unreachable-after': '2' });
    await r.advance(61_000);
    assert.equal(await readyz(p), 200);

    await r.daemon.setMode('refuse');
    await r.advance(1_000);
    await r.advance(1_000);
    const s = await status(p);
    assert.equal(s.code, 503);
    assert.equal(s.reason, 'daemon_unreachable');
    assert.match(s.missing[0]!.why, /did not answer 2 polls in a row: status_refused/);
    assert.match((await get(p, '/readyz')).body, /^not ready: the daemon did not answer/);
    assert.notEqual(s.latch, null, 'the latch is kept for the same process');

    await r.daemon.setMode('normal');
    await r.advance(1_000);
    assert.equal(await readyz(p), 200, 'same process: the latch still holds');
  });

  it('a daemon that never answered is unready from the first poll', async () => {
    const r = await rig({ plugins: [] });
    await r.daemon.setMode('refuse');
    const p = await r.probe({ 'unreachable-after': '1' });
    await r.advance(0);
    const s = await status(p);
    assert.equal(s.code, 503);
    assert.equal(s.reason, 'daemon_unreachable');
    assert.equal(s.daemon?.state, 'unreachable');
  });

  it('serves Prometheus metrics and /healthz', async () => {
    const r = await rig({ plugins: [{ id: 'a/one', launchMs: 1_000 }] });
    const p = await r.probe();
    await r.advance(0);
    assert.equal((await get(p, '/healthz')).status, 200);
    let m = (await get(p, '/metrics')).body;
    assert.match(m, /^plugin_gate_probe_ready 0$/m);
    assert.match(m, /^plugin_gate_probe_reason\{reason="plugins_starting"\} 1$/m);
    assert.match(m, /^plugin_gate_probe_plugins\{state="starting"\} 1$/m);
    assert.match(m, /^plugin_gate_polls_total\{source="metrics",code="ok"\} [1-9]\d*$/m);
    await r.advance(61_000);
    m = (await get(p, '/metrics')).body;
    assert.match(m, /^plugin_gate_probe_ready 1$/m);
    assert.match(m, /^plugin_gate_probe_latched 1$/m);
    assert.match(m, /^plugin_gate_probe_flips_total\{to="ready"\} 1$/m);
    assert.equal((await get(p, '/nope')).status, 404);
  });
});
