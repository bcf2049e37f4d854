import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Allow, Deny } from '../../decide/types.js';
import { createResponseRenderer, GATE_OUTPUT_HEADERS } from './response.js';

const ready: Allow = { allow: true, reason: 'plugin_ready', upstream: '10.0.0.7:5002', pluginId: 'a/b', tenant: 't', wouldDeny: undefined };
const body = '{"code":-500,"message":"{}","data":null}\n';
const starting: Deny = { allow: false, reason: 'plugin_starting', pluginId: 'a/b', tenant: 't', httpStatus: 503, retryAfterS: 5, message: 'm', body };

describe('createResponseRenderer', () => {
  it('allow without route header: status 0, removes gate headers, metadata carries upstream', () => {
    const r = createResponseRenderer({ routeHeader: undefined })(ready, 'd-1') as any;
    assert.deepEqual(r.status, { code: 0, message: '' });
    assert.deepEqual(r.ok_response.headers, []);
    assert.deepEqual(r.ok_response.headers_to_remove, GATE_OUTPUT_HEADERS);
    assert.deepEqual(r.dynamic_metadata.fields, {
      upstream_host: { stringValue: '10.0.0.7:5002' },
      plugin_id: { stringValue: 'a/b' },
      reason: { stringValue: 'plugin_ready' },
      decision_id: { stringValue: 'd-1' },
    });
  });

  it('allow with route header: overwrites it, does not also remove it', () => {
    const r = createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' })(ready, 'd-2') as any;
    assert.deepEqual(r.ok_response.headers, [
      { header: { key: 'x-envoy-original-dst-host', value: '10.0.0.7:5002' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ]);
    assert.ok(!r.ok_response.headers_to_remove.includes('x-envoy-original-dst-host'));
    assert.deepEqual(r.ok_response.headers_to_remove, GATE_OUTPUT_HEADERS);
  });

  it('allow routed nowhere: removes a client-sent route header', () => {
    const bypass: Allow = { ...ready, reason: 'route_bypass', upstream: undefined, pluginId: undefined };
    const r = createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' })(bypass, 'd-3') as any;
    assert.deepEqual(r.ok_response.headers, []);
    assert.deepEqual(r.ok_response.headers_to_remove, ['x-envoy-original-dst-host', ...GATE_OUTPUT_HEADERS]);
    assert.deepEqual(Object.keys(r.dynamic_metadata.fields), ['reason', 'decision_id']);
  });

  it('dry run: allowed, and the metadata says which deny enforcement would have returned', () => {
    const dry: Allow = { ...ready, reason: 'dry_run', wouldDeny: starting };
    const r = createResponseRenderer({ routeHeader: undefined })(dry, 'd-9') as any;
    assert.equal(r.status.code, 0);
    assert.deepEqual(r.dynamic_metadata.fields.reason, { stringValue: 'dry_run' });
    assert.deepEqual(r.dynamic_metadata.fields.would_deny, { stringValue: 'plugin_starting' });
  });

  it('a route header that is also a gate output header is set, not removed', () => {
    const r = createResponseRenderer({ routeHeader: 'x-plugin-gate-upstream' })(ready, 'd') as any;
    assert.ok(!r.ok_response.headers_to_remove.includes('x-plugin-gate-upstream'));
    const u = createResponseRenderer({ routeHeader: 'x-plugin-gate-upstream' })({ ...ready, upstream: undefined }, 'd') as any;
    assert.equal(u.ok_response.headers_to_remove.filter((h: string) => h === 'x-plugin-gate-upstream').length, 1);
  });

  it('deny 503: UNAVAILABLE, denied_response with status, headers, body', () => {
    const r = createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' })(starting, 'd-4') as any;
    assert.equal(r.status.code, 14);
    assert.equal(r.ok_response, undefined);
    assert.deepEqual(r.denied_response.status, { code: 503 });
    assert.equal(r.denied_response.body, body);
    const ow = (key: string, value: string) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    assert.deepEqual(r.denied_response.headers, [
      ow('retry-after', '5'),
      ow('content-type', 'application/json'),
      ow('x-plugin-gate-reason', 'plugin_starting'),
      ow('x-plugin-gate-decision-id', 'd-4'),
    ]);
    assert.deepEqual(r.dynamic_metadata.fields, {
      plugin_id: { stringValue: 'a/b' },
      reason: { stringValue: 'plugin_starting' },
      decision_id: { stringValue: 'd-4' },
    });
  });

  it('deny 400: INVALID_ARGUMENT and no retry-after', () => {
    const bad: Deny = { ...starting, reason: 'invalid_plugin_id', httpStatus: 400, retryAfterS: undefined, pluginId: undefined };
    const r = createResponseRenderer({ routeHeader: undefined })(bad, 'd-5') as any;
    assert.equal(r.status.code, 3);
    assert.deepEqual(r.denied_response.status, { code: 400 });
    assert.ok(!r.denied_response.headers.some((h: any) => h.header.key === 'retry-after'));
    assert.equal(r.dynamic_metadata.fields.plugin_id, undefined);
  });
});
