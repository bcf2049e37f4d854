import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configFor } from '../config/config.js';
import { DnsDiscovery } from './dns.js';
import { discoveryFor } from './from-config.js';
import { StaticDiscovery } from './static.js';

describe('StaticDiscovery', () => {
  it('reports the targets once, sorted, deduplicated and in canonical form, with no error', async () => {
    const d = new StaticDiscovery(['10.0.0.2:5002', '[::1]:5002', '10.0.0.1:5002', '10.0.0.2:5002', ' 10.0.0.3:5002 ']);
    const calls: [readonly string[], unknown][] = [];
    d.start((a, e) => calls.push([a, e]));
    assert.deepEqual(calls, [[['10.0.0.1:5002', '10.0.0.2:5002', '10.0.0.3:5002', '[::1]:5002'], undefined]]);
    assert.ok(Object.isFrozen(calls[0]![0]));
    await d.stop();
    assert.equal(calls.length, 1);
  });
});

describe('discoveryFor', () => {
  it('picks the discovery the configuration names', () => {
    assert.ok(discoveryFor(configFor({ targets: '10.0.0.1:5002' })) instanceof StaticDiscovery);
    assert.ok(discoveryFor(configFor({ discovery: 'dns', 'dns-name': 'daemon.test:5002' })) instanceof DnsDiscovery);
  });
});
