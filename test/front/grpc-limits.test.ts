/**
 * Bounds on gRPC clients, driven with real HTTP/2 connections and streams: a
 * call whose request never finishes is closed after grpc-receive-timeout,
 * connections past grpc-max-connections are refused, the stream limit is
 * advertised, idle connections get a GOAWAY. Before, 30,000 unfinished streams
 * stayed open as long as the client wanted.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startGrpcServer, type GrpcServer } from '../../src/front/grpc/server.js';
import type { GrpcLimits } from '../../src/front/grpc/limits.js';
import { officialClient, StubService } from './fixtures.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

async function withServer(limits: GrpcLimits, body: (server: GrpcServer, refused: () => number) => Promise<void>): Promise<void> {
  const stub = new StubService();
  let refused = 0;
  const server = await startGrpcServer({
    listen: { host: '127.0.0.1', port: 0 },
    service: stub,
    config: { routeHeader: undefined, grpcReflection: false, ...limits },
    onConnectionRefused: () => refused++,
  });
  try {
    await body(server, () => refused);
  } finally {
    await server.close(0);
  }
}

function connect(port: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.once('remoteSettings', () => resolve(session));
    session.once('error', reject);
    session.once('close', () => reject(new Error('closed before SETTINGS')));
  });
}

/** A complete Check (an empty CheckRequest, END_STREAM) on an open session; resolves with its grpc-status. */
function completeCall(session: http2.ClientHttp2Session): Promise<string> {
  const req = session.request({ ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
  const status = grpcStatusOf(req);
  req.end(Buffer.alloc(5)); // uncompressed, zero-length message
  return status;
}

/** The grpc-status a Check stream ends with (in its headers or its trailers), 'none' without one; resolves once it closes. */
function grpcStatusOf(req: http2.ClientHttp2Stream): Promise<string> {
  let status = 'none';
  req.on('response', (h) => {
    if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
  });
  req.on('trailers', (t) => {
    if (t['grpc-status'] !== undefined) status = String(t['grpc-status']);
  });
  req.on('error', () => undefined);
  req.resume();
  return new Promise((resolve) => req.on('close', () => resolve(status)));
}

/** Connects, retrying while the server has not yet seen a closed connection go (real time, generous). */
async function connectWhenFree(port: number): Promise<http2.ClientHttp2Session> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await connect(port);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A Check stream that sends half a message and never ends; resolves with its grpc-status once the server closes it. */
function hangingCall(session: http2.ClientHttp2Session): Promise<string> {
  const req = session.request({ ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
  const frame = Buffer.alloc(5 + 4);
  frame.writeUInt32BE(200, 1); // announces 200 bytes, sends 4
  req.write(frame);
  return grpcStatusOf(req);
}

function oneCheck(port: number): Promise<grpc.ServiceError | null> {
  const client = officialClient(port);
  return new Promise((resolve) => {
    client.Check({ attributes: { request: { http: { method: 'GET', path: '/health/check', headers: {} } } } }, { deadline: Date.now() + 5_000 }, (err: grpc.ServiceError | null) => {
      client.close();
      resolve(err);
    });
  });
}

async function within<T>(ms: number, p: Promise<T>): Promise<T | 'timed out'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<'timed out'>((r) => (timer = setTimeout(() => r('timed out'), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

describe('gRPC client bounds', () => {
  it('grpc-receive-timeout: every unfinished call is answered DEADLINE_EXCEEDED and closed; complete calls are unaffected', async () => {
    await withServer({ grpcReceiveTimeoutMs: 300 }, async (server) => {
      const session = await connect(server.port);
      try {
        const statuses = await within(15_000, Promise.all(Array.from({ length: 200 }, () => hangingCall(session))));
        assert.notEqual(statuses, 'timed out', 'the server closed every unfinished stream');
        assert.deepEqual([...new Set(statuses as string[])], [String(grpc.status.DEADLINE_EXCEEDED)]);
        assert.equal(await oneCheck(server.port), null, 'a complete Check is still answered');
      } finally {
        session.destroy();
      }
    });
  });

  it('grpc-max-concurrent-streams is advertised in the server SETTINGS', async () => {
    await withServer({ grpcMaxConcurrentStreams: 7 }, async (server) => {
      const session = await connect(server.port);
      try {
        assert.equal(session.remoteSettings.maxConcurrentStreams, 7);
      } finally {
        session.destroy();
      }
    });
  });

  it('grpc-max-connections: connections past the cap are refused, and a freed slot is usable again', async () => {
    await withServer({ grpcMaxConnections: 3 }, async (server, refused) => {
      const open: http2.ClientHttp2Session[] = [];
      try {
        for (let i = 0; i < 3; i++) open.push(await connect(server.port));
        const extra = await within(10_000, connect(server.port).then((s) => s, (e: Error) => e));
        assert.ok(extra instanceof Error, 'the fourth connection is closed before any SETTINGS');
        assert.equal(refused(), 1, 'and counted');
        open.shift()!.destroy();
        open.push(await connectWhenFree(server.port)); // once the server has seen the close
        assert.equal(await completeCall(open.at(-1)!), String(grpc.status.OK), 'a Check on a connection within the cap is answered');
      } finally {
        for (const s of open) s.destroy();
      }
    });
  });

  it('grpc-max-connection-idle: a connection with no call gets a GOAWAY', async () => {
    await withServer({ grpcMaxConnectionIdleMs: 1_000 }, async (server) => {
      const session = await connect(server.port);
      try {
        const goaway = new Promise<string>((r) => session.once('goaway', () => r('goaway')));
        assert.equal(await within(15_000, goaway), 'goaway');
      } finally {
        session.destroy();
      }
    });
  });
});
