import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeaderCollector, REQUEST_LIMITS, makeGateRequest } from './service.js';

describe('HeaderCollector', () => {
  it('lower-cases names and joins repeated headers with ","', () => {
    const h = new HeaderCollector();
    h.add('X-Plugin-ID', 'a/b');
    h.add('Accept', 'text/plain');
    h.add('accept', 'application/json');
    const get = h.lookup();
    assert.equal(get('x-plugin-id'), 'a/b');
    assert.equal(get('accept'), 'text/plain,application/json');
    // callers should ask in lower case, but a mixed-case question still finds it
    assert.equal(get('X-Plugin-Id'), 'a/b');
    assert.equal(get('missing'), undefined);
  });

  it('treats __proto__ and constructor as ordinary header names', () => {
    const h = new HeaderCollector();
    h.add('__proto__', 'x');
    h.add('constructor', 'y');
    const get = h.lookup();
    assert.equal(get('__proto__'), 'x');
    assert.equal(get('constructor'), 'y');
    assert.equal(get('toString'), undefined);
  });

  it('keeps at most maxHeaders names, still joining names it already has', () => {
    const h = new HeaderCollector();
    h.add('first', '1');
    for (let i = 0; i < REQUEST_LIMITS.maxHeaders * 4; i++) h.add(`h-${i}`, 'v');
    h.add('first', '2');
    h.add('late-name', 'dropped');
    assert.equal(h.size, REQUEST_LIMITS.maxHeaders);
    const get = h.lookup();
    assert.equal(get('first'), '1,2');
    assert.equal(get('late-name'), undefined);
  });

  it('truncates long values and long joins, ignores absurd names', () => {
    const h = new HeaderCollector();
    h.add('big', 'x'.repeat(REQUEST_LIMITS.maxHeaderValueLength * 3));
    for (let i = 0; i < 10_000; i++) h.add('many', 'abcdefgh');
    h.add('n'.repeat(REQUEST_LIMITS.maxHeaderNameLength + 1), 'v');
    h.add('', 'v');
    const get = h.lookup();
    assert.equal(get('big')!.length, REQUEST_LIMITS.maxHeaderValueLength);
    assert.equal(get('many')!.length, REQUEST_LIMITS.maxHeaderValueLength);
    assert.equal(h.size, 2);
  });

  it('set replaces a value', () => {
    const h = new HeaderCollector();
    h.add('host', 'gate.local');
    h.set('Host', 'api.example.com');
    assert.equal(h.lookup()('host'), 'api.example.com');
  });
});

describe('makeGateRequest', () => {
  it('caps method, path and request id; empty request id is absent', () => {
    const r = makeGateRequest({
      method: 'M'.repeat(1000),
      path: '/' + 'p'.repeat(REQUEST_LIMITS.maxPathLength * 2),
      headers: new HeaderCollector(),
      requestId: 'r'.repeat(10_000),
    });
    assert.equal(r.method.length, REQUEST_LIMITS.maxMethodLength);
    assert.equal(r.path.length, REQUEST_LIMITS.maxPathLength);
    assert.equal(r.requestId!.length, REQUEST_LIMITS.maxRequestIdLength);
    assert.equal(r.contextExtensions.size, 0);
    assert.equal(makeGateRequest({ method: 'GET', path: '/', headers: new HeaderCollector(), requestId: '' }).requestId, undefined);
  });
});
