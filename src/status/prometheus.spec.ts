import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseExposition, parseValue } from './prometheus.js';
import { daemonExposition, legacyExposition } from '../../test/status/daemon-exposition.js';

const ok = (text: string, maxPlugins = 100) => {
  const r = parseExposition(text, maxPlugins);
  if (!r.ok) assert.fail(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r;
};
const unparseable = (text: string) => {
  const r = parseExposition(text, 100);
  assert.equal(r.ok, false, `expected unparseable for ${JSON.stringify(text.slice(0, 80))}`);
  if (!r.ok) assert.equal(r.error.code, 'status_unparseable');
};
const obj = (m: ReadonlyMap<string, number>) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));

describe('parseExposition on a daemon exposition', () => {
  const plugins = [
    { id: 'langgenius/openai', status: 1, failed: 0, restarts: 2 },
    { id: 'langgenius/gemini', status: 0.5, failed: 3 },
    { id: 'acme/broken', status: 0, failed: 15, restarts: 1 },
    { id: 'noauthor', status: 1 },
  ];

  for (const variant of [
    { name: 'plain', opts: {} },
    { name: 'CRLF line ends', opts: { crlf: true } },
    { name: 'no trailing newline', opts: { trailingNewline: false } },
    { name: 'sample timestamps', opts: { timestamps: true } },
  ]) {
    it(`reads the plugin families (${variant.name})`, () => {
      const r = ok(daemonExposition(plugins, { startSeconds: 1767225500.5, ...variant.opts }));
      assert.deepEqual(obj(r.data.runtimeStatus), { 'acme/broken': 0, 'langgenius/gemini': 0.5, 'langgenius/openai': 1, noauthor: 1 });
      assert.deepEqual(obj(r.data.failedLaunches), { 'acme/broken': 15, 'langgenius/gemini': 3, 'langgenius/openai': 0 });
      assert.deepEqual(obj(r.data.restarts), { 'acme/broken': 1, 'langgenius/openai': 2 });
      assert.equal(r.data.processStartMs, 1767225500500);
      assert.equal(r.droppedSeries, 0);
      assert.equal(r.invalidIds, 0);
    });
  }

  it('a queued plugin has no series at all: absent from every map', () => {
    const r = ok(daemonExposition([{ id: 'a/queued', status: undefined }, { id: 'a/up', status: 1 }]));
    assert.equal(r.data.runtimeStatus.has('a/queued'), false);
    assert.equal(r.data.runtimeStatus.get('a/up'), 1);
  });

  it('a valid exposition without plugin families (daemon < 0.5.7) gives empty maps', () => {
    const r = ok(legacyExposition());
    assert.equal(r.data.runtimeStatus.size, 0);
    assert.equal(r.data.failedLaunches.size, 0);
    assert.equal(r.data.restarts.size, 0);
    assert.equal(r.data.processStartMs, undefined);
  });

  it('keeps at most maxPlugins ids, first seen first, and counts the dropped series', () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ id: `a/p${i}`, status: 1 }));
    const r = ok(daemonExposition(many), 4);
    assert.deepEqual([...r.data.runtimeStatus.keys()], ['a/p0', 'a/p1', 'a/p2', 'a/p3']);
    assert.equal(r.droppedSeries, 6);
  });

  it('the cap is shared by all families: a plugin dropped in one is absent from all', () => {
    const r = ok(daemonExposition([{ id: 'a/one', status: 1, failed: 1 }, { id: 'a/two', status: 1, failed: 2 }]), 1);
    assert.deepEqual([...r.data.failedLaunches.keys()], ['a/one']);
    assert.deepEqual([...r.data.runtimeStatus.keys()], ['a/one']);
  });
});

