import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GateError } from '../core/errors.js';
import { parseReady } from './ready.js';

const SHA = 'a'.repeat(64);

describe('parseReady', () => {
  it('200 ready: no detail, even if one is sent', () => {
    const r = parseReady(200, JSON.stringify({ status: 'ok', ready: true, reason: 'plugins_ready', detail: { Missing: [`a/x:1.0.0@${SHA}`] } }), 100);
    assert.deepEqual(r, { ready: true, reason: 'plugins_ready', detail: undefined });
    assert.deepEqual(parseReady(200, '{"status":"ok","ready":true,"reason":"non_local_platform"}', 100), {
      ready: true,
      reason: 'non_local_platform',
      detail: undefined,
    });
  });

  it('503 unready is a successful read; unique identifiers become plugin ids, merged and deduplicated', () => {
    const body = JSON.stringify({
      status: 'unready',
      ready: false,
      reason: 'plugins_starting',
      detail: {
        Ready: false,
        InitialPluginsReady: false,
        InitialExpected: 3,
        InitialRunning: 1,
        InitialMissing: [`langgenius/openai:0.3.6@${SHA}`, `langgenius/gemini:0.7.20@${SHA}`],
        InitialFailed: null,
        RuntimePluginsLoading: true,
        RuntimeMissing: [`acme/late:1.2.3.4-beta@${SHA}`],
        Expected: 4,
        Running: 1,
        Missing: [`langgenius/openai:0.3.7@${SHA}`, 'not a unique id', 42, `UPPER/x:1.0.0@${SHA}`],
        Failed: [`acme/broken:2.0.0@${SHA}`, 'acme/bare-id'],
        UpdatedAt: '2026-01-01T00:00:00Z',
        Platform: 'local',
        Installed: 4,
        Ignored: 0,
        MaxRetries: 15,
      },
    });
    assert.deepEqual(parseReady(503, body, 100), {
      ready: false,
      reason: 'plugins_starting',
      detail: {
        missing: ['langgenius/openai', 'langgenius/gemini', 'acme/late'],
        failed: ['acme/broken', 'acme/bare-id'],
        expected: 4,
        running: 1,
        maxRetries: 15,
      },
    });
  });

  it('503 with detail null or missing; odd reasons are not carried', () => {
    assert.deepEqual(parseReady(503, '{"status":"unready","ready":false,"reason":"manager_not_initialized","detail":null}', 100), {
      ready: false,
      reason: 'manager_not_initialized',
      detail: undefined,
    });
    assert.deepEqual(parseReady(503, '{"ready":false,"reason":"<script>"}', 100), { ready: false, reason: 'unknown', detail: undefined });
  });

  it('caps each list at maxPlugins', () => {
    const Missing = Array.from({ length: 10 }, (_, i) => `a/p${i}:1.0.0@${SHA}`);
    const r = parseReady(503, JSON.stringify({ ready: false, reason: 'plugins_starting', detail: { Missing } }), 3);
    assert.ok(!(r instanceof GateError));
    assert.deepEqual(r.detail?.missing, ['a/p0', 'a/p1', 'a/p2']);
  });

  for (const [name, status, body, code] of [
    ['503 from something else (HTML)', 503, '<html>Service Unavailable</html>', 'status_http_error'],
    ['503 claiming ready', 503, '{"ready":true}', 'status_http_error'],
    ['404 (daemon without the endpoint)', 404, '404 page not found', 'status_http_error'],
    ['200 not JSON', 200, 'ok', 'status_unparseable'],
    ['200 without ready: true', 200, '{"status":"ok","ready":false}', 'status_unparseable'],
  ] as const) {
    it(`${name} → ${code}`, () => {
      const r = parseReady(status, body, 100);
      assert.ok(r instanceof GateError);
      assert.equal(r.code, code);
    });
  }
});
