/**
 * Loads plugin-gate's own copy of the Envoy ext_authz messages (`proto/`) with
 * proto-loader. The Check path does not use them: it has its own codec
 * (request.ts, response.ts, CHECK_SERVICE in server.ts). They serve server
 * reflection, the demo's client, and the tests that check that codec
 * against them; the official Envoy protos are a test-time reference
 * (test/front/wire-compat.test.ts).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';
export const EXTERNAL_AUTH_PROTO = 'envoy/service/auth/v3/external_auth.proto';

/**
 * Options every decoder of ours shares. Well-known google.protobuf types come
 * from protobufjs' bundled definitions, whose field names are camelCase even
 * with keepCase (so a Struct value is `{ stringValue }`).
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/**
 * The package root: the nearest directory upwards holding both package.json and
 * proto/. Works from src/ (ts sources), dist/src/ (compiled) and an installed
 * package alike, without assuming how deep this file sits.
 */
export function findProtoDir(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(dir, 'package.json')) && existsSync(join(candidate, EXTERNAL_AUTH_PROTO))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`proto/${EXTERNAL_AUTH_PROTO} not found above ${start}`);
    dir = up;
  }
}

let cached: protoLoader.PackageDefinition | undefined;

/** Our package definition (loaded once per process). */
export function loadGatePackage(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(EXTERNAL_AUTH_PROTO, { ...LOADER_OPTIONS, includeDirs: [findProtoDir()] });
  return cached;
}

/** The Authorization service definition as proto-loader builds it (protobufjs underneath). */
export function authorizationService(): protoLoader.ServiceDefinition {
  const def = loadGatePackage()[AUTHORIZATION_SERVICE];
  if (def === undefined || !('Check' in def)) throw new Error(`${AUTHORIZATION_SERVICE} missing from ${EXTERNAL_AUTH_PROTO}`);
  return def as protoLoader.ServiceDefinition;
}
