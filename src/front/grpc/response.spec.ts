import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Allow, Deny } from '../../decide/types.js';
import { authorizationService } from './protos.js';
import { createResponseRenderer, GATE_OUTPUT_HEADERS } from './response.js';

const ready: Allow = { allow: true, reason: 'plugin_ready', upstream: '10.0.0.7:5002', pluginId: 'a/b', tenant: 't', wouldDeny: undefined };
const body = '{"code":-500,"message":"{}","data":null}\n';
const starting: Deny = { allow: false, reason: 'plugin_starting', pluginId: 'a/b', tenant: 't', httpStatus: 503, retryAfterS: 5, message: 'm', body };
const OW = 'OVERWRITE_IF_EXISTS_OR_ADD';

const method = authorizationService()['Check']!;

/** The rendered bytes, decoded with proto-loader over proto/ into a plain view. */
function decoded(bytes: Buffer): any {
  const r = method.responseDeserialize(bytes) as any;
  const headers = (list: any[]) => list.map((h) => [h.header.key, h.header.value, h.append_action]);
  return {
    status: { code: r.status.code, message: r.status.message },
    ok: r.ok_response === undefined || r.ok_response === null ? undefined : { headers: headers(r.ok_response.headers), remove: r.ok_response.headers_to_remove },
    denied:
      r.denied_response === undefined || r.denied_response === null
        ? undefined
        : { status: r.denied_response.status.code, headers: headers(r.denied_response.headers), body: r.denied_response.body },
    metadata: Object.fromEntries(Object.entries(r.dynamic_metadata.fields).map(([k, v]: [string, any]) => [k, v.stringValue])),
  };
}

/** protobufjs's encoding of the message object the renderer used to build: the bytes must be the same. */
function encoded(msg: object): Buffer {
  return method.responseSerialize(msg);
}

const ow = (key: string, value: string) => ({ header: { key, value }, append_action: OW });

