import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, configFor, helpText, loadConfig, parseDuration } from './config.js';
import { configProblems as problems } from '../../test/support/config-problems.js';
import { OPTIONS, fieldOf } from './options.js';
import { parseArgs } from '../cli/args.js';
import { TestPki } from '../../test/support/certs.js';

describe('configuration', () => {
  it('starts from defaults with only --targets', () => {
    const c = configFor({ targets: '10.0.0.11:5002,10.0.0.12:5002' });
    assert.deepEqual(c.targets, ['10.0.0.11:5002', '10.0.0.12:5002']);
    assert.deepEqual(c.grpcListen, { host: '0.0.0.0', port: 9191 });
    assert.deepEqual(c.httpListen, { host: '0.0.0.0', port: 9192 });
    assert.deepEqual(c.adminListen, { host: '0.0.0.0', port: 9190 });
    assert.equal(c.pollIntervalMs, 2_000);
    assert.equal(c.pollTimeoutMs, 1_000);
    assert.equal(c.daemonRetryLimit, 15);
    assert.equal(c.unreachableAfter, 3);
    assert.equal(c.staleAfterMs, 10_000);
    assert.deepEqual(c.sources, ['metrics', 'health-check']);
    assert.equal(c.decisionLog, 'denied');
  });

  it('flags beat environment beat file beat defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-config-'));
    const file = join(dir, 'gate.yaml');
    writeFileSync(file, 'targets: [10.0.0.1:5002]\npoll-interval: 3s\nstale-after: 20s\nretry-after: 7s\n');
    const c = loadConfig({
      file,
      env: { PLUGIN_GATE_POLL_INTERVAL: '4s', PLUGIN_GATE_STALE_AFTER: '30s' },
      flags: { 'poll-interval': '5s' },
    });
    assert.equal(c.pollIntervalMs, 5_000); // flag
    assert.equal(c.staleAfterMs, 30_000); // env
    assert.equal(c.retryAfterMs, 7_000); // file
    assert.deepEqual(c.targets, ['10.0.0.1:5002']); // file list
    assert.equal(c.unreachableAfter, 3); // default
  });

  it('an unknown PLUGIN_GATE_* variable is an error like an unknown key; PLUGIN_GATE_CONFIG and other prefixes are not', () => {
    const p = problems(() =>
      loadConfig({
        file: undefined,
        env: { PLUGIN_GATE_TARGETS: '10.0.0.1:5002', PLUGIN_GATE_POLL_INTERVALL: '3s', PLUGIN_GATE_CONFIG: '/nowhere', PATH: '/bin', PLUGINGATE_X: '1' },
        flags: {},
      }),
    );
    assert.deepEqual(p, ['PLUGIN_GATE_POLL_INTERVALL: unknown environment variable, no option is named so (see --help)']);
    const link = problems(() => loadConfig({ file: undefined, env: { PLUGIN_GATE_SERVICE_HOST: '10.96.0.5', PLUGIN_GATE_PORT_9191_TCP: 'tcp://10.96.0.5:9191' }, flags: { targets: '10.0.0.1:5002' } }));
    assert.equal(link.length, 2, link.join('\n'));
    for (const l of link) assert.match(l, /^PLUGIN_GATE_(SERVICE_HOST|PORT_9191_TCP): unknown environment variable.*Kubernetes Service link: set enableServiceLinks: false/);
  });

  it('the Config has one field per option, named from the key, and DEFAULTS is the table parsed', () => {
    const c = configFor({ targets: '10.0.0.1:5002' });
    assert.deepEqual(Object.keys(c).sort(), OPTIONS.map(fieldOf).sort());
    assert.equal(fieldOf(OPTIONS.find((o) => o.key === 'poll-interval')!), 'pollIntervalMs');
    assert.equal(fieldOf(OPTIONS.find((o) => o.key === 'poll-jitter')!), 'pollJitterPercent');
    for (const o of OPTIONS) {
      const field = fieldOf(o) as keyof typeof c;
      if (o.key === 'targets') continue; // the one option this Config was given
      assert.deepEqual(DEFAULTS[field], c[field], o.key);
    }
    assert.deepEqual(DEFAULTS.targets, []);
    assert.equal(DEFAULTS.dnsName, undefined);
    assert.equal(DEFAULTS.tlsReloadMs, 30_000);
    assert.equal(configFor({ targets: '10.0.0.1:5002', 'http-listen': 'off' }).httpListen, undefined);
  });

  it('reports every problem, one line each, naming the key, the value and what is allowed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-config-'));
    const file = join(dir, 'gate.yaml');
    writeFileSync(file, 'targets: 10.0.0.1:5002\nbogus-key: 1\n');
    const p = problems(() =>
      loadConfig({
        file,
        env: { PLUGIN_GATE_POLL_TIMEOUT: 'fast' },
        flags: { 'grpc-listen': 'nowhere', 'unknown-plugin': 'maybe', 'no-such-flag': 'x', 'poll-jitter': '99' },
      }),
    );
    assert.equal(p.length, 6, p.join('\n'));
    const has = (re: RegExp): void => assert.ok(p.some((l) => re.test(l)), `${re} in\n${p.join('\n')}`);
    has(/^bogus-key: unknown key/);
    has(/^poll-timeout: "fast" must be a duration/);
    has(/^grpc-listen: "nowhere" must be IP:port/);
    has(/^unknown-plugin: "maybe" must be one of allow, deny/);
    has(/^--no-such-flag: unknown option/);
    has(/^poll-jitter: "99" must be a whole number from 0 to 50/);
  });

  it('requires targets for static discovery and a name for DNS discovery', () => {
    assert.match(problems(() => configFor({}))[0]!, /^targets: \(unset\) is required/);
    assert.match(problems(() => configFor({ discovery: 'dns' }))[0]!, /^dns-name: \(unset\) is required/);
    const c = configFor({ discovery: 'dns', 'dns-name': 'plugin-daemon.dify.svc.cluster.local:5002', 'dns-server': '127.0.0.1:5353' });
    assert.deepEqual(c.dnsName, { host: 'plugin-daemon.dify.svc.cluster.local', port: 5002 });
    assert.deepEqual(c.dnsServer, { host: '127.0.0.1', port: 5353 });
  });

  it('rejects targets that are not IP:port and checks cross-key rules', () => {
    assert.match(problems(() => configFor({ targets: 'daemon:5002,10.0.0.1' }))[0]!, /^targets: .*not IP:port/);
    assert.match(problems(() => configFor({ targets: '10.0.0.1:1', 'startup-grace': '20m', 'startup-max': '10m' }))[0]!, /^startup-grace:/);
    assert.match(problems(() => configFor({ targets: '10.0.0.1:1', sources: 'metrics,prometheus' }))[0]!, /^sources: .*unknown entries prometheus/);
  });

  it('accepts IPv6 targets and http-listen off', () => {
    const c = configFor({ targets: '[::1]:5002', 'http-listen': 'off' });
    assert.deepEqual(c.targets, ['[::1]:5002']);
    assert.equal(c.httpListen, undefined);
  });

  it('parses durations', () => {
    assert.deepEqual(['250ms', '2s', '1.5s', '5m', '1h', '2', 's', '-1s'].map(parseDuration), [250, 2000, 1500, 300_000, 3_600_000, undefined, undefined, undefined]);
  });

  it('--help lists every option with its default and environment name', () => {
    const h = helpText();
    for (const o of OPTIONS) {
      assert.ok(h.includes(`--${o.key}`), o.key);
      assert.ok(h.includes('PLUGIN_GATE_' + o.key.toUpperCase().replace(/-/g, '_')), o.key);
    }
  });

  it('TLS: pairs of keys, one line per problem', () => {
    const base = { targets: '10.0.0.1:5002' };
    assert.deepEqual(problems(() => configFor({ ...base, 'tls-cert': '/etc/gate/tls.crt' })), [
      "tls-key: (unset) is required with tls-cert: the certificate's PEM private key",
    ]);
    assert.deepEqual(problems(() => configFor({ ...base, 'tls-key': '/etc/gate/tls.key' })), [
      'tls-key: "/etc/gate/tls.key" needs tls-cert, the certificate it belongs to',
    ]);
    assert.deepEqual(problems(() => configFor({ ...base, 'tls-client-ca': '/etc/gate/ca.crt' })), [
      'tls-client-ca: "/etc/gate/ca.crt" needs tls-cert and tls-key: mutual TLS needs the gate\'s own certificate',
    ]);
    assert.match(problems(() => configFor({ ...base, 'tls-reload': '10ms' }))[0]!, /^tls-reload: "10ms" must be between 100ms and 1h/);
    const c = configFor(base);
    assert.equal(c.tlsCert, undefined);
    assert.equal(c.tlsReloadMs, 30_000);
  });

  it('TLS: the files are read and checked at load time (so --check-config reports them)', () => {
    const pki = new TestPki('pg-config-tls-');
    try {
      const ca = pki.ca('cfg-ca');
      const gate = pki.leaf('cfg-gate', ca, 'server');
      const other = pki.leaf('cfg-other', ca, 'server');
      const notPem = pki.path('notes.txt');
      writeFileSync(notPem, 'not a certificate\n');
      const base = { targets: '10.0.0.1:5002' };
      const one = (flags: Record<string, string>, want: RegExp): void => {
        const p = problems(() => configFor({ ...base, ...flags }));
        assert.equal(p.length, 1, p.join('\n'));
        assert.match(p[0]!, want);
      };
      one({ 'tls-cert': pki.path('missing.crt'), 'tls-key': gate.key }, /^tls-cert: ".*missing\.crt" cannot be read: ENOENT$/);
      one({ 'tls-cert': notPem, 'tls-key': gate.key }, /^tls-cert: ".*notes\.txt" holds no PEM certificate/);
      one({ 'tls-cert': gate.cert, 'tls-key': notPem }, /^tls-key: ".*notes\.txt" holds no PEM private key/);
      one({ 'tls-cert': gate.cert, 'tls-key': other.key }, /^tls-key: ".*cfg-other\.key" does not match the certificate in tls-cert \(".*cfg-gate\.crt"\)$/);
      one({ 'tls-cert': gate.cert, 'tls-key': gate.key, 'tls-client-ca': notPem }, /^tls-client-ca: ".*notes\.txt" holds no PEM certificate/);
      one({ 'tls-cert': gate.cert, 'tls-key': gate.key, 'tls-client-ca': pki.path('nope.crt') }, /^tls-client-ca: ".*nope\.crt" cannot be read: ENOENT$/);

      const c = loadConfig({
        file: undefined,
        env: { PLUGIN_GATE_TLS_CERT: gate.cert, PLUGIN_GATE_TLS_KEY: gate.key },
        flags: { ...base, 'tls-client-ca': ca.cert, 'tls-reload': '250ms' },
      });
      assert.equal(c.tlsCert, gate.cert);
      assert.equal(c.tlsKey, gate.key);
      assert.equal(c.tlsClientCa, ca.cert);
      assert.equal(c.tlsReloadMs, 250);
    } finally {
      pki.remove();
    }
  });

  it('parses flags in both spellings and bare booleans', () => {
    const a = parseArgs(['--targets', '10.0.0.1:5002', '--poll-interval=3s', '--dry-run', '--config', 'x.yaml', '--check-config']);
    assert.deepEqual(a.flags, { targets: '10.0.0.1:5002', 'poll-interval': '3s', 'dry-run': 'true' });
    assert.equal(a.configFile, 'x.yaml');
    assert.equal(a.checkConfig, true);
    assert.deepEqual(parseArgs(['stray', '--targets']).problems, ['stray: unexpected argument (options are --key value)', '--targets: needs a value']);
  });
});
