import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { EXTERNAL_AUTH_PROTO, authorizationService, findProtoDir } from './protos.js';

describe('protos', () => {
  it('finds proto/ at the package root from any depth below it', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const dir = findProtoDir(here);
    assert.ok(existsSync(join(dir, EXTERNAL_AUTH_PROTO)));
    assert.equal(findProtoDir(join(dir, '..', 'node_modules', '@grpc', 'grpc-js')), dir);
  });

  it('fails loudly when there is no proto/ above', () => {
    assert.throws(() => findProtoDir('/'), /not found/);
  });

  it('defines Authorization/Check as unary with the Envoy path', () => {
    const check = authorizationService()['Check']!;
    assert.equal(check.path, '/envoy.service.auth.v3.Authorization/Check');
    assert.equal(check.requestStream, false);
    assert.equal(check.responseStream, false);
  });
});
