/**
 * The gate's own codec against Envoy's official definitions (from
 * @grpc/grpc-js-xds deps): CheckRequests encoded by the official protos decode
 * with ours to the same GateRequest the protobufjs path gave
 * (protobufjs-reference.ts), including everything Envoy sends that the gate
 * skips; every CheckResponse we write decodes with the official CheckResponse
 * with its fields intact, and is byte for byte what protobufjs wrote before.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type * as protoLoader from '@grpc/proto-loader';
import { DENY_REASONS, type Allow, type Decision, type Deny } from '../../src/decide/types.js';
import { decodeCheckRequest } from '../../src/front/grpc/request.js';
import { createResponseRenderer } from '../../src/front/grpc/response.js';
import { allow, deny, officialCheckMethod, view } from './fixtures.js';
import { referenceDecode, referenceResponseBytes } from './protobufjs-reference.js';

const official = officialCheckMethod() as protoLoader.MethodDefinition<any, any>;
const NAMES = ['x-plugin-id', 'x-plugin-unique-identifier', 'accept', 'host', 'x-request-id', ':path'];
const UID = 'langgenius/openai:0.2.1@' + 'a'.repeat(64);

/** Everything Envoy may send, including fields the gate skips. */
function fullRequest(http: object): object {
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.1.2.3', port_value: 41000 } }, principal: 'spiffe://x' },
      destination: { address: { socket_address: { address: '10.9.9.9', port_value: 5002 } } },
      request: { time: { seconds: '1767225600', nanos: 5 }, http },
      context_extensions: { route: 'dispatch', tenant_mode: 'strict' },
      metadata_context: { filter_metadata: { 'envoy.filters.http.jwt': { fields: { sub: { stringValue: 'u' } } } } },
      tls_session: { sni: 'api.example.com' },
    },
  };
}

function expected(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    method: 'POST',
    path: '/plugin/t1/dispatch/llm/invoke?stream=true',
    headers: {
      'x-plugin-id': 'langgenius/openai',
      'x-plugin-unique-identifier': UID,
      accept: 'text/event-stream,application/json',
      host: 'daemon.dify.svc:5002',
      'x-request-id': 'req-42',
      ':path': '/plugin/t1/dispatch/llm/invoke?stream=true',
    },
    contextExtensions: { route: 'dispatch', tenant_mode: 'strict' },
    requestId: 'req-42',
    ...over,
  };
}

/** Ours (header lookups lazy, and all collected at once) and the protobufjs path must agree; returns ours. */
function decodeBoth(buf: Buffer, names: readonly string[]): Record<string, unknown> {
  const ours = view(decodeCheckRequest(buf), names);
  assert.deepEqual(ours, view(decodeCheckRequest(buf, 0), names), 'lazy lookups = collected headers');
  assert.deepEqual(ours, view(referenceDecode(buf), names), 'ours = the protobufjs path');
  return ours;
}

describe('CheckRequest: official encoding → our decoding', () => {
  it('headers map', () => {
    const buf = official.requestSerialize(
      fullRequest({
        id: 'req-42',
        method: 'POST',
        path: '/plugin/t1/dispatch/llm/invoke?stream=true',
        host: 'daemon.dify.svc:5002',
        scheme: 'http',
        protocol: 'HTTP/1.1',
        size: '123',
        body: 'never read',
        raw_body: Buffer.from('never read'),
        headers: {
          'x-plugin-id': 'langgenius/openai',
          'x-plugin-unique-identifier': UID,
          accept: 'text/event-stream,application/json',
          'x-request-id': 'req-42',
          ':path': '/plugin/t1/dispatch/llm/invoke?stream=true',
          ':authority': 'daemon.dify.svc:5002',
        },
      }),
    );
    assert.deepEqual(decodeBoth(buf, NAMES), expected());
  });

  it('header_map with raw_value bytes (encode_raw_headers), repeated keys joined', () => {
    const raw = (key: string, value: string) => ({ key, raw_value: Buffer.from(value, 'utf8') });
    const buf = official.requestSerialize(
      fullRequest({
        id: 'req-42',
        method: 'POST',
        path: '/plugin/t1/dispatch/llm/invoke?stream=true',
        host: 'daemon.dify.svc:5002',
        header_map: {
          headers: [
            raw('x-plugin-id', 'langgenius/openai'),
            raw('x-plugin-unique-identifier', UID),
            raw('accept', 'text/event-stream'),
            raw('accept', 'application/json'),
            raw('x-request-id', 'req-42'),
            raw(':path', '/plugin/t1/dispatch/llm/invoke?stream=true'),
          ],
        },
      }),
    );
    assert.deepEqual(decodeBoth(buf, NAMES), expected());
  });

  it('an empty CheckRequest maps to an empty, unscoped GateRequest', () => {
    const buf = official.requestSerialize({});
    assert.deepEqual(decodeBoth(buf, ['x-plugin-id']), {
      method: '',
      path: '',
      headers: { 'x-plugin-id': undefined },
      contextExtensions: {},
      requestId: undefined,
    });
  });
});

