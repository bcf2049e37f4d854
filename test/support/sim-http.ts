/**
 * For the simulated daemon's tests: a deliberately small exposition reader (the
 * gate's real parser lives in the status readers) and bounded HTTP calls.
 */
import http from 'node:http';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parseValue(raw: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  return Number(raw);
}

/** Parses sample lines of the text format, unescaping label values. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    if (brace < 0 || (space >= 0 && space < brace)) {
      out.push({ name: line.slice(0, space), labels: {}, value: parseValue(line.slice(space + 1).trim()) });
      continue;
    }
    const name = line.slice(0, brace);
    const labels: Record<string, string> = {};
    let i = brace + 1;
    while (line[i] !== '}') {
      const eq = line.indexOf('=', i);
      const key = line.slice(i, eq).replace(/^,/, '');
      i = eq + 2; // skip ="
      let value = '';
      while (line[i] !== '"') {
        if (line[i] === '\\') {
          const next = line[i + 1];
          value += next === 'n' ? '\n' : (next ?? '');
          i += 2;
        } else {
          value += line[i];
          i++;
        }
      }
      labels[key] = value;
      i++; // closing quote
      if (line[i] === ',') i++;
    }
    out.push({ name, labels, value: parseValue(line.slice(i + 1).trim()) });
  }
  return out;
}

/** The value of the one sample matching name and labels; undefined when absent. */
export function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hit = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hit?.value;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly bytes: number;
}

/** One request with a hard deadline; rejects with the socket error (e.g. ECONNREFUSED) or a timeout. */
export function httpCall(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes <= 1 << 20) chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), bytes });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => {
      const err = new Error(`timed out after ${opts.timeoutMs ?? 2000} ms`);
      (err as { code?: string }).code = 'ETIMEDOUT';
      req.destroy(err);
    }, opts.timeoutMs ?? 2000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(opts.body);
  });
}
