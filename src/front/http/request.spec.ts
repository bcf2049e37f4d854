import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { httpRequestToGate, originTarget, splitUrl, stripPrefix } from './request.js';

function head(method: string, url: string, headers: Record<string, string>) {
  return { method, url, rawHeaders: Object.entries(headers).flat() };
}

describe('httpRequestToGate', () => {
  it('nginx auth_request: X-Original-URI and X-Original-Method', () => {
    const r = httpRequestToGate(
      head('GET', '/_gate', {
        Host: 'gate:9192',
        'X-Original-URI': '/plugin/t1/dispatch/llm/invoke?stream=1',
        'X-Original-Method': 'POST',
        'X-Plugin-ID': 'langgenius/openai',
        'X-Request-ID': 'rid-9',
      }),
      '',
    );
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/plugin/t1/dispatch/llm/invoke?stream=1');
    assert.equal(r.header('x-plugin-id'), 'langgenius/openai');
    assert.equal(r.requestId, 'rid-9');
    assert.equal(r.contextExtensions.size, 0);
  });

  it('ingress-nginx: absolute X-Original-URL gives path and host', () => {
    const r = httpRequestToGate(
      head('GET', '/auth', { Host: 'gate', 'X-Original-URL': 'https://api.example.com/plugin/t/dispatch/tool/invoke?a=b#frag', 'X-Original-Method': 'POST' }),
      '',
    );
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/plugin/t/dispatch/tool/invoke?a=b');
    assert.equal(r.header('host'), 'api.example.com');
  });

  it('Traefik ForwardAuth: X-Forwarded-Method/-Uri/-Host', () => {
    const r = httpRequestToGate(
      head('GET', '/', { Host: 'gate', 'X-Forwarded-Method': 'POST', 'X-Forwarded-Uri': '/v2/invoke/dispatch/tool', 'X-Forwarded-Host': 'api.example.com' }),
      '',
    );
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/v2/invoke/dispatch/tool');
    assert.equal(r.header('host'), 'api.example.com');
  });

  it('Envoy http_service: the request itself, path prefix stripped', () => {
    const r = httpRequestToGate(head('POST', '/ext-authz/plugin/t/dispatch/x?q=1', { Host: 'api.example.com' }), '/ext-authz');
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/plugin/t/dispatch/x?q=1');
    assert.equal(r.header('host'), 'api.example.com');
    assert.equal(httpRequestToGate(head('GET', '/ext-authz', {}), '/ext-authz').path, '/');
  });

  it('precedence: X-Original-URL > X-Original-URI > X-Forwarded-Uri > own request', () => {
    const all = { 'X-Original-URL': 'http://h/one', 'X-Original-URI': '/two', 'X-Forwarded-Uri': '/three', 'X-Original-Method': 'PUT', 'X-Forwarded-Method': 'PATCH' };
    assert.equal(httpRequestToGate(head('GET', '/four', all), '').path, '/one');
    const { 'X-Original-URL': _a, ...noUrl } = all;
    assert.equal(httpRequestToGate(head('GET', '/four', noUrl), '').path, '/two');
    assert.equal(httpRequestToGate(head('GET', '/four', noUrl), '').method, 'PUT');
    const { 'X-Original-URI': _b, ...noUri } = noUrl;
    assert.equal(httpRequestToGate(head('GET', '/four', noUri), '').path, '/three');
    assert.equal(httpRequestToGate(head('GET', '/four', noUri), '').method, 'PATCH');
    assert.equal(httpRequestToGate(head('GET', '/four', {}), '').path, '/four');
  });

  it('falls back to the auth request method when the convention sends none', () => {
    assert.equal(httpRequestToGate(head('DELETE', '/', { 'X-Original-URI': '/x' }), '').method, 'DELETE');
  });

  it('repeated headers join with ","', () => {
    const r = httpRequestToGate({ method: 'GET', url: '/', rawHeaders: ['Accept', 'a', 'accept', 'b'] }, '');
    assert.equal(r.header('accept'), 'a,b');
  });
});

describe('URL helpers', () => {
  it('splitUrl reads authority (without userinfo) and origin-form path', () => {
    assert.deepEqual(splitUrl('http://u:p@h:8080/a/../b?x=1'), { host: 'h:8080', path: '/a/../b?x=1' });
    assert.deepEqual(splitUrl('https://h?x=http://y'), { host: 'h', path: '/?x=http://y' });
    assert.deepEqual(splitUrl('https://h'), { host: 'h', path: '/' });
    assert.deepEqual(splitUrl('/just/path'), { host: '', path: '/just/path' });
  });

  it('originTarget normalises only the form, never the path', () => {
    assert.equal(originTarget('/a/%2e%2e/b'), '/a/%2e%2e/b');
    assert.equal(originTarget(''), '/');
    assert.equal(originTarget('*'), '/');
    assert.equal(originTarget('x/y'), '/x/y');
    assert.equal(originTarget('?q'), '/?q');
    assert.equal(originTarget('http://proxy-form/p?q'), '/p?q');
    assert.equal(originTarget('/p#f'), '/p');
  });

  it('stripPrefix strips only whole segments', () => {
    assert.equal(stripPrefix('/gate/x', '/gate'), '/x');
    assert.equal(stripPrefix('/gate', '/gate'), '/');
    assert.equal(stripPrefix('/gate?x', '/gate'), '/?x');
    assert.equal(stripPrefix('/gateway/x', '/gate'), '/gateway/x');
    assert.equal(stripPrefix('/other', '/gate'), '/other');
    assert.equal(stripPrefix('/x', ''), '/x');
  });

  it('with http-request-from set, reads only that convention', () => {
    const forged = { 'X-Original-URL': 'http://x/health/check', 'X-Forwarded-Uri': '/e/x', 'X-Original-URI': '/plugin/t/dispatch/llm/invoke', 'X-Original-Method': 'POST' };
    assert.equal(httpRequestToGate(head('GET', '/plugin/t/dispatch/llm/invoke', forged), '', 'auto').path, '/health/check');
    const r = httpRequestToGate(head('GET', '/plugin/t/dispatch/llm/invoke', forged), '', 'x-original-uri');
    assert.equal(r.path, '/plugin/t/dispatch/llm/invoke');
    assert.equal(r.method, 'POST');
    assert.equal(httpRequestToGate(head('GET', '/own/path', forged), '', 'request').path, '/own/path');
    assert.equal(httpRequestToGate(head('GET', '/own', { 'X-Original-URI': '/a' }), '', 'x-forwarded-uri').path, '/own');
  });
});