describe('CheckRequest: random requests, official encoding, ours = the protobufjs path', () => {
  // Some characters whose lower case is another length or ASCII: U+212A KELVIN SIGN → "k", İ → "i̇", Σ → σ or ς.
  const nameChar = fc.constantFrom(...'abcxyzABKX-_:019'.split(''), '\u212a', '\u0130', '\u03a3', '\u00e9');
  // A JS object cannot hold a `__proto__` key, so the protobufjs path never sees one (ours keeps it: request.spec.ts).
  const name = fc.string({ unit: nameChar, minLength: 1, maxLength: 6 }).filter((n) => n !== '__proto__');
  const text = fc.oneof(
    fc.constantFrom('', 'langgenius/openai', UID, '/plugin/t1/dispatch/tool/invoke?x=1', 'POST', '\ud800 lone', 'caf\u00e9 \u4e2d \u{1F600}'),
    fc.string({ maxLength: 24 }),
    fc.string({ unit: 'binary', maxLength: 24 }),
  );
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)),
    fc.constantFrom(Buffer.from([0x61, 0xff, 0x62]), Buffer.from([0xe2, 0x82]), Buffer.alloc(0), Buffer.alloc(20_000, 0x62)),
  );
  const stringMap = fc.dictionary(name, text, { maxKeys: 12 });
  const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });
  const peer = fc.record(
    {
      address: fc.record({ socket_address: fc.record({ address: fc.ipV4(), port_value: fc.integer({ min: 0, max: 65535 }) }) }),
      service: text,
      labels: stringMap,
      principal: text,
      certificate: text,
    },
    { requiredKeys: [] },
  );
  const struct = fc.dictionary(name, text, { maxKeys: 3 }).map((o) => ({ fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { stringValue: v }])) }));
  const metadata = fc.record({ filter_metadata: fc.dictionary(name, struct, { maxKeys: 2 }) });
  const headerValue = fc.record({ key: optional(name), value: optional(text), raw_value: optional(bytes) }).map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)));
  const http = fc.record(
    {
      id: text,
      method: text,
      headers: stringMap,
      header_map: fc.record({ headers: fc.array(headerValue, { maxLength: 10 }) }),
      path: text,
      host: text,
      scheme: text,
      query: text,
      fragment: text,
      size: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
      protocol: text,
      body: text,
      raw_body: bytes,
    },
    { requiredKeys: [] },
  );
  const checkRequest = fc.record(
    {
      attributes: fc.record(
        {
          source: peer,
          destination: peer,
          request: fc.record({ time: fc.record({ seconds: fc.bigInt({ min: 0n, max: 2n ** 40n }).map(String), nanos: fc.nat(999_999_999) }), http }, { requiredKeys: [] }),
          context_extensions: stringMap,
          metadata_context: metadata,
          route_metadata_context: metadata,
          tls_session: fc.record({ sni: text }),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: [] },
  );

  /** Every header name the request could produce, as sent, lower- and upper-cased, and a few it cannot. */
  function namesOf(msg: any): string[] {
    const h = msg.attributes?.request?.http;
    const names = new Set(['host', 'HOST', 'x-request-id', 'x-plugin-id', 'absent', '', 'k', 'i\u0307']);
    const add = (k: string) => {
      names.add(k);
      names.add(k.toLowerCase());
      names.add(k.toUpperCase());
    };
    for (const k of Object.keys(h?.headers ?? {})) add(k);
    for (const e of h?.header_map?.headers ?? []) if (typeof e.key === 'string') add(e.key);
    return [...names];
  }

  /** The same request with only the fields the gate reads. */
  function readOnly(msg: any): object {
    const a = msg.attributes;
    const h = a?.request?.http;
    const pick = (o: any, keys: string[]) => (o === undefined ? undefined : Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])));
    return { attributes: a === undefined ? undefined : { context_extensions: a.context_extensions, request: { http: pick(h, ['id', 'method', 'headers', 'header_map', 'path', 'host']) } } };
  }

  it('decodes every request to exactly the GateRequest of the protobufjs path', () => {
    fc.assert(
      fc.property(checkRequest, (msg) => {
        const buf = official.requestSerialize(msg);
        decodeBoth(buf, namesOf(msg));
      }),
      { numRuns: 600 },
    );
  });

  it('the fields the gate skips change nothing', () => {
    fc.assert(
      fc.property(checkRequest, (msg) => {
        const names = namesOf(msg);
        assert.deepEqual(view(decodeCheckRequest(official.requestSerialize(msg)), names), view(decodeCheckRequest(official.requestSerialize(readOnly(msg))), names));
      }),
      { numRuns: 300 },
    );
  });

  /**
   * Protobuf's merge of b into a, as parsing their concatenated encodings must
   * do it: scalars from b where b sets them, maps merged key by key (b's value
   * wins, a's order kept), repeated fields concatenated, messages merged.
   */
  function merge(a: any, b: any): any {
    if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
    const plain = (o: unknown) => typeof o === 'object' && o !== null && !Array.isArray(o) && !Buffer.isBuffer(o);
    if (!plain(a) || !plain(b)) return b;
    const out: any = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in a ? merge(a[k], v) : v;
    return out;
  }

  it('concatenated encodings read as the merged message (embedded messages merged, maps merged, last scalar wins)', () => {
    // protobufjs replaces an embedded message given twice instead of merging it, so here the
    // reference is the merged message, encoded once.
    fc.assert(
      fc.property(checkRequest, checkRequest, (a, b) => {
        const names = [...new Set([...namesOf(a), ...namesOf(b)])];
        const concatenated = view(decodeCheckRequest(Buffer.concat([official.requestSerialize(a), official.requestSerialize(b)])), names);
        assert.deepEqual(concatenated, decodeBoth(official.requestSerialize(merge(a, b)), names));
      }),
      { numRuns: 300 },
    );
  });
});