describe('parseExposition: series rules', () => {
  it('prefers the local runtime series of a plugin, whatever the order', () => {
    for (const text of [
      'plugin_runtime_status{plugin_id="a/x",runtime_type="remote"} 1\nplugin_runtime_status{plugin_id="a/x",runtime_type="local"} 0\n',
      'plugin_runtime_status{plugin_id="a/x",runtime_type="local"} 0\nplugin_runtime_status{plugin_id="a/x",runtime_type="remote"} 1\n',
    ]) {
      assert.equal(ok(text).data.runtimeStatus.get('a/x'), 0);
    }
  });

  it('without a local series takes the largest other value; no runtime_type counts as local', () => {
    const r = ok(
      'plugin_runtime_status{plugin_id="a/r",runtime_type="remote"} 0\n' +
        'plugin_runtime_status{plugin_id="a/r",runtime_type="serverless"} 0.5\n' +
        'plugin_runtime_status{plugin_id="a/n"} 0.5\n' +
        'plugin_runtime_status{runtime_type="remote",plugin_id="a/n"} 1\n',
    );
    assert.equal(r.data.runtimeStatus.get('a/r'), 0.5);
    assert.equal(r.data.runtimeStatus.get('a/n'), 0.5);
  });

  it('labels in any order, spaces around tokens, trailing comma', () => {
    const r = ok(
      'plugin_installations_total{ status = "failed" , plugin_id="a/x", } 4\n' +
        'plugin_installations_total{plugin_id="a/x",runtime_type="local",status="failed"} 1 1767225600000\n' +
        'plugin_installations_total{status="success",plugin_id="a/x"} 9\n',
    );
    assert.equal(r.data.failedLaunches.get('a/x'), 5);
  });

  it('sums restarts over runtime types', () => {
    const r = ok('plugin_restarts_total{plugin_id="a/x",runtime_type="local"} 2\nplugin_restarts_total{runtime_type="remote",plugin_id="a/x"} 3\n');
    assert.equal(r.data.restarts.get('a/x'), 5);
  });

  it('ignores NaN and ±Inf values, but they do not make the body unparseable', () => {
    const r = ok(
      'plugin_runtime_status{plugin_id="a/nan"} NaN\n' +
        'plugin_runtime_status{plugin_id="a/inf"} +Inf\n' +
        'plugin_restarts_total{plugin_id="a/x"} -Inf\n' +
        'plugin_installations_total{plugin_id="a/x",status="failed"} NaN\n' +
        'process_start_time_seconds NaN\n' +
        'go_gc_duration_seconds_bucket{le="+Inf"} 3\n',
    );
    assert.equal(r.data.runtimeStatus.size, 0);
    assert.equal(r.data.restarts.size, 0);
    assert.equal(r.data.failedLaunches.size, 0);
    assert.equal(r.data.processStartMs, undefined);
  });

  it('unescapes label values; an id that is invalid after unescaping never enters a map', () => {
    const r = ok(
      'plugin_runtime_status{plugin_id="a/ok"} 1\n' +
        'plugin_runtime_status{plugin_id="a/x\\"y"} 1\n' +
        'plugin_runtime_status{plugin_id="a/x\\\\y"} 1\n' +
        'plugin_runtime_status{plugin_id="a/x\\ny"} 1\n' +
        'plugin_runtime_status{plugin_id="A/Upper"} 1\n' +
        'plugin_runtime_status{plugin_id=""} 1\n' +
        'plugin_runtime_status{runtime_type="local"} 1\n' +
        `plugin_runtime_status{plugin_id="${'x'.repeat(400)}"} 1\n`,
    );
    assert.deepEqual([...r.data.runtimeStatus.keys()], ['a/ok']);
    assert.equal(r.invalidIds, 7);
  });

  it('an escaped quote or brace inside a label value does not end the label set', () => {
    const r = ok('plugin_runtime_status{note="} 7 \\" {",plugin_id="a/x"} 0.5\n');
    assert.equal(r.data.runtimeStatus.get('a/x'), 0.5);
  });

  it('ignores families that only share a prefix with a wanted one', () => {
    const r = ok(
      '# TYPE x gauge\nplugin_runtime_status_total{plugin_id="a/x"} 1\nplugin_runtime_statusx{plugin_id="a/x"} 1\nprocess_start_time_seconds_x 5\n',
    );
    assert.equal(r.data.runtimeStatus.size, 0);
    assert.equal(r.data.processStartMs, undefined);
  });

  it('accepts blank lines, indented lines and free comments', () => {
    const r = ok('\n\n# a free comment\n  # HELP plugin_runtime_status x\n\n\tplugin_runtime_status{plugin_id="a/x"}\t1\t\n\n');
    assert.equal(r.data.runtimeStatus.get('a/x'), 1);
  });
});

describe('parseExposition: not exposition → status_unparseable', () => {
  const cases: [string, string][] = [
    ['empty body', ''],
    ['blank lines only', '\n \n\t\n'],
    ['free comments only', '# hello\n# world\n'],
    ['HTML', '<!DOCTYPE html>\n<html><body>Bad Gateway</body></html>\n'],
    ['JSON', '{"status":"ok","version":"0.5.7"}'],
    ['plain-text 404', '404 page not found\n'],
    ['plain text', 'Not Found\n'],
    ['binary', '\u0000\u0001\u0002\u00ff\u00fe garbage'],
    ['truncated label set in a wanted family', '# TYPE plugin_runtime_status gauge\nplugin_runtime_status{plugin_id="a/x" 1\n'],
    ['unterminated label value', '# TYPE plugin_runtime_status gauge\nplugin_runtime_status{plugin_id="a/x} 1\n'],
    ['missing value in a wanted family', '# TYPE plugin_runtime_status gauge\nplugin_runtime_status{plugin_id="a/x"}\n'],
    ['bad value in a wanted family', '# TYPE plugin_runtime_status gauge\nplugin_runtime_status{plugin_id="a/x"} running\n'],
    ['bad timestamp', '# TYPE plugin_restarts_total counter\nplugin_restarts_total{plugin_id="a/x"} 1 soon\n'],
    ['extra token', '# TYPE plugin_restarts_total counter\nplugin_restarts_total{plugin_id="a/x"} 1 2 3\n'],
    ['duplicate label', 'plugin_restarts_total{plugin_id="a/x",plugin_id="a/y"} 1\n'],
    ['a line that is not a sample after good ones', legacyExposition() + '<html>\n'],
    ['name without a value', legacyExposition() + 'lonely_name\n'],
  ];
  for (const [name, text] of cases) it(name, () => unparseable(text));
});

