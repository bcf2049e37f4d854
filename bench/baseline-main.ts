#!/usr/bin/env node
/**
 * Floors for the gRPC benchmark (OPA's "authz server that allows everything"
 * scenario): a server that answers every Check with the same canned allow,
 * without deciding anything.
 *
 *   node dist/bench/baseline-main.js grpc-js [IP:port]
 *                                                grpc-js with the gate's own Check codec and server options,
 *                                                routing every Check to IP:port (default 127.0.0.1:5002),
 *                                                with grpc.health.v1 SERVING (Envoy health-checks it)
 *   node dist/bench/baseline-main.js http2     bare node:http2, a pre-encoded gRPC answer
 *   node dist/bench/baseline-main.js noop      grpc-js loading Envoy's official protos, answering a bare OK (status 0, nothing else)
 *
 * Prints `port=N`; SIGTERM exits.
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { createResponseRenderer } from '../src/front/grpc/response.js';
import { CHECK_SERVICE, SERVER_OPTIONS } from '../src/front/grpc/server.js';
import { officialPackage } from './lib/envoy.js';

const kind = process.argv[2];
const render = createResponseRenderer({ routeHeader: undefined });
const CANNED = render(
  { allow: true, reason: 'plugin_ready', upstream: process.argv[3] ?? '127.0.0.1:5002', pluginId: 'langgenius/openai', tenant: undefined, wouldDeny: undefined },
  'baseline-0',
);

const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();
process.on('SIGTERM', () => process.exit(0));

/** Binds an ephemeral loopback port and prints it (`port=N`); exits 1 if it cannot. */
function listen(server: grpc.Server): void {
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`port=${port}\n`);
  });
}

if (kind === 'grpc-js') {
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(CHECK_SERVICE, {
    Check: (_call: grpc.ServerUnaryCall<unknown, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, CANNED),
  });
  new HealthImplementation({ '': 'SERVING', 'envoy.service.auth.v3.Authorization': 'SERVING' }).addToServer(server);
  listen(server);
} else if (kind === 'noop') {
  const server = new grpc.Server();
  const svc = (officialPackage()['envoy.service.auth.v3.Authorization'] as grpc.ServiceDefinition);
  server.addService(svc, {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { status: { code: 0 } }),
  });
  listen(server);
} else if (kind === 'http2') {
  const message = CANNED;
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
    stream.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`port=${typeof addr === 'object' && addr !== null ? addr.port : 0}\n`);
  });
} else {
  process.stderr.write('usage: baseline-main.js grpc-js|http2\n');
  process.exit(2);
}