describe('CheckResponse: our encoding → official decoding', () => {
  const OW = 'OVERWRITE_IF_EXISTS_OR_ADD';
  const roundTrip = (route: string | undefined, d: Decision, id: string) => official.responseDeserialize(createResponseRenderer({ routeHeader: route })(d, id));
  const fields = (r: any) => Object.fromEntries(Object.entries(r.dynamic_metadata.fields).map(([k, v]: [string, any]) => [k, v.stringValue]));
  const headers = (list: any[]) => list.map((h: any) => [h.header.key, h.header.value, h.append_action, h.append]);
  const REMOVE = ['x-plugin-gate-upstream', 'x-plugin-gate-reason', 'x-plugin-gate-decision-id'];

  it('allow (metadata routing only)', () => {
    const r = roundTrip(undefined, allow(), 'id-1');
    assert.equal(r.status.code, 0);
    assert.equal(r.http_response, 'ok_response');
    assert.deepEqual(r.ok_response.headers, []);
    assert.deepEqual(r.ok_response.headers_to_remove, REMOVE);
    assert.deepEqual(fields(r), { upstream_host: '10.0.0.7:5002', plugin_id: 'langgenius/openai', reason: 'plugin_ready', decision_id: 'id-1' });
  });

  it('allow with route header: OVERWRITE_IF_EXISTS_OR_ADD and append unset', () => {
    const r = roundTrip('x-envoy-original-dst-host', allow(), 'id-2');
    assert.deepEqual(headers(r.ok_response.headers), [['x-envoy-original-dst-host', '10.0.0.7:5002', OW, null]], 'append (BoolValue) must stay unset');
    assert.deepEqual(r.ok_response.headers_to_remove, REMOVE);
    assert.deepEqual(fields(r), { upstream_host: '10.0.0.7:5002', plugin_id: 'langgenius/openai', reason: 'plugin_ready', decision_id: 'id-2' });
  });

  it('allow routed nowhere removes the route header', () => {
    const r = roundTrip('x-envoy-original-dst-host', allow({ reason: 'route_bypass', upstream: undefined, pluginId: undefined }), 'id-3');
    assert.deepEqual(r.ok_response.headers, []);
    assert.deepEqual(r.ok_response.headers_to_remove, ['x-envoy-original-dst-host', ...REMOVE]);
    assert.deepEqual(fields(r), { reason: 'route_bypass', decision_id: 'id-3' });
  });

  it('allow for a request that is not plugin-scoped: upstream, no plugin id', () => {
    const r = roundTrip('x-envoy-original-dst-host', allow({ reason: 'not_plugin_scoped', pluginId: undefined }), 'id-n');
    assert.deepEqual(headers(r.ok_response.headers), [['x-envoy-original-dst-host', '10.0.0.7:5002', OW, null]]);
    assert.deepEqual(fields(r), { upstream_host: '10.0.0.7:5002', reason: 'not_plugin_scoped', decision_id: 'id-n' });
  });

  it('dry run: an allow whose metadata says which deny enforcement would have returned', () => {
    const r = roundTrip(undefined, allow({ reason: 'dry_run', wouldDeny: deny({ reason: 'plugin_failed' }) }), 'id-d');
    assert.equal(r.status.code, 0);
    assert.equal(r.http_response, 'ok_response');
    assert.deepEqual(fields(r), { upstream_host: '10.0.0.7:5002', plugin_id: 'langgenius/openai', reason: 'dry_run', decision_id: 'id-d', would_deny: 'plugin_failed' });
  });

  for (const reason of DENY_REASONS.filter((r) => r !== 'invalid_plugin_id')) {
    it(`deny 503 ${reason}`, () => {
      const d = deny({ reason, retryAfterS: 7 });
      const r = roundTrip('x-envoy-original-dst-host', d, 'id-4');
      assert.equal(r.status.code, 14);
      assert.equal(r.status.message, reason);
      assert.equal(r.http_response, 'denied_response');
      assert.equal(r.denied_response.status.code, 'ServiceUnavailable');
      assert.equal(r.denied_response.body, d.body);
      assert.deepEqual(headers(r.denied_response.headers), [
        ['retry-after', '7', OW, null],
        ['content-type', 'application/json', OW, null],
        ['x-plugin-gate-reason', reason, OW, null],
        ['x-plugin-gate-decision-id', 'id-4', OW, null],
      ]);
      assert.deepEqual(fields(r), { plugin_id: 'langgenius/openai', reason, decision_id: 'id-4' });
    });
  }

  it('deny 400 invalid_plugin_id', () => {
    const d = deny({ reason: 'invalid_plugin_id', httpStatus: 400, retryAfterS: undefined, pluginId: undefined });
    const r = roundTrip(undefined, d, 'id-5');
    assert.equal(r.status.code, 3);
    assert.equal(r.status.message, 'invalid_plugin_id');
    assert.equal(r.denied_response.status.code, 'BadRequest');
    assert.equal(r.denied_response.body, d.body);
    assert.deepEqual(headers(r.denied_response.headers), [
      ['content-type', 'application/json', OW, null],
      ['x-plugin-gate-reason', 'invalid_plugin_id', OW, null],
      ['x-plugin-gate-decision-id', 'id-5', OW, null],
    ]);
    assert.deepEqual(fields(r), { reason: 'invalid_plugin_id', decision_id: 'id-5' });
  });

  it('held requests: held_ms after decision_id, on an allow and a deny', () => {
    const a = roundTrip('x-envoy-original-dst-host', allow({ reason: 'plugin_ready_after_hold', heldMs: 4321 }), 'id-h');
    assert.deepEqual(fields(a), { upstream_host: '10.0.0.7:5002', plugin_id: 'langgenius/openai', reason: 'plugin_ready_after_hold', decision_id: 'id-h', held_ms: '4321' });
    const d = roundTrip(undefined, deny({ heldMs: 15000 }), 'id-h2');
    assert.deepEqual(fields(d), { plugin_id: 'langgenius/openai', reason: 'plugin_starting', decision_id: 'id-h2', held_ms: '15000' });
    assert.equal(d.denied_response.headers.at(-1).header.value, 'id-h2');
  });

  it('the same Decision answered twice gets each answer its own decision id', () => {
    const render = createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' });
    for (const d of [allow(), deny(), allow({ reason: 'dry_run', wouldDeny: deny() }), deny({ reason: 'invalid_plugin_id', httpStatus: 400, retryAfterS: undefined })]) {
      const one = official.responseDeserialize(render(d, 'gate-1-a'));
      const two = official.responseDeserialize(render(d, 'gate-1-bcdefghijklmnopqrstuvwxyz'));
      assert.equal(fields(one).decision_id, 'gate-1-a');
      assert.equal(fields(two).decision_id, 'gate-1-bcdefghijklmnopqrstuvwxyz');
      if (!d.allow) {
        assert.equal(one.denied_response.headers.at(-1).header.value, 'gate-1-a');
        assert.equal(two.denied_response.headers.at(-1).header.value, 'gate-1-bcdefghijklmnopqrstuvwxyz');
        assert.equal(two.denied_response.body, d.body);
      }
    }
  });

  it('the HTTP status is a varint on the wire: 503 encodes as Envoy expects', () => {
    // DeniedHttpResponse{status{code:503}} inside CheckResponse field 2:
    // 12 LEN [0a LEN [08 f7 03]] — 503 = 0xf7 0x03 as a varint.
    const buf = createResponseRenderer({ routeHeader: undefined })(deny(), 'id');
    assert.ok(buf.includes(Buffer.from([0x0a, 0x03, 0x08, 0xf7, 0x03])));
  });

  it('metadata values are google.protobuf.Value string_value (field 3) on the wire', () => {
    const buf = createResponseRenderer({ routeHeader: undefined })(allow(), 'id-6');
    const v = Buffer.from('10.0.0.7:5002');
    assert.ok(buf.includes(Buffer.concat([Buffer.from([0x1a, v.length]), v])));
  });
});

