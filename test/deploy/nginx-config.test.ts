/**
 * deploy/nginx/nginx.conf and its test template: both parse (a small nginx-syntax reader: quoted
 * strings, escapes, blocks, terminators), their shared section is identical, and the directives
 * the gate depends on are there: the auth subrequest without body, the gate's answer copied into
 * variables, a 403 turned into the daemon error envelope with a 503, the client's routing header
 * stripped, and the template runs unprivileged from a temporary prefix.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NGINX = join(ROOT, 'deploy/nginx');

interface Directive {
  readonly name: string;
  readonly args: readonly string[];
  readonly block: readonly Directive[] | undefined;
  readonly line: number;
}

/** Tokenises and nests nginx configuration; throws on unbalanced braces or a missing ";". */
function parseNginx(text: string): Directive[] {
  type Tok = { v: string; kind: 'word' | '{' | '}' | ';'; line: number };
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '\n') {
      line++;
      i++;
    } else if (/\s/.test(ch)) i++;
    else if (ch === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (ch === '{' || ch === '}' || ch === ';') {
      toks.push({ v: ch, kind: ch, line });
      i++;
    } else if (ch === '"' || ch === "'") {
      const start = line;
      let v = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`line ${start}: unterminated string`);
        const c = text[i]!;
        if (c === '\\' && i + 1 < text.length) {
          const n = text[i + 1]!;
          v += n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n === '"' || n === "'" || n === '\\' ? n : `\\${n}`;
          i += 2;
          continue;
        }
        if (c === ch) {
          i++;
          break;
        }
        if (c === '\n') line++;
        v += c;
        i++;
      }
      toks.push({ v, kind: 'word', line: start });
    } else {
      let v = '';
      while (i < text.length && !/[\s;{}]/.test(text[i]!)) v += text[i++];
      toks.push({ v, kind: 'word', line });
    }
  }
  let p = 0;
  const block = (depth: number): Directive[] => {
    const out: Directive[] = [];
    while (p < toks.length) {
      const t = toks[p]!;
      if (t.kind === '}') {
        if (depth === 0) throw new Error(`line ${t.line}: unexpected "}"`);
        p++;
        return out;
      }
      if (t.kind !== 'word') throw new Error(`line ${t.line}: unexpected "${t.v}"`);
      const words: string[] = [];
      while (p < toks.length && toks[p]!.kind === 'word') words.push(toks[p++]!.v);
      const end = toks[p];
      if (end === undefined) throw new Error(`line ${t.line}: "${words[0]}" is not terminated`);
      p++;
      if (end.kind === ';') out.push({ name: words[0]!, args: words.slice(1), block: undefined, line: t.line });
      else if (end.kind === '{') out.push({ name: words[0]!, args: words.slice(1), block: block(depth + 1), line: t.line });
      else throw new Error(`line ${end.line}: unexpected "}" after "${words[0]}"`);
    }
    if (depth > 0) throw new Error('unbalanced "{"');
    return out;
  };
  return block(0);
}

function find(ds: readonly Directive[], name: string, ...args: string[]): Directive {
  const d = ds.find((x) => x.name === name && args.every((a, k) => x.args[k] === a));
  assert.ok(d, `directive ${name} ${args.join(' ')}`);
  return d;
}
function all(ds: readonly Directive[], name: string): Directive[] {
  return ds.filter((x) => x.name === name);
}
function seconds(v: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(v);
  assert.ok(m, `nginx time ${v}`);
  return Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1);
}

const confText = readFileSync(join(NGINX, 'nginx.conf'), 'utf8');
const tmplText = readFileSync(join(NGINX, 'nginx-e2e.conf.template'), 'utf8');
const BEGIN = '# --- plugin-gate shared section: begin';
const END = '# --- plugin-gate shared section: end ---';

/** The template with sample values, as an e2e test would write it. */
function renderTemplate(): string {
  return tmplText
    .replaceAll('{{LISTEN}}', '127.0.0.1:18080')
    .replaceAll('{{GATE}}', '127.0.0.1:19192')
    .replaceAll('{{DAEMON}}', '127.0.0.1:15002')
    .replaceAll('{{PREFIX}}', '/tmp/x');
}

function shared(text: string): string {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  assert.ok(a >= 0 && b > a, 'shared section markers');
  return text.slice(a, b).replace(/^\s*listen [^;]+;$/m, 'LISTEN');
}

