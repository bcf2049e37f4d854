import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GateError } from '../../core/errors.js';
import type { GateRequest } from '../../decide/types.js';
import { REQUEST_LIMITS } from '../service.js';
import { authorizationService } from './protos.js';
import { decodeCheckRequest } from './request.js';
import { entry, fixed32, fixed64, len, tag, unknownFields, varint, varintField } from '../../../test/support/wire-builder.js';

/** A CheckRequest message object encoded with proto-loader over proto/. */
function encode(msg: object): Buffer {
  return authorizationService()['Check']!.requestSerialize(msg);
}

function decode(msg: object): GateRequest {
  return decodeCheckRequest(encode(msg));
}

/** Plain view of a GateRequest for deep comparisons. */
function view(r: GateRequest, names: readonly string[] = ['x-plugin-id', 'accept', 'host', 'x-request-id']): object {
  return {
    method: r.method,
    path: r.path,
    headers: Object.fromEntries(names.map((n) => [n, r.header(n)])),
    ext: [...r.contextExtensions],
    requestId: r.requestId,
  };
}

// Hand-built wire: CheckRequest.attributes(1) → AttributeContext.request(4) → Request.http(2) → HttpRequest.
const checkRequest = (...attributes: Buffer[]): Buffer => len(1, ...attributes);
const request = (...http: Buffer[]): Buffer => len(4, len(2, ...http));
const header = (key: string, value: string): Buffer => entry(3, key, value);
const extension = (key: string, value: string): Buffer => entry(10, key, value);
const headerMap = (...values: Buffer[]): Buffer => len(13, ...values);
const headerValue = (...fields: Buffer[]): Buffer => len(1, ...fields);

