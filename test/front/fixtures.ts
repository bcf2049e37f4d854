/**
 * Shared pieces of the front tests: decisions built by hand, a stub
 * CheckService that records what it was asked, and the official Envoy protos.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Allow, Decision, Deny, GateRequest } from '../../src/decide/types.js';
import type { CheckService, FaceName } from '../../src/front/service.js';

export function allow(over: Partial<Allow> = {}): Allow {
  return {
    allow: true,
    reason: 'plugin_ready',
    upstream: '10.0.0.7:5002',
    pluginId: 'langgenius/openai',
    tenant: 'tenant-1',
    wouldDeny: undefined,
    ...over,
  };
}

export function envelopeLine(message: string): string {
  return JSON.stringify({ code: -500, message: JSON.stringify({ message, error_type: 'PluginDaemonInternalServerError', args: null }), data: null }) + '\n';
}

export function deny(over: Partial<Deny> = {}): Deny {
  const message = 'plugin langgenius/openai is starting on every pod; retry in 5s';
  return {
    allow: false,
    reason: 'plugin_starting',
    pluginId: 'langgenius/openai',
    tenant: 'tenant-1',
    httpStatus: 503,
    retryAfterS: 5,
    message,
    body: envelopeLine(message),
    ...over,
  };
}

/** A CheckService answering whatever `answer` says, recording every request. */
export class StubService implements CheckService {
  readonly calls: { req: GateRequest; face: FaceName }[] = [];
  answer: Decision | ((req: GateRequest) => Decision) = allow();
  isServing = false;
  throwOnCheck: unknown = undefined;
  private seq = 0;

  check(req: GateRequest, face: FaceName): { decision: Decision; decisionId: string } {
    this.calls.push({ req, face });
    if (this.throwOnCheck !== undefined) throw this.throwOnCheck;
    const decision = typeof this.answer === 'function' ? this.answer(req) : this.answer;
    return { decision, decisionId: `test-${++this.seq}` };
  }

  serving(): boolean {
    return this.isServing;
  }
}

/** Plain view of a GateRequest for deep comparisons (header names to read given). */
export function view(req: GateRequest, names: readonly string[]): Record<string, unknown> {
  const headers: Record<string, string | undefined> = {};
  for (const n of names) headers[n] = req.header(n);
  return {
    method: req.method,
    path: req.path,
    headers,
    contextExtensions: Object.fromEntries(req.contextExtensions),
    requestId: req.requestId,
  };
}

import { officialPackage } from '../support/official-protos.js';

export { OFFICIAL_DEPS, officialCheckMethod, officialPackage } from '../support/official-protos.js';

/** A grpc-js client for Authorization built from the official protos. */
export function officialClient(port: number): grpc.Client & {
  Check: (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: any) => void) => grpc.ClientUnaryCall;
} {
  const svc = officialPackage()['envoy.service.auth.v3.Authorization'] as protoLoader.ServiceDefinition;
  const Ctor = grpc.makeGenericClientConstructor(svc, 'Authorization');
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any;
}