describe('parseValue', () => {
  it('reads the spellings Go writes', () => {
    assert.equal(parseValue('1'), 1);
    assert.equal(parseValue('-0.5'), -0.5);
    assert.equal(parseValue('2.3855864e+07'), 23855864);
    assert.equal(parseValue('.5'), 0.5);
    assert.equal(parseValue('+Inf'), Infinity);
    assert.equal(parseValue('-Inf'), -Infinity);
    assert.ok(Number.isNaN(parseValue('NaN')));
    for (const bad of ['', 'x', '1,5', '0x10', '1e', '--1', 'Infinit']) assert.equal(parseValue(bad), undefined, bad);
  });
});

describe('parseExposition properties', () => {
  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), fc.integer({ min: 1, max: 5 }), (s, max) => {
        const r = parseExposition(s, max);
        assert.equal(typeof r.ok, 'boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on mutated expositions, and never keeps an invalid id or more than maxPlugins', () => {
    const base = daemonExposition([
      { id: 'a/x', status: 1, failed: 1, restarts: 1 },
      { id: 'b/y', status: 0.5 },
      { id: 'c/z', status: 0 },
    ]);
    const idChars = fc.constantFrom(...'ab/_-"\\{}=, \n1'.split(''));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: base.length }),
        fc.integer({ min: 0, max: 20 }),
        fc.string({ unit: idChars, maxLength: 20 }),
        fc.integer({ min: 1, max: 3 }),
        (at, cut, insert, max) => {
          const text = base.slice(0, at) + insert + base.slice(Math.min(base.length, at + cut));
          const r = parseExposition(text, max);
          if (!r.ok) return;
          const ids = new Set([...r.data.runtimeStatus.keys(), ...r.data.failedLaunches.keys(), ...r.data.restarts.keys()]);
          assert.ok(ids.size <= max);
          for (const id of ids) assert.match(id, /^(?:[a-z0-9_-]{1,64}\/)?[a-z0-9_-]{1,255}$/);
        },
      ),
      { numRuns: 1500 },
    );
  });
});

describe('parseExposition with the previous answer of the same pod', () => {
  const plugins = [{ id: 'a/one', status: 1, failed: 0 }, { id: 'b/two', status: 0.5, failed: 2 }];
  const go = (n: number): string => `# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines ${n}\n`;
  const ok = (text: string, max = 100, memo?: Parameters<typeof parseExposition>[2]) => {
    const r = parseExposition(text, max, memo);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    return r;
  };

  it('returns the previous answer itself when only other families moved', () => {
    const first = ok(go(10) + daemonExposition(plugins, { startSeconds: 1767225000 }));
    const second = ok(go(11) + daemonExposition(plugins, { startSeconds: 1767225000 }), 100, first);
    assert.equal(second, first);
    assert.equal(second.data, first.data);
  });

  it('reads again when a wanted line, the start time or max-plugins differs', () => {
    const first = ok(daemonExposition(plugins, { startSeconds: 1767225000 }));
    const moved = ok(daemonExposition([plugins[0]!, { id: 'b/two', status: 1, failed: 2 }], { startSeconds: 1767225000 }), 100, first);
    assert.notEqual(moved, first);
    assert.equal(moved.data.runtimeStatus.get('b/two'), 1);
    const restarted = ok(daemonExposition(plugins, { startSeconds: 1767226000 }), 100, first);
    assert.notEqual(restarted, first);
    assert.equal(restarted.data.processStartMs, 1767226000000);
    const capped = ok(daemonExposition(plugins, { startSeconds: 1767225000 }), 1, first);
    assert.notEqual(capped, first);
    assert.equal(capped.data.runtimeStatus.size, 1);
  });

  it('still fails a body whose other lines break the format, whatever the memo', () => {
    const first = ok(daemonExposition(plugins, { startSeconds: 1767225000 }));
    const r = parseExposition(daemonExposition(plugins, { startSeconds: 1767225000 }) + '<html>\n', 100, first);
    assert.equal(r.ok, false);
  });
});