describe('decodeCheckRequest: what the gate reads', () => {
  it('maps method, path (query kept), headers map, context extensions and request id', () => {
    const r = decode({
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
    const r = decode({ attributes: { request: { http: { id: 'envoy-id', headers: {} } } } });
    assert.equal(r.requestId, 'envoy-id');
  });

  it('reads header_map raw bytes as UTF-8, joining repeated keys and lower-casing', () => {
    const r = decode({
      attributes: {
        request: {
          http: {
            method: 'GET',
            path: '/v2/invoke/extract',
            header_map: {
              headers: [
                { key: 'X-Plugin-Unique-Identifier', raw_value: Buffer.from('a/b:1.0.0@' + 'f'.repeat(64)) },
                { key: 'accept', raw_value: Buffer.from('text/plain') },
                { key: 'accept', raw_value: Buffer.from('application/json') },
                { key: 'x-plain', value: 'from-value', raw_value: Buffer.alloc(0) },
                { key: 'x-bad', raw_value: Buffer.from([0x61, 0xff, 0x62]) },
                { raw_value: Buffer.from('no key: dropped') },
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
    assert.equal(r.header(''), undefined);
  });

  it('invalid UTF-8 in string fields reads as U+FFFD', () => {
    const bad = Buffer.from([0x2f, 0xc3, 0x28, 0x2f]);
    const r = decodeCheckRequest(checkRequest(request(len(4, bad), len(2, Buffer.from([0xff])), entry(3, 'x-plugin-id', undefined, len(2, Buffer.from([0x61, 0xe2, 0x82]))))));
    assert.equal(r.path, '/\ufffd(/');
    assert.equal(r.method, '\ufffd');
    assert.equal(r.header('x-plugin-id'), 'a\ufffd');
  });

  it('an empty CheckRequest, or one with empty attributes, request or http, gives an empty GateRequest', () => {
    for (const bytes of [Buffer.alloc(0), checkRequest(), checkRequest(len(4)), checkRequest(request())]) {
      const r = decodeCheckRequest(bytes);
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
    const r = decode({
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

  it('caps a raw_value at maxHeaderValueLength bytes before decoding it', () => {
    const r = decodeCheckRequest(checkRequest(request(headerMap(headerValue(len(1, 'x-big'), len(3, Buffer.alloc(100_000, 0x61)))))));
    assert.equal(r.header('x-big'), 'a'.repeat(REQUEST_LIMITS.maxHeaderValueLength));
  });

  it('a header named __proto__ is just a header', () => {
    const r = decodeCheckRequest(checkRequest(request(header('__proto__', 'p'), header('x-plugin-id', 'a/b'))));
    assert.equal(r.header('__proto__'), 'p');
    assert.equal(r.header('x-plugin-id'), 'a/b');
  });
});

describe('decodeCheckRequest: protobuf rules on inputs no Envoy sends', () => {
  const fields = {
    id: len(1, 'envoy-id'),
    method: len(2, 'POST'),
    headers: [header('x-plugin-id', 'langgenius/openai'), header('accept', 'text/plain')],
    path: len(4, '/plugin/t1/dispatch/tool/invoke'),
    host: len(5, 'daemon:5002'),
    headerMap: headerMap(headerValue(len(1, 'accept'), len(3, 'application/json'))),
  };
  const inOrder = checkRequest(
    request(fields.id, fields.method, ...fields.headers, fields.path, fields.host, fields.headerMap),
    extension('route', 'dispatch'),
  );
  const expected = {
    method: 'POST',
    path: '/plugin/t1/dispatch/tool/invoke',
    headers: { 'x-plugin-id': 'langgenius/openai', accept: 'text/plain,application/json', host: 'daemon:5002', 'x-request-id': undefined },
    ext: [['route', 'dispatch']],
    requestId: 'envoy-id',
  };

  it('reads the plain encoding', () => {
    assert.deepEqual(view(decodeCheckRequest(inOrder)), expected);
  });

  it('skips unknown fields of every wire type, packed and unpacked repeated scalars, at every level', () => {
    const u = unknownFields(100);
    const bytes = Buffer.concat([
      u,
      len(
        1,
        u,
        len(4, u, len(2, u, fields.id, u, fields.method, entry(3, 'x-plugin-id', 'langgenius/openai', u), header('accept', 'text/plain'), fields.path, fields.host, len(13, u, headerValue(u, len(1, 'accept'), u, len(3, 'application/json'), u), u), u), u),
        u,
        entry(10, 'route', 'dispatch', u),
        u,
      ),
      u,
    ]);
    assert.deepEqual(view(decodeCheckRequest(bytes)), expected);
  });

  it('skips the fields it ignores that Envoy does send (peers, time, scheme, query, size, body, metadata, TLS)', () => {
    const bytes = checkRequest(
      len(1, len(1, len(1, len(1, '10.0.0.1'), varintField(2, 41000)))), // source.address.socket_address
      len(2, len(4, 'spiffe://x')), // destination.principal
      len(4, len(1, varintField(1, 1767225600), varintField(2, 5)), len(2, fields.id, fields.method, len(6, 'https'), len(7, 'a=1'), varintField(9, 123), len(10, 'HTTP/2'), len(11, 'body'), len(12, Buffer.from([0, 1, 2])), ...fields.headers, fields.path, fields.host, fields.headerMap)),
      extension('route', 'dispatch'),
      len(11, len(1, len(1, 'ns'), len(2))), // metadata_context
      len(12, len(1, 'api.example.com')), // tls_session.sni
      len(13, len(1)), // route_metadata_context
    );
    assert.deepEqual(view(decodeCheckRequest(bytes)), expected);
  });

  it('reads fields in any order (reversed, shuffled) alike', () => {
    const reversed = checkRequest(extension('route', 'dispatch'), request(fields.headerMap, fields.host, fields.path, ...fields.headers, fields.method, fields.id));
    assert.deepEqual(view(decodeCheckRequest(reversed)), expected);
    const shuffled = checkRequest(request(fields.path, ...fields.headers.slice(0, 1), fields.headerMap, fields.id, fields.host, fields.method, ...fields.headers.slice(1)), extension('route', 'dispatch'));
    assert.deepEqual(view(decodeCheckRequest(shuffled)), expected);
    // The headers map is read before header_map whatever the wire order: joined values keep that order.
    const mapAfterList = checkRequest(request(fields.headerMap, header('accept', 'text/plain')));
    assert.equal(decodeCheckRequest(mapAfterList).header('accept'), 'text/plain,application/json');
  });

  it('a scalar given twice: the last one wins', () => {
    const r = decodeCheckRequest(checkRequest(request(len(2, 'GET'), len(4, '/first'), len(1, 'id-1'), len(5, 'h1'), len(2, 'POST'), len(4, '/second'), len(1, 'id-2'), len(5, 'h2'))));
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/second');
    assert.equal(r.requestId, 'id-2');
    assert.equal(r.header('host'), 'h2');
    // inside a HeaderValue and a map entry too
    const h = decodeCheckRequest(checkRequest(request(headerMap(headerValue(len(1, 'x-a'), len(3, 'one'), len(1, 'x-b'), len(3, 'two'))), entry(3, 'x-c', 'one', len(2, 'two'), len(1, 'x-d')))));
    assert.equal(h.header('x-a'), undefined);
    assert.equal(h.header('x-b'), 'two');
    assert.equal(h.header('x-c'), undefined);
    assert.equal(h.header('x-d'), 'two');
  });

  it('a message given twice is merged: attributes, request, http and header_map', () => {
    const bytes = Buffer.concat([
      checkRequest(request(len(2, 'POST'), header('x-plugin-id', 'a/b')), extension('one', '1')),
      checkRequest(request(len(4, '/p'), header('accept', 'text/plain')), extension('two', '2')),
      checkRequest(len(4, len(2, headerMap(headerValue(len(1, 'accept'), len(3, 'x/1'))))), len(4, len(2, headerMap(headerValue(len(1, 'accept'), len(3, 'x/2')))))),
    ]);
    const r = decodeCheckRequest(bytes);
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/p');
    assert.equal(r.header('x-plugin-id'), 'a/b');
    assert.equal(r.header('accept'), 'text/plain,x/1,x/2');
    assert.deepEqual([...r.contextExtensions], [['one', '1'], ['two', '2']]);
  });

  it('a map key given twice: the last value wins, in the place of the first', () => {
    const r = decodeCheckRequest(checkRequest(request(header('x-plugin-id', 'first/one'), header('accept', 'a'), header('x-plugin-id', 'second/one')), extension('k', '1'), extension('j', '0'), extension('k', '2')));
    assert.equal(r.header('x-plugin-id'), 'second/one');
    assert.deepEqual([...r.contextExtensions], [['k', '2'], ['j', '0']]);
  });

  it('a map entry without key or value reads it as the empty string', () => {
    const r = decodeCheckRequest(checkRequest(request(entry(3, 'x-empty', undefined), entry(3, undefined, 'nameless')), entry(10, undefined, 'v'), entry(10, 'k', undefined)));
    assert.equal(r.header('x-empty'), '');
    assert.equal(r.header(''), undefined, 'a header without a name is dropped');
    assert.deepEqual([...r.contextExtensions], [['', 'v'], ['k', '']]);
  });

  it('repeated headers: one key twice in header_map is joined, and headers map + header_map both count', () => {
    const r = decodeCheckRequest(checkRequest(request(header('accept', 'text/html'), headerMap(headerValue(len(1, 'Accept'), len(3, 'text/plain')), headerValue(len(1, 'accept'), len(2, 'application/json'))))));
    assert.equal(r.header('accept'), 'text/html,text/plain,application/json');
  });

  it('a known field number with another wire type is an unknown field, skipped', () => {
    const r = decodeCheckRequest(checkRequest(request(varintField(2, 7), len(2, 'POST'), fixed64(4), len(4, '/p'), fixed32(1)), varintField(10, 3)));
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/p');
    assert.equal(r.contextExtensions.size, 0);
    assert.deepEqual(view(decodeCheckRequest(Buffer.concat([varintField(1, 5), fixed32(1)]))), view(decodeCheckRequest(Buffer.alloc(0))));
  });
});

describe('decodeCheckRequest: malformed input is an invalid_request error', () => {
  const good = checkRequest(request(len(2, 'POST'), len(4, '/plugin/t1/dispatch/tool/invoke'), header('x-plugin-id', 'a/b')), extension('k', 'v'));
  const fails = (bytes: Buffer, message: RegExp): void => {
    assert.throws(
      () => decodeCheckRequest(bytes),
      (err: unknown) => err instanceof GateError && err.code === 'invalid_request' && message.test(err.message),
    );
  };

  it('truncated anywhere', () => {
    // attributes is the only top-level field, so every proper prefix cuts it short.
    for (let n = 1; n < good.length; n++) fails(good.subarray(0, n), /malformed protobuf: .* runs past the end/);
    assert.equal(decodeCheckRequest(good).method, 'POST');
  });

  it('a length longer than what is left, at the top and nested', () => {
    fails(Buffer.concat([tag(1, 2), varint(1000), Buffer.alloc(10)]), /length 1000 runs past the end/);
    fails(checkRequest(request(Buffer.concat([tag(2, 2), varint(50), Buffer.from('POST')]))), /length 50 runs past/);
    // A nested length past its parent's end, though not past the buffer's.
    fails(Buffer.concat([len(1, Buffer.concat([tag(4, 2), varint(5)])), Buffer.alloc(10)]), /length 5 runs past/);
    fails(Buffer.concat([tag(1, 2), varint(2 ** 40), Buffer.alloc(4)]), /runs past/);
  });

  it('groups (wire types 3 and 4), at the top and nested', () => {
    fails(Buffer.concat([tag(5, 3), varintField(1, 1), tag(5, 4)]), /group \(wire type 3\) in field 5/);
    fails(checkRequest(len(4, Buffer.concat([tag(7, 4)]))), /group \(wire type 4\) in field 7/);
    fails(checkRequest(request(tag(100, 3), tag(100, 4))), /group/);
  });

  it('wire types 6 and 7, field number 0, an overlong varint, a fixed field cut short', () => {
    fails(tag(3, 6), /wire type 6/);
    fails(tag(3, 7), /wire type 7/);
    fails(Buffer.from([0x02, 0x00]), /invalid tag 2/);
    fails(Buffer.concat([tag(100, 0), Buffer.alloc(10, 0x80), Buffer.from([0x01])]), /varint longer than 10 bytes/);
    fails(Buffer.concat([tag(100, 0), Buffer.from([0x80, 0x80])]), /varint runs past/);
    fails(Buffer.concat([tag(100, 1), Buffer.alloc(7)]), /fixed64 runs past/);
    fails(Buffer.concat([tag(100, 5), Buffer.alloc(3)]), /fixed32 runs past/);
  });
});
