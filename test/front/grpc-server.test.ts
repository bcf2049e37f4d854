/**
 * The gRPC face on loopback, called by grpc-js clients built from Envoy's
 * official protos (and by a raw HTTP/2 client where grpc-js would refuse to
 * send what we need to test).
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { startGrpcServer, type GrpcServer } from '../../src/front/grpc/server.js';
import { allow, deny, officialCheckMethod, officialClient, StubService } from './fixtures.js';
import { ManualScheduler } from '../support/manual-scheduler.js';

const LISTEN = { host: '127.0.0.1', port: 0 };
const CALL_TIMEOUT_MS = 5000;

type Check = ReturnType<typeof officialClient>;

function check(client: Check, req: object, deadlineMs = CALL_TIMEOUT_MS): Promise<{ err: grpc.ServiceError | null; res: any }> {
  return new Promise((resolve) => {
    client.Check(req, { deadline: Date.now() + deadlineMs }, (err, res) => resolve({ err, res }));
  });
}

function healthClient(port: number): grpc.Client & Record<string, any> {
  const Ctor = grpc.makeGenericClientConstructor(healthService, 'Health');
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any;
}

function health(client: any, service: string): Promise<string> {
  return new Promise((resolve) => {
    client.check({ service }, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err: grpc.ServiceError | null, res: any) =>
      resolve(err ? `error:${grpc.status[err.code]}` : res.status),
    );
  });
}

const REQUEST = {
  attributes: {
    request: { http: { method: 'POST', path: '/plugin/t1/dispatch/tool/invoke', headers: { 'x-plugin-id': 'langgenius/openai' } } },
  },
};

describe('gRPC face', () => {
  const stub = new StubService();
  const logs: { obj: any; msg: string }[] = [];
  let server: GrpcServer;
  let client: Check;
  let hc: any;
  const sched = new ManualScheduler(Date.now());

  before(async () => {
    server = await startGrpcServer({
      listen: LISTEN,
      service: stub,
      scheduler: sched,
      config: { routeHeader: 'x-envoy-original-dst-host', grpcReflection: false },
      logger: { error: (obj, msg) => logs.push({ obj, msg }) },
    });
    client = officialClient(server.port);
    hc = healthClient(server.port);
  });

  after(async () => {
    client.close();
    hc.close();
    await server.close(500);
  });

  it('allow over the wire: status 0, route header set, metadata with upstream', async () => {
    stub.answer = allow();
    const { err, res } = await check(client, REQUEST);
    assert.equal(err, null);
    assert.equal(res.status.code, 0);
    assert.equal(res.http_response, 'ok_response');
    assert.deepEqual(
      res.ok_response.headers.map((h: any) => [h.header.key, h.header.value, h.append_action]),
      [['x-envoy-original-dst-host', '10.0.0.7:5002', 'OVERWRITE_IF_EXISTS_OR_ADD']],
    );
    assert.equal(res.dynamic_metadata.fields.upstream_host.stringValue, '10.0.0.7:5002');
    const last = stub.calls.at(-1)!;
    assert.equal(last.face, 'grpc');
    assert.equal(last.req.header('x-plugin-id'), 'langgenius/openai');
    assert.equal(last.req.path, '/plugin/t1/dispatch/tool/invoke');
  });

  it('deny over the wire: UNAVAILABLE with a 503 denied_response', async () => {
    const d = deny();
    stub.answer = d;
    const { err, res } = await check(client, REQUEST);
    assert.equal(err, null, 'a denial is a successful RPC whose status says deny');
    assert.equal(res.status.code, 14);
    assert.equal(res.denied_response.status.code, 'ServiceUnavailable');
    assert.equal(res.denied_response.body, d.body);
    assert.ok(res.denied_response.headers.some((h: any) => h.header.key === 'retry-after' && h.header.value === '5'));
  });

  it('health: NOT_SERVING until the service serves, then SERVING; setServing(false) drains', async () => {
    stub.isServing = false;
    assert.equal(await health(hc, ''), 'NOT_SERVING');
    assert.equal(await health(hc, 'envoy.service.auth.v3.Authorization'), 'NOT_SERVING');
    stub.isServing = true;
    assert.equal(await health(hc, ''), 'SERVING');
    assert.equal(await health(hc, 'envoy.service.auth.v3.Authorization'), 'SERVING');
    server.setServing(false);
    assert.equal(await health(hc, ''), 'NOT_SERVING');
    assert.equal(await health(hc, 'envoy.service.auth.v3.Authorization'), 'NOT_SERVING');
    // draining still answers checks
    stub.answer = allow();
    assert.equal((await check(client, REQUEST)).res.status.code, 0);
    server.setServing(true);
    assert.equal(await health(hc, ''), 'SERVING');
    assert.equal(await health(hc, 'no.such.Service'), 'error:NOT_FOUND');
  });

  it('health Watch follows the service on the refresh timer, without any Check', async () => {
    stub.isServing = false;
    server.setServing(true);
    const seen: string[] = [];
    const call = hc.watch({ service: '' });
    call.on('data', (r: any) => seen.push(r.status));
    call.on('error', () => undefined);
    const next = async (what: string, want: string): Promise<void> => {
      const deadline = Date.now() + CALL_TIMEOUT_MS;
      while (seen.at(-1) !== want) {
        if (Date.now() > deadline) assert.fail(`${what}: saw ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      await next('first status', 'NOT_SERVING');
      stub.isServing = true;
      sched.advance(999);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen, ['NOT_SERVING'], 'nothing pushed before the refresh is due');
      sched.advance(1);
      await next('refreshed status', 'SERVING');
    } finally {
      call.cancel();
    }
  });

  it('health: a throwing serving() reads as NOT_SERVING', async () => {
    const original = stub.serving;
    stub.serving = () => {
      throw new Error('snapshot unavailable');
    };
    try {
      assert.equal(await health(hc, ''), 'NOT_SERVING');
    } finally {
      stub.serving = original;
    }
    assert.equal(await health(hc, ''), 'SERVING');
  });

  it('a throwing service answers INTERNAL, is logged, and the server keeps serving', async () => {
    stub.throwOnCheck = new Error('bug');
    const before = logs.length;
    const { err } = await check(client, REQUEST);
    stub.throwOnCheck = undefined;
    assert.equal(err?.code, grpc.status.INTERNAL);
    assert.equal(logs.length, before + 1);
    assert.equal(logs.at(-1)!.obj.err.code, 'internal');
    stub.answer = allow();
    assert.equal((await check(client, REQUEST)).res.status.code, 0);
  });

  it('an expired deadline gets DEADLINE_EXCEEDED and no decision', async () => {
    const calls = stub.calls.length;
    const status = await rawCheck(server.port, '1n');
    assert.equal(status, String(grpc.status.DEADLINE_EXCEEDED));
    assert.equal(stub.calls.length, calls);
    // a sane deadline still works
    assert.equal(await rawCheck(server.port, '5S'), String(grpc.status.OK));
    assert.equal(stub.calls.length, calls + 1);
  });

  it('a CheckRequest over the 1 MiB cap is refused, and the server keeps serving', async () => {
    const calls = stub.calls.length;
    const huge = { attributes: { request: { http: { method: 'GET', path: '/', headers: { 'x-pad': 'p'.repeat(1_100_000) } } } } };
    const { err } = await check(client, huge);
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(stub.calls.length, calls);
    stub.answer = allow();
    assert.equal((await check(client, REQUEST)).res.status.code, 0);
  });

  it('a malformed CheckRequest is answered INTERNAL without a decision, and the server keeps serving', async () => {
    const calls = stub.calls.length;
    const good = officialCheckMethod().requestSerialize(REQUEST);
    const malformed = {
      truncated: good.subarray(0, good.length - 3),
      group: Buffer.from([0x0b, 0x08, 0x01, 0x0c]), // field 1 as a group: wire types 3 and 4
      'oversized length': Buffer.from([0x0a, 0xe8, 0x07, 0x00]), // attributes, 1000 bytes announced, 1 sent
    };
    const raw = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      for (const [what, bytes] of Object.entries(malformed)) {
        const err = await new Promise<grpc.ServiceError | null>((resolve) => {
          raw.makeUnaryRequest(
            '/envoy.service.auth.v3.Authorization/Check',
            (b: Buffer) => b,
            (b: Buffer) => b,
            bytes,
            { deadline: Date.now() + CALL_TIMEOUT_MS },
            (e) => resolve(e),
          );
        });
        // grpc-js answers a request its deserializer rejects itself; it names no detail unless
        // GRPC_NODE_DEBUG_SEND_ERROR_DETAILS is set.
        assert.equal(err?.code, grpc.status.INTERNAL, what);
        assert.equal(err?.details, 'Error deserializing request', what);
      }
    } finally {
      raw.close();
    }
    assert.equal(stub.calls.length, calls);
    stub.answer = allow();
    assert.equal((await check(client, REQUEST)).res.status.code, 0);
  });

  it('reflection is off by default', async () => {
    assert.equal(await reflectionList(server.port), `error:${grpc.status.UNIMPLEMENTED}`);
  });
});

describe('gRPC face with grpc-reflection on', () => {
  it('lists the Authorization service', async () => {
    const server = await startGrpcServer({ listen: LISTEN, service: new StubService(), config: { routeHeader: undefined, grpcReflection: true } });
    try {
      const out = await reflectionList(server.port);
      assert.ok(out.includes('envoy.service.auth.v3.Authorization'), out);
    } finally {
      await server.close(500);
    }
  });
});

/** One Check over raw HTTP/2 with the given grpc-timeout; resolves to grpc-status. */
function rawCheck(port: number, timeout: string): Promise<string> {
  const msg = officialCheckMethod().requestSerialize(REQUEST);
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error('raw check timed out'));
    }, CALL_TIMEOUT_MS);
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': '/envoy.service.auth.v3.Authorization/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': timeout,
    });
    let status: string | undefined;
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) status = String(t['grpc-status']);
    });
    req.resume();
    req.on('close', () => {
      clearTimeout(timer);
      session.close();
      resolve(status ?? 'none');
    });
    req.end(frame);
  });
}

/** ServerReflectionInfo list_services("*"): the raw response bytes as latin1 text, or error:<code>. */
function reflectionList(port: number): Promise<string> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<string>((resolve) => {
    const call = client.makeBidiStreamRequest(
      '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      (b: Buffer) => b,
      (b: Buffer) => b,
      new grpc.Metadata(),
      { deadline: Date.now() + CALL_TIMEOUT_MS },
    );
    let text = '';
    call.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      call.end();
    });
    call.on('error', (e: grpc.ServiceError) => resolve(`error:${e.code}`));
    call.on('end', () => resolve(text));
    // ServerReflectionRequest { list_services = 7: "*" }
    call.write(Buffer.from([0x3a, 0x01, 0x2a]));
  }).finally(() => client.close());
}
