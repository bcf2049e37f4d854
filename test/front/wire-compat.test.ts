/**
 * proto/ against Envoy's official definitions (from @grpc/grpc-js-xds deps):
 * requests encoded by the official CheckRequest decode with ours to the same
 * GateRequest, and every response shape we emit decodes with the official
 * CheckResponse with its fields intact.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as protoLoader from '@grpc/proto-loader';
import { authorizationService } from '../../src/front/grpc/protos.js';
import { checkRequestToGate } from '../../src/front/grpc/request.js';
import { createResponseRenderer } from '../../src/front/grpc/response.js';
import { allow, deny, officialCheckMethod, view } from './fixtures.js';

const ours = authorizationService()['Check'] as protoLoader.MethodDefinition<any, any>;
const official = officialCheckMethod() as protoLoader.MethodDefinition<any, any>;
const NAMES = ['x-plugin-id', 'x-plugin-unique-identifier', 'accept', 'host', 'x-request-id', ':path'];
const UID = 'langgenius/openai:0.2.1@' + 'a'.repeat(64);

/** Everything Envoy may send, including fields our subset leaves out. */
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
    assert.deepEqual(view(checkRequestToGate(ours.requestDeserialize(buf)), NAMES), expected());
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
    assert.deepEqual(view(checkRequestToGate(ours.requestDeserialize(buf)), NAMES), expected());
  });

  it('an empty CheckRequest maps to an empty, unscoped GateRequest', () => {
    const buf = official.requestSerialize({});
    assert.deepEqual(view(checkRequestToGate(ours.requestDeserialize(buf)), ['x-plugin-id']), {
      method: '',
      path: '',
      headers: { 'x-plugin-id': undefined },
      contextExtensions: {},
      requestId: undefined,
    });
  });
});

describe('CheckResponse: our encoding → official decoding', () => {
  const OW = 'OVERWRITE_IF_EXISTS_OR_ADD';
  const roundTrip = (route: string | undefined, d: Parameters<ReturnType<typeof createResponseRenderer>>[0], id: string) =>
    official.responseDeserialize(ours.responseSerialize(createResponseRenderer({ routeHeader: route })(d, id)));
  const fields = (r: any) => Object.fromEntries(Object.entries(r.dynamic_metadata.fields).map(([k, v]: [string, any]) => [k, v.stringValue]));

  it('allow (metadata routing only)', () => {
    const r = roundTrip(undefined, allow(), 'id-1');
    assert.equal(r.status.code, 0);
    assert.equal(r.http_response, 'ok_response');
    assert.deepEqual(r.ok_response.headers, []);
    assert.deepEqual(r.ok_response.headers_to_remove, ['x-plugin-gate-upstream', 'x-plugin-gate-reason', 'x-plugin-gate-decision-id']);
    assert.deepEqual(fields(r), { upstream_host: '10.0.0.7:5002', plugin_id: 'langgenius/openai', reason: 'plugin_ready', decision_id: 'id-1' });
  });

  it('allow with route header: OVERWRITE_IF_EXISTS_OR_ADD and append unset', () => {
    const r = roundTrip('x-envoy-original-dst-host', allow(), 'id-2');
    assert.equal(r.ok_response.headers.length, 1);
    const h = r.ok_response.headers[0];
    assert.equal(h.header.key, 'x-envoy-original-dst-host');
    assert.equal(h.header.value, '10.0.0.7:5002');
    assert.equal(h.append_action, OW);
    assert.equal(h.append, null, 'append (BoolValue) must stay unset');
    assert.deepEqual(r.ok_response.headers_to_remove, ['x-plugin-gate-upstream', 'x-plugin-gate-reason', 'x-plugin-gate-decision-id']);
  });

  it('allow routed nowhere removes the route header', () => {
    const r = roundTrip('x-envoy-original-dst-host', allow({ reason: 'route_bypass', upstream: undefined, pluginId: undefined }), 'id-3');
    assert.deepEqual(r.ok_response.headers, []);
    assert.equal(r.ok_response.headers_to_remove[0], 'x-envoy-original-dst-host');
    assert.deepEqual(fields(r), { reason: 'route_bypass', decision_id: 'id-3' });
  });

  it('deny 503', () => {
    const d = deny();
    const r = roundTrip('x-envoy-original-dst-host', d, 'id-4');
    assert.equal(r.status.code, 14);
    assert.equal(r.http_response, 'denied_response');
    assert.equal(r.denied_response.status.code, 'ServiceUnavailable');
    assert.equal(r.denied_response.body, d.body);
    const headers = r.denied_response.headers.map((h: any) => [h.header.key, h.header.value, h.append_action, h.append]);
    assert.deepEqual(headers, [
      ['retry-after', '5', OW, null],
      ['content-type', 'application/json', OW, null],
      ['x-plugin-gate-reason', 'plugin_starting', OW, null],
      ['x-plugin-gate-decision-id', 'id-4', OW, null],
    ]);
    assert.deepEqual(fields(r), { plugin_id: 'langgenius/openai', reason: 'plugin_starting', decision_id: 'id-4' });
  });

  it('deny 400', () => {
    const r = roundTrip(undefined, deny({ reason: 'invalid_plugin_id', httpStatus: 400, retryAfterS: undefined, pluginId: undefined }), 'id-5');
    assert.equal(r.status.code, 3);
    assert.equal(r.denied_response.status.code, 'BadRequest');
    assert.ok(!r.denied_response.headers.some((h: any) => h.header.key === 'retry-after'));
    assert.deepEqual(fields(r), { reason: 'invalid_plugin_id', decision_id: 'id-5' });
  });

  it('the HTTP status is a varint on the wire: 503 encodes as Envoy expects', () => {
    // DeniedHttpResponse{status{code:503}} inside CheckResponse field 2:
    // 12 LEN [0a LEN [08 f7 03]] — 503 = 0xf7 0x03 as a varint.
    const buf = ours.responseSerialize({ status: { code: 14 }, denied_response: { status: { code: 503 }, headers: [], body: '' } });
    assert.ok(buf.includes(Buffer.from([0x0a, 0x03, 0x08, 0xf7, 0x03])));
  });

  it('metadata values are google.protobuf.Value string_value (field 3) on the wire', () => {
    const buf = ours.responseSerialize(createResponseRenderer({ routeHeader: undefined })(allow(), 'id-6'));
    const v = Buffer.from('10.0.0.7:5002');
    assert.ok(buf.includes(Buffer.concat([Buffer.from([0x1a, v.length]), v])));
  });
});
