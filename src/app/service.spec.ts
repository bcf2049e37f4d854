import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { GateService } from './service.js';
import { createLogger } from '../observe/logger.js';
import { metrics, newTracker, okReport, OLD, T0 } from '../../test/support/fleet.js';
import type { GateRequest } from '../decide/types.js';

const A = '10.0.0.1:5002';

function req(plugin: string, extra: Record<string, string> = {}): GateRequest {
  const h = new Map(Object.entries({ 'x-plugin-id': plugin, ...extra }));
  return { method: 'POST', path: '/plugin/t1/dispatch/llm/invoke?token=s3cret', header: (n) => h.get(n), contextExtensions: new Map(), requestId: 'rid-1' };
}

function setup(decisionLog: 'all' | 'denied' | 'none', decisionLogRate: number) {
  const { tracker, clock } = newTracker([A]);
  tracker.ingest(okReport(A, T0, metrics({ 'a/ready': { g: 1 }, 'a/starting': { g: 0.5 } }, OLD)));
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const cfg = { unknownPlugin: 'allow' as const, retryAfterMs: 5_000, failedRetryAfterMs: 60_000, dryRun: false, decisionLog, decisionLogRate };
  const service = new GateService(() => tracker.snapshot(), cfg, clock, undefined, createLogger('info', [], sink));
  return { service, clock, lines };
}

describe('GateService', () => {
  it('logs denied decisions by default, with named fields only', () => {
    const { service, lines } = setup('denied', 0);
    service.check(req('a/ready'), 'grpc');
    const { decisionId } = service.check(req('a/starting', { 'x-api-key': 'k-123' }), 'grpc');
    assert.equal(lines.length, 1);
    const l = lines[0]!;
    assert.equal(l['reason'], 'plugin_starting');
    assert.equal(l['decision_id'], decisionId);
    assert.equal(l['path'], '/plugin/t1/dispatch/llm/invoke');
    assert.equal(l['request_id'], 'rid-1');
    assert.doesNotMatch(JSON.stringify(l), /k-123|s3cret/);
  });

  it('decision ids are unique and carry a per-process prefix', () => {
    const { service } = setup('none', 0);
    const ids = new Set(Array.from({ length: 100 }, () => service.check(req('a/ready'), 'http').decisionId));
    assert.equal(ids.size, 100);
    assert.equal(new Set([...ids].map((i) => i.split('-')[0])).size, 1);
  });

  it('limits decision log lines per second and counts the rest', () => {
    const { service, clock, lines } = setup('all', 3);
    for (let i = 0; i < 10; i++) service.check(req('a/ready'), 'grpc');
    assert.equal(lines.length, 3);
    assert.equal(service.takeSuppressed(), 7);
    assert.equal(service.takeSuppressed(), 0);
    clock.advance(1_000);
    for (let i = 0; i < 10; i++) service.check(req('a/starting'), 'grpc');
    assert.equal(lines.length, 6);
    assert.equal(service.takeSuppressed(), 7);
  });

  it('is not serving before the first complete round, nor while draining', () => {
    const { service } = setup('none', 0);
    assert.equal(service.serving(), true);
    service.drain();
    assert.equal(service.serving(), false);
  });
});
