import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExpositionWriter, escapeLabelValue, goFloat } from './exposition.js';
import { parseExposition } from '../../test/support/sim-http.js';

test('goFloat prints numbers the way Go client_golang does', () => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [1, '1'],
    [0.5, '0.5'],
    [42, '42'],
    [100000, '100000'],
    [1234567, '1.234567e+06'],
    [2863936, '2.863936e+06'],
    [0.0001, '0.0001'],
    [2.3041e-5, '2.3041e-05'],
    [1767225605.25, '1.76722560525e+09'],
    [18_446_744_073_709_551_615, '1.8446744073709552e+19'],
    [-3, '-3'],
    [Infinity, '+Inf'],
    [-Infinity, '-Inf'],
    [NaN, 'NaN'],
  ];
  for (const [v, want] of cases) assert.equal(goFloat(v), want, `goFloat(${v})`);
});

test('label values are escaped and survive a round trip', () => {
  const raw = '/e/:hook_id/*path?q="a,b"\\c\nd';
  assert.equal(escapeLabelValue(raw), '/e/:hook_id/*path?q=\\"a,b\\"\\\\c\\nd');
  const text = new ExpositionWriter()
    .family('x_total', 'help with \\ and\nnewline', 'counter')
    .sample('x_total', [['endpoint', raw], ['method', 'GET']], 3)
    .toString();
  assert.match(text, /^# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\n/);
  const [s] = parseExposition(text);
  assert.deepEqual(s, { name: 'x_total', labels: { endpoint: raw, method: 'GET' }, value: 3 });
});

test('histogram buckets are cumulative and end with +Inf, _sum and _count', () => {
  const text = new ExpositionWriter().histogram('h', [['m', 'GET']], [0.1, 1], [2, 1, 4], 9.5).toString();
  const samples = parseExposition(text);
  assert.deepEqual(
    samples.map((s) => [s.name, s.labels['le'], s.value]),
    [
      ['h_bucket', '0.1', 2],
      ['h_bucket', '1', 3],
      ['h_bucket', '+Inf', 7],
      ['h_sum', undefined, 9.5],
      ['h_count', undefined, 7],
    ],
  );
});
