import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { choosePort, portSpecOf } from './kubernetes.js';

describe('Kubernetes discovery: the daemon port of a slice', () => {
  const ports = [
    { name: 'http', port: 5002, protocol: 'TCP' },
    { name: 'debug', port: 5003, protocol: 'TCP' },
  ];

  it('a number is used as given; a name is looked up in the slice', () => {
    assert.deepEqual(portSpecOf('5002'), { kind: 'number', port: 5002 });
    assert.deepEqual(portSpecOf('http'), { kind: 'name', name: 'http' });
    assert.equal(choosePort(ports, portSpecOf('7000')), 7000);
    assert.equal(choosePort(ports, portSpecOf('http')), 5002);
    assert.equal(choosePort(ports, portSpecOf('debug')), 5003);
  });

  it('unset takes the only port, and says why when there is not exactly one', () => {
    assert.equal(choosePort([{ name: '', port: 5002 }], portSpecOf(undefined)), 5002);
    assert.match(String(choosePort(ports, portSpecOf(undefined))), /^2 ports, so kubernetes-port must name one/);
    assert.match(String(choosePort([], portSpecOf(undefined))), /^0 ports/);
  });

  it('a missing name or a port without a number is a reason, naming the option', () => {
    assert.match(String(choosePort(ports, portSpecOf('grpc'))), /no port named "grpc" \(has "http", "debug"\); set kubernetes-port/);
    assert.match(String(choosePort([{ name: 'http' }], portSpecOf('http'))), /no port named "http"/);
    assert.match(String(choosePort([{ name: 'x', port: 0 }], portSpecOf(undefined))), /has no number/);
    assert.match(String(choosePort('garbage', portSpecOf(undefined))), /^0 ports/);
  });
});
