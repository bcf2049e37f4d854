import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GateError } from '../core/errors.js';
import { parseHealth } from './health.js';

describe('parseHealth', () => {
  it('reads a daemon health body', () => {
    const body = JSON.stringify({
      status: 'ok',
      pool_status: { free: 9990, busy: 10, total: 10000 },
      version: '0.5.7',
      build_time: '2026-01-01T00:00:00Z',
      platform: 'local',
      active_requests: 3,
      active_dispatch_requests: 2,
    });
    assert.deepEqual(parseHealth(body), { version: '0.5.7', platform: 'local', activeDispatchRequests: 2 });
  });

  it('tolerates missing and mistyped optional fields', () => {
    assert.deepEqual(parseHealth('{"status":"ok"}'), { version: undefined, platform: undefined, activeDispatchRequests: undefined });
    assert.deepEqual(parseHealth(JSON.stringify({ status: 'ok', version: 7, platform: 'a\nb', active_dispatch_requests: -1 })), {
      version: undefined,
      platform: undefined,
      activeDispatchRequests: undefined,
    });
    assert.equal((parseHealth(JSON.stringify({ status: 'ok', version: 'v'.repeat(500) })) as { version: unknown }).version, undefined);
  });

  for (const [name, body] of [
    ['HTML', '<html>ok</html>'],
    ['a JSON array', '[{"status":"ok"}]'],
    ['JSON null', 'null'],
    ['status other than ok', '{"status":"degraded"}'],
    ['no status', '{"version":"0.5.7"}'],
    ['empty', ''],
  ] as const) {
    it(`${name} → status_unparseable`, () => {
      const r = parseHealth(body);
      assert.ok(r instanceof GateError);
      assert.equal(r.code, 'status_unparseable');
    });
  }
});
