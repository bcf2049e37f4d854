import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REQUEST_LIMITS } from '../service.js';
import { checkRequestToGate } from './request.js';

describe('checkRequestToGate', () => {
  it('maps method, path (query kept), headers map, context extensions and request id', () => {
    const r = checkRequestToGate({
      attributes: {
        request: {
          http: {
            id: 'envoy-id',
            method: 'POST',
            path: '/plugin/t1/dispatch/tool/invoke?x=1',
            host: 'daemon.local',
            headers: { 'x-plugin-id': 'langgenius/openai', 'x-request-id': 'rid-1', ':authority': 'daemon.local' },
          },
        },
        context_extensions: { gate: 'on' },
      },
    });
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/plugin/t1/dispatch/tool/invoke?x=1');
    assert.equal(r.header('x-plugin-id'), 'langgenius/openai');
    assert.equal(r.header('host'), 'daemon.local');
    assert.equal(r.requestId, 'rid-1');
    assert.deepEqual([...r.contextExtensions], [['gate', 'on']]);
  });

  it('falls back to HttpRequest.id for the request id', () => {
    const r = checkRequestToGate({ attributes: { request: { http: { id: 'envoy-id', headers: {} } } } });
    assert.equal(r.requestId, 'envoy-id');
  });

  it('reads header_map raw bytes as UTF-8, joining repeated keys and lower-casing', () => {
    const r = checkRequestToGate({
      attributes: {
        request: {
          http: {
            method: 'GET',
            path: '/v2/invoke/extract',
            headers: {},
            header_map: {
              headers: [
                { key: 'X-Plugin-Unique-Identifier', raw_value: Buffer.from('a/b:1.0.0@' + 'f'.repeat(64)) },
                { key: 'accept', raw_value: Buffer.from('text/plain') },
                { key: 'accept', raw_value: Buffer.from('application/json') },
                { key: 'x-plain', value: 'from-value', raw_value: Buffer.alloc(0) },
                { key: 'x-bad', raw_value: Buffer.from([0x61, 0xff, 0x62]) },
                null as never,
                { key: null, raw_value: Buffer.from('ignored') },
              ],
            },
          },
        },
      },
    });
    assert.equal(r.header('x-plugin-unique-identifier'), 'a/b:1.0.0@' + 'f'.repeat(64));
    assert.equal(r.header('accept'), 'text/plain,application/json');
    assert.equal(r.header('x-plain'), 'from-value');
    assert.equal(r.header('x-bad'), 'a\ufffdb');
  });

  it('never throws on missing or null attributes: empty method and path', () => {
    for (const msg of [undefined, null, {}, { attributes: null }, { attributes: {} }, { attributes: { request: null } }, { attributes: { request: { http: null } } }]) {
      const r = checkRequestToGate(msg as never);
      assert.equal(r.method, '');
      assert.equal(r.path, '');
      assert.equal(r.header('x-plugin-id'), undefined);
      assert.equal(r.contextExtensions.size, 0);
      assert.equal(r.requestId, undefined);
    }
  });

  it('keeps a bounded amount of an absurd request', () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 20_000; i++) headers[`h${i}`] = 'v'.repeat(8);
    const ext: Record<string, string> = {};
    for (let i = 0; i < 1000; i++) ext[`k${i}`] = 'x'.repeat(10_000);
    const list = Array.from({ length: 20_000 }, (_, i) => ({ key: 'rep', raw_value: Buffer.from(`value-${i}`) }));
    const r = checkRequestToGate({
      attributes: {
        request: { http: { method: 'GET', path: '/' + 'p'.repeat(100_000), headers, header_map: { headers: list } } },
        context_extensions: ext,
      },
    });
    assert.equal(r.path.length, REQUEST_LIMITS.maxPathLength);
    assert.equal(r.contextExtensions.size, REQUEST_LIMITS.maxContextExtensions);
    for (const v of r.contextExtensions.values()) assert.equal(v.length, REQUEST_LIMITS.maxContextExtensionLength);
    assert.equal(r.header('h0'), 'vvvvvvvv');
    assert.equal(r.header(`h${REQUEST_LIMITS.maxHeaders}`), undefined);
  });
});
