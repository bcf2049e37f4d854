import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Decision, GateRequest } from '../../decide/types.js';
import { HeaderCollector, makeGateRequest, type CheckService } from '../service.js';
import { authorizationService } from './protos.js';
import { createResponseRenderer } from './response.js';
import { CHECK_SERVICE, createCheckHandler, deadlinePassed } from './server.js';

const allow: Decision = { allow: true, reason: 'not_plugin_scoped', upstream: '10.0.0.1:5002', pluginId: undefined, tenant: undefined, wouldDeny: undefined };

function service(onCheck: (req: GateRequest) => Decision): CheckService & { count: number } {
  const s = {
    count: 0,
    check(req: GateRequest) {
      s.count++;
      return { decision: onCheck(req), decisionId: 'id-1' };
    },
    serving: () => true,
  };
  return s;
}

function invoke(handler: grpc.handleUnaryCall<any, any>, deadline: grpc.Deadline): { err: any; value: any } {
  let out: { err: any; value: any } | undefined;
  const request = makeGateRequest({ method: 'GET', path: '/x', headers: new HeaderCollector(), requestId: undefined });
  const call = { request, getDeadline: () => deadline };
  handler(call as never, (err, value) => {
    out = { err, value };
  });
  assert.ok(out, 'the handler answers synchronously');
  return out;
}

describe('Check handler', () => {
  const render = createResponseRenderer({ routeHeader: undefined });

  it('answers DEADLINE_EXCEEDED without asking the service once the deadline has passed', () => {
    const s = service(() => allow);
    const logs: object[] = [];
    const h = createCheckHandler(s, render, { error: (o) => logs.push(o) });
    const r = invoke(h, new Date(Date.now() - 1));
    assert.equal(r.err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(s.count, 0);
    assert.equal(invoke(h, Date.now() - 5).err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(s.count, 0);
    assert.equal(logs.length, 0);
  });

  it('works normally with no deadline or a future one', () => {
    const s = service(() => allow);
    const h = createCheckHandler(s, render, { error: () => undefined });
    assert.equal(invoke(h, Infinity).err, null);
    const value = invoke(h, Date.now() + 60_000).value;
    assert.ok(Buffer.isBuffer(value), 'the answer leaves encoded');
    assert.equal((authorizationService()['Check']!.responseDeserialize(value) as any).status.code, 0);
    assert.equal(s.count, 2);
  });

  it('turns a throwing service into a logged INTERNAL', () => {
    const logs: { obj: any; msg: string }[] = [];
    const h = createCheckHandler(
      service(() => {
        throw new TypeError('boom');
      }),
      render,
      { error: (obj, msg) => logs.push({ obj, msg }) },
    );
    const r = invoke(h, Infinity);
    assert.equal(r.err.code, grpc.status.INTERNAL);
    assert.equal(r.value, undefined);
    assert.equal(logs.length, 1);
    assert.equal(logs[0]!.obj.err.code, 'internal');
    assert.equal(logs[0]!.obj.face, 'grpc');
  });
});

describe('CHECK_SERVICE', () => {
  it('is Authorization/Check, unary, at the path proto/ defines', () => {
    const ours = CHECK_SERVICE['Check'];
    const proto = authorizationService()['Check']!;
    assert.equal(ours.path, proto.path);
    assert.equal(ours.requestStream, false);
    assert.equal(ours.responseStream, false);
  });

  it('passes the encoded answer through and decodes the request into a GateRequest', () => {
    const answer = Buffer.from([1, 2, 3]);
    assert.equal(CHECK_SERVICE['Check'].responseSerialize(answer), answer);
    const bytes = authorizationService()['Check']!.requestSerialize({ attributes: { request: { http: { method: 'GET', path: '/p' } } } });
    const req = CHECK_SERVICE['Check'].requestDeserialize(bytes);
    assert.equal(req.method, 'GET');
    assert.equal(req.path, '/p');
  });
});

describe('deadlinePassed', () => {
  it('reads Date and number deadlines; Infinity never passes', () => {
    assert.equal(deadlinePassed(Infinity, 1e15), false);
    assert.equal(deadlinePassed(100, 100), true);
    assert.equal(deadlinePassed(101, 100), false);
    assert.equal(deadlinePassed(new Date(50), 100), true);
  });
});