describe('createResponseRenderer', () => {
  it('allow without route header: status 0, removes gate headers, metadata carries upstream', () => {
    const bytes = createResponseRenderer({ routeHeader: undefined })(ready, 'd-1');
    assert.deepEqual(decoded(bytes), {
      status: { code: 0, message: '' },
      ok: { headers: [], remove: GATE_OUTPUT_HEADERS },
      denied: undefined,
      metadata: { upstream_host: '10.0.0.7:5002', plugin_id: 'a/b', reason: 'plugin_ready', decision_id: 'd-1' },
    });
    const fields = { upstream_host: { stringValue: '10.0.0.7:5002' }, plugin_id: { stringValue: 'a/b' }, reason: { stringValue: 'plugin_ready' }, decision_id: { stringValue: 'd-1' } };
    assert.deepEqual(bytes, encoded({ status: { code: 0, message: '' }, ok_response: { headers: [], headers_to_remove: GATE_OUTPUT_HEADERS }, dynamic_metadata: { fields } }));
  });

  it('allow with route header: overwrites it, does not also remove it', () => {
    const bytes = createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' })(ready, 'd-2');
    const r = decoded(bytes);
    assert.deepEqual(r.ok, { headers: [['x-envoy-original-dst-host', '10.0.0.7:5002', OW]], remove: GATE_OUTPUT_HEADERS });
    const fields = { upstream_host: { stringValue: '10.0.0.7:5002' }, plugin_id: { stringValue: 'a/b' }, reason: { stringValue: 'plugin_ready' }, decision_id: { stringValue: 'd-2' } };
    assert.deepEqual(
      bytes,
      encoded({ status: { code: 0, message: '' }, ok_response: { headers: [ow('x-envoy-original-dst-host', '10.0.0.7:5002')], headers_to_remove: GATE_OUTPUT_HEADERS }, dynamic_metadata: { fields } }),
    );
  });

  it('allow routed nowhere: removes a client-sent route header', () => {
    const bypass: Allow = { ...ready, reason: 'route_bypass', upstream: undefined, pluginId: undefined };
    const r = decoded(createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' })(bypass, 'd-3'));
    assert.deepEqual(r.ok, { headers: [], remove: ['x-envoy-original-dst-host', ...GATE_OUTPUT_HEADERS] });
    assert.deepEqual(r.metadata, { reason: 'route_bypass', decision_id: 'd-3' });
  });

  it('dry run: allowed, and the metadata says which deny enforcement would have returned', () => {
    const dry: Allow = { ...ready, reason: 'dry_run', wouldDeny: starting };
    const r = decoded(createResponseRenderer({ routeHeader: undefined })(dry, 'd-9'));
    assert.equal(r.status.code, 0);
    assert.deepEqual(r.metadata, { upstream_host: '10.0.0.7:5002', plugin_id: 'a/b', reason: 'dry_run', decision_id: 'd-9', would_deny: 'plugin_starting' });
  });

  it('a held request carries held_ms, after decision_id, on allows and denies', () => {
    const render = createResponseRenderer({ routeHeader: undefined });
    const a = decoded(render({ ...ready, reason: 'plugin_ready_after_hold', heldMs: 1234 }, 'd-h1'));
    assert.deepEqual(Object.entries(a.metadata).slice(-2), [['decision_id', 'd-h1'], ['held_ms', '1234']]);
    const d = decoded(render({ ...starting, heldMs: 0.5 }, 'd-h2'));
    assert.deepEqual(Object.entries(d.metadata).slice(-2), [['decision_id', 'd-h2'], ['held_ms', '0.5']]);
  });

  it('a route header that is also a gate output header is set, not removed', () => {
    const r = decoded(createResponseRenderer({ routeHeader: 'x-plugin-gate-upstream' })(ready, 'd'));
    assert.ok(!r.ok.remove.includes('x-plugin-gate-upstream'));
    const u = decoded(createResponseRenderer({ routeHeader: 'x-plugin-gate-upstream' })({ ...ready, upstream: undefined }, 'd'));
    assert.equal(u.ok.remove.filter((h: string) => h === 'x-plugin-gate-upstream').length, 1);
  });

  it('deny 503: UNAVAILABLE, denied_response with status, headers, body', () => {
    const bytes = createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' })(starting, 'd-4');
    assert.deepEqual(decoded(bytes), {
      status: { code: 14, message: 'plugin_starting' },
      ok: undefined,
      denied: {
        status: 'ServiceUnavailable',
        headers: [
          ['retry-after', '5', OW],
          ['content-type', 'application/json', OW],
          ['x-plugin-gate-reason', 'plugin_starting', OW],
          ['x-plugin-gate-decision-id', 'd-4', OW],
        ],
        body,
      },
      metadata: { plugin_id: 'a/b', reason: 'plugin_starting', decision_id: 'd-4' },
    });
    const headers = [ow('retry-after', '5'), ow('content-type', 'application/json'), ow('x-plugin-gate-reason', 'plugin_starting'), ow('x-plugin-gate-decision-id', 'd-4')];
    const fields = { plugin_id: { stringValue: 'a/b' }, reason: { stringValue: 'plugin_starting' }, decision_id: { stringValue: 'd-4' } };
    assert.deepEqual(
      bytes,
      encoded({ status: { code: 14, message: 'plugin_starting' }, denied_response: { status: { code: 503 }, headers, body }, dynamic_metadata: { fields } }),
    );
  });

  it('deny 400: INVALID_ARGUMENT and no retry-after', () => {
    const bad: Deny = { ...starting, reason: 'invalid_plugin_id', httpStatus: 400, retryAfterS: undefined, pluginId: undefined };
    const r = decoded(createResponseRenderer({ routeHeader: undefined })(bad, 'd-5'));
    assert.deepEqual(r.status, { code: 3, message: 'invalid_plugin_id' });
    assert.equal(r.denied.status, 'BadRequest');
    assert.ok(!r.denied.headers.some((h: string[]) => h[0] === 'retry-after'));
    assert.deepEqual(r.metadata, { reason: 'invalid_plugin_id', decision_id: 'd-5' });
  });

  it('the same decision answered twice carries each call its own decision id', () => {
    const render = createResponseRenderer({ routeHeader: 'x-envoy-original-dst-host' });
    for (const d of [ready, starting]) {
      const first = decoded(render(d, 'id-first'));
      const second = decoded(render(d, 'a-much-longer-second-decision-id'));
      const third = decoded(render(d, 'x'));
      assert.equal(first.metadata.decision_id, 'id-first');
      assert.equal(second.metadata.decision_id, 'a-much-longer-second-decision-id');
      assert.equal(third.metadata.decision_id, 'x');
      if (!d.allow) {
        assert.equal(first.denied.headers.at(-1)[1], 'id-first');
        assert.equal(second.denied.headers.at(-1)[1], 'a-much-longer-second-decision-id');
        assert.equal(third.denied.headers.at(-1)[1], 'x');
        assert.equal(second.denied.body, body);
      }
    }
  });

  it('a deny with the same body but other fields gets its own template', () => {
    const render = createResponseRenderer({ routeHeader: undefined });
    decoded(render(starting, 'warm'));
    const other: Deny = { ...starting, reason: 'plugin_failed', retryAfterS: 30, pluginId: 'c/d' };
    const r = decoded(render(other, 'd-6'));
    assert.deepEqual(r.status, { code: 14, message: 'plugin_failed' });
    assert.deepEqual(r.denied.headers.slice(0, 1), [['retry-after', '30', OW]]);
    assert.deepEqual(r.metadata, { plugin_id: 'c/d', reason: 'plugin_failed', decision_id: 'd-6' });
    assert.deepEqual(decoded(render(starting, 'd-7')).metadata, { plugin_id: 'a/b', reason: 'plugin_starting', decision_id: 'd-7' });
  });

  it('writes strings that are not ASCII as UTF-8', () => {
    const r = decoded(createResponseRenderer({ routeHeader: 'x-route' })({ ...ready, upstream: 'h\u00f6st:1', pluginId: 'a/\u4e2d' }, 'id-\u{1F600}'));
    assert.deepEqual(r.ok.headers, [['x-route', 'h\u00f6st:1', OW]]);
    assert.deepEqual(r.metadata, { upstream_host: 'h\u00f6st:1', plugin_id: 'a/\u4e2d', reason: 'plugin_ready', decision_id: 'id-\u{1F600}' });
  });
});