describe('nginx configuration for the HTTP forward-auth face', () => {
  const conf = parseNginx(confText);
  const http = find(conf, 'http').block!;
  const server = find(http, 'server').block!;
  const main = find(server, 'location', '/').block!;
  const auth = find(server, 'location', '=', '/_plugin_gate').block!;

  it('both files parse, and share one section word for word', () => {
    assert.doesNotThrow(() => parseNginx(renderTemplate()));
    assert.equal(shared(tmplText), shared(confText));
    assert.throws(() => parseNginx('http { server { listen 1; }'), /unbalanced/);
    assert.throws(() => parseNginx('http { listen 1 }'), /not terminated|unexpected/);
  });

  it('checks every request with a body-less subrequest carrying the original URI and method', () => {
    assert.deepEqual(find(main, 'auth_request').args, ['/_plugin_gate']);
    assert.ok(auth.some((d) => d.name === 'internal'));
    assert.deepEqual(find(auth, 'proxy_pass_request_body').args, ['off']);
    assert.deepEqual(find(auth, 'proxy_set_header', 'Content-Length').args, ['Content-Length', '']);
    assert.deepEqual(find(auth, 'proxy_set_header', 'X-Original-URI').args, ['X-Original-URI', '$request_uri']);
    assert.deepEqual(find(auth, 'proxy_set_header', 'X-Original-Method').args, ['X-Original-Method', '$request_method']);
    assert.match(find(auth, 'proxy_pass').args[0]!, /^http:\/\/plugin_gate/);
    assert.ok(all(http, 'upstream').some((u) => u.args[0] === 'plugin_gate'));
    assert.ok(seconds(find(auth, 'proxy_read_timeout').args[0]!) < 600, 'the check is bounded far below the daemon timeout');
    assert.deepEqual(find(auth, 'proxy_set_header', 'X-Api-Key').args, ['X-Api-Key', ''], "dify-api's key never reaches the gate");
  });

  it("routes to the gate's IP:port answer, falling back to any daemon only when none is named", () => {
    const sets = Object.fromEntries(all(main, 'auth_request_set').map((d) => [d.args[0], d.args[1]]));
    assert.equal(sets['$plugin_upstream'], '$upstream_http_x_plugin_gate_upstream');
    assert.equal(sets['$gate_retry_after'], '$upstream_http_retry_after');
    assert.equal(sets['$gate_reason'], '$upstream_http_x_plugin_gate_reason');
    assert.deepEqual(find(main, 'proxy_pass').args, ['http://$plugin_target']);
    const map = find(http, 'map', '$plugin_upstream', '$plugin_target').block!;
    assert.deepEqual(find(map, 'default').args, ['plugin_daemon_any']);
    const ipv4 = new RegExp(map.find((d) => d.name.startsWith('~') && d.name.includes('{3}'))!.name.slice(1));
    assert.ok(ipv4.test('10.1.2.3:5002') && !ipv4.test('evil.example:80') && !ipv4.test('10.1.2.3:5002/x'));
    assert.ok(all(http, 'upstream').some((u) => u.args[0] === 'plugin_daemon_any'));
  });

  it("never forwards the client's copy of the routing header, and streams long answers", () => {
    assert.deepEqual(find(main, 'proxy_set_header', 'X-Plugin-Gate-Upstream').args, ['X-Plugin-Gate-Upstream', '']);
    assert.deepEqual(find(auth, 'proxy_set_header', 'X-Plugin-Gate-Upstream').args, ['X-Plugin-Gate-Upstream', '']);
    assert.deepEqual(find(main, 'proxy_buffering').args, ['off']);
    assert.ok(seconds(find(main, 'proxy_read_timeout').args[0]!) > 600);
  });

  it('turns a 403 from the gate into 503 + Retry-After + one daemon error-envelope line', () => {
    assert.deepEqual(find(main, 'error_page', '403').args, ['403', '=', '@plugin_gate_denied']);
    const denied = find(server, 'location', '@plugin_gate_denied').block!;
    assert.deepEqual(find(denied, 'add_header', 'Retry-After').args, ['Retry-After', '$gate_retry_after_safe', 'always']);
    const ret = all(denied, 'return').find((d) => d.args[0] === '503')!;
    const body = ret.args[1]!.replaceAll('$gate_reason_safe', 'plugin_starting').replaceAll('$gate_retry_after_safe', '7');
    assert.ok(body.endsWith('\n') && body.indexOf('\n') === body.length - 1, 'exactly one line');
    const envelope = JSON.parse(body) as { code: number; message: string; data: unknown };
    assert.equal(envelope.code, -500);
    assert.equal(envelope.data, null);
    const inner = JSON.parse(envelope.message) as { message: string; error_type: string };
    assert.equal(inner.error_type, 'PluginDaemonInternalServerError');
    assert.match(inner.message, /plugin runtime not found/);
    assert.match(inner.message, /plugin_starting/);
  });

  it('fails closed with a 503 envelope when the gate cannot answer', () => {
    assert.deepEqual(find(main, 'error_page', '500').args, ['500', '=', '@plugin_gate_error']);
    const failed = find(server, 'location', '@plugin_gate_error').block!;
    const ret = find(failed, 'return', '503');
    const envelope = JSON.parse(ret.args[1]!) as { code: number; message: string };
    assert.equal(envelope.code, -500);
    assert.match((JSON.parse(envelope.message) as { message: string }).message, /no available node/);
  });
});

describe('nginx-e2e.conf.template', () => {
  it('has exactly the documented placeholders', () => {
    const found = new Set([...tmplText.matchAll(/\{\{([A-Z_]+)\}\}/g)].map((m) => m[1]));
    assert.deepEqual([...found].sort(), ['DAEMON', 'GATE', 'LISTEN', 'PREFIX']);
    for (const p of found) assert.ok(tmplText.slice(0, tmplText.indexOf('daemon off;')).includes(`{{${p}}}`), `{{${p}}} documented in the header`);
  });

  it('runs in the foreground from a temporary prefix, logging errors to stderr', () => {
    const top = parseNginx(renderTemplate());
    assert.deepEqual(find(top, 'daemon').args, ['off']);
    assert.deepEqual(find(top, 'error_log').args, ['stderr', 'warn']);
    assert.deepEqual(find(top, 'pid').args, ['/tmp/x/nginx.pid']);
    const http = find(top, 'http').block!;
    for (const t of ['client_body_temp_path', 'proxy_temp_path', 'fastcgi_temp_path', 'uwsgi_temp_path', 'scgi_temp_path']) {
      assert.match(find(http, t).args[0]!, /^\/tmp\/x\//, t);
    }
    assert.deepEqual(find(find(http, 'server').block!, 'listen').args, ['127.0.0.1:18080']);
    assert.deepEqual(find(find(http, 'upstream', 'plugin_gate').block!, 'server').args, ['127.0.0.1:19192']);
  });
});
