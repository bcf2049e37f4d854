/**
 * Random and hostile CheckRequests (as plain objects in the shape both the
 * official protos and the gate's decoder use), from a seeded generator so a
 * run can be repeated: random plugin ids nobody runs, ids the daemon would
 * reject, huge header values, hundreds of header names, long paths and
 * request ids, random context extensions, malformed unique identifiers.
 */

/** mulberry32: small, fast, good enough to vary inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789_-';
const ANY = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~\u00e9\u4e2d\u{1F600}';

function word(r: () => number, len: number, alphabet = ALNUM): string {
  let s = '';
  for (let i = 0; i < len; i++) s += alphabet[Math.floor(r() * alphabet.length)];
  return s;
}

/** Filler appended to short random parts: distinct values without generating every character. */
const PAD = 'abcdefghij'.repeat(12);

/** A string of `len` characters built cheaply (a repeated random chunk). */
function big(r: () => number, len: number): string {
  const chunk = word(r, 64, ANY);
  return chunk.repeat(Math.ceil(len / chunk.length)).slice(0, len);
}

export interface HostileOptions {
  /** Largest single header value, characters (the wire is capped at 1 MiB per message). */
  readonly maxValue: number;
}

export const HOSTILE_KINDS = [
  'random valid plugin id',
  'invalid plugin id',
  'huge x-plugin-id',
  'huge other header',
  'hundreds of header names',
  'long path and method',
  'malformed unique id',
  'random context extensions',
  'long tenant and request id',
] as const;

export function hostileRequest(r: () => number, opts: HostileOptions): object {
  const kind = Math.floor(r() * HOSTILE_KINDS.length);
  const tenant = word(r, 36);
  let path = `/plugin/${tenant}/dispatch/tool/invoke`;
  let method = 'POST';
  const headers: Record<string, string> = { ':authority': 'plugin-daemon:5002', 'content-type': 'application/json' };
  let ext: Record<string, string> = {};
  switch (kind) {
    case 0:
      headers['x-plugin-id'] = `${word(r, 8)}/${word(r, 12)}`;
      break;
    case 1:
      headers['x-plugin-id'] = word(r, 1 + Math.floor(r() * 400), ANY);
      break;
    case 2:
      headers['x-plugin-id'] = big(r, Math.floor(opts.maxValue * (0.5 + r() / 2)));
      break;
    case 3:
      headers['x-plugin-id'] = `${word(r, 8)}/${word(r, 12)}`;
      headers[`x-${word(r, 10)}`] = big(r, Math.floor(opts.maxValue * (0.5 + r() / 2)));
      break;
    case 4:
      headers['x-plugin-id'] = 'langgenius/openai';
      for (let i = 0; i < 600; i++) headers[`x-${word(r, 8)}-${PAD.slice(0, Math.floor(r() * 90))}`] = word(r, 8) + PAD;
      break;
    case 5:
      path = `/plugin/${tenant}/dispatch/${big(r, 8000)}?q=${big(r, 8000)}`;
      method = word(r, 64, ANY);
      headers['x-plugin-id'] = `${word(r, 8)}/${word(r, 12)}`;
      break;
    case 6:
      path = '/v2/invoke/dispatch/tool/invoke';
      headers['x-plugin-unique-identifier'] = `${word(r, 8)}/${word(r, 12)}:${word(r, 6, ANY)}@${word(r, 64, ANY)}`;
      break;
    case 7:
      headers['x-plugin-id'] = `${word(r, 8)}/${word(r, 12)}`;
      ext = {};
      for (let i = 0; i < 80; i++) ext[word(r, 12) + PAD.slice(0, 20)] = word(r, 12, ANY) + PAD;
      if (r() < 0.3) ext['plugin_gate_source'] = word(r, 12);
      break;
    default:
      path = `/plugin/${big(r, 5000)}/dispatch/tool/invoke`;
      headers['x-plugin-id'] = `${word(r, 8)}/${word(r, 12)}`;
      headers['x-request-id'] = big(r, 20_000);
      break;
  }
  return {
    attributes: {
      request: { http: { id: word(r, 20), method, path, host: 'plugin-daemon:5002', headers } },
      context_extensions: ext,
    },
  };
}