describe('CheckResponse: random decisions, ours = what protobufjs wrote', () => {
  const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', 'caf\u00e9 \u{1F600}', 'x'.repeat(300)));
  const opt = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });
  const denyArb: fc.Arbitrary<Deny> = fc.record({
    allow: fc.constant(false as const),
    reason: fc.constantFrom(...DENY_REASONS),
    pluginId: opt(fc.constantFrom('langgenius/openai', 'a/b', 'p')),
    tenant: opt(text),
    httpStatus: fc.constantFrom(503, 400),
    retryAfterS: opt(fc.integer({ min: 1, max: 100_000 })),
    message: text,
    body: fc.oneof(text, fc.constantFrom(deny().body)),
    heldMs: opt(fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e7, noNaN: true }))),
  });
  const allowArb: fc.Arbitrary<Allow> = fc.record({
    allow: fc.constant(true as const),
    reason: fc.constantFrom('plugin_ready', 'not_plugin_scoped', 'unknown_plugin_allowed', 'route_bypass', 'dry_run', 'plugin_ready_after_hold'),
    upstream: opt(fc.oneof(fc.constantFrom('10.0.0.7:5002', '[fd00::1]:5002'), text)),
    pluginId: opt(fc.oneof(fc.constantFrom('langgenius/openai'), text)),
    tenant: opt(text),
    wouldDeny: opt(denyArb),
    heldMs: opt(fc.nat()),
  });
  const decision: fc.Arbitrary<Decision> = fc.oneof(allowArb, denyArb);
  const decisionId = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom('gate-1-a', 'x'.repeat(200)));
  const routes = [undefined, 'x-envoy-original-dst-host', 'x-plugin-gate-upstream'];
  // One renderer per route header for the whole run, so its caches see every decision one after another.
  const renderers = routes.map((r) => createResponseRenderer({ routeHeader: r }));

  it('every decision, any decision id, any route header: the same bytes', () => {
    fc.assert(
      fc.property(fc.nat(routes.length - 1), decision, decisionId, decisionId, (i, d, id1, id2) => {
        const render = renderers[i]!;
        assert.deepEqual(render(d, id1), referenceResponseBytes(routes[i], d, id1));
        // The same Decision object again with another id: nothing of the first call is reused for it.
        assert.deepEqual(render(d, id2), referenceResponseBytes(routes[i], d, id2));
        // A copy (decisions are mostly fresh objects) reads the same.
        assert.deepEqual(render({ ...d } as Decision, id1), referenceResponseBytes(routes[i], d, id1));
      }),
      { numRuns: 1000 },
    );
  });
});
