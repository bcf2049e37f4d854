/**
 * Envoy's official API protos, as @grpc/grpc-js-xds ships them under deps/:
 * the independent reference the wire tests and benchmarks encode and decode with.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS } from '../../src/front/grpc/protos.js';

const require = createRequire(import.meta.url);

/** deps/ of @grpc/grpc-js-xds: Envoy's API protos and everything they import. */
export const OFFICIAL_DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
export const OFFICIAL_INCLUDE_DIRS: readonly string[] = ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'].map((d) => join(OFFICIAL_DEPS, d));
export const EXTERNAL_AUTH_PROTO = 'envoy/service/auth/v3/external_auth.proto';

let official: protoLoader.PackageDefinition | undefined;

/** Envoy's official definitions, loaded with the same options as the gate's own. */
export function officialPackage(): protoLoader.PackageDefinition {
  official ??= protoLoader.loadSync(EXTERNAL_AUTH_PROTO, { ...LOADER_OPTIONS, includeDirs: [...OFFICIAL_INCLUDE_DIRS] });
  return official;
}

export function officialCheckMethod(): protoLoader.MethodDefinition<object, object> {
  const svc = officialPackage()['envoy.service.auth.v3.Authorization'] as protoLoader.ServiceDefinition;
  return svc['Check'] as protoLoader.MethodDefinition<object, object>;
}
