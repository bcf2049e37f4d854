/**
 * A strict proto3-JSON checker for Envoy configuration, driven by the official Envoy API protos
 * that ship in @grpc/grpc-js-xds (deps/envoy-api, deps/xds, deps/googleapis,
 * deps/protoc-gen-validate). Envoy parses YAML config by converting it to JSON and then applying
 * the protobuf JSON mapping with unknown fields rejected; this module walks a YAML-loaded object
 * against the reflected message types the same way, so a typo, a wrong type, an unknown enum name
 * or an unknown `@type` is caught here rather than when Envoy refuses to start.
 *
 * Beyond the JSON mapping it enforces the protoc-gen-validate rules Envoy itself checks that are
 * cheap to read from field options (required messages and oneofs, string length, repeated
 * counts, numeric bounds), and rejects deprecated fields so the configs stay current.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);

/** Where the official protos live, and where google/protobuf/descriptor.proto comes from. */
function protoDirs(): { readonly envoy: string; readonly xds: string; readonly search: readonly string[] } {
  const xdsPkg = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const pbPkg = dirname(require.resolve('protobufjs/package.json'));
  const deps = join(xdsPkg, 'deps');
  const envoy = join(deps, 'envoy-api');
  const xds = join(deps, 'xds');
  return { envoy, xds, search: [envoy, xds, join(deps, 'googleapis'), join(deps, 'protoc-gen-validate'), pbPkg] };
}

function listProtos(base: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(base, rel), { withFileTypes: true })) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...listProtos(base, r));
    else if (e.name.endsWith('.proto')) out.push(r);
  }
  return out.sort();
}

export interface LoadedProtos {
  readonly root: protobuf.Root;
  /** Proto files not loaded because an import (transitively) is not shipped. */
  readonly skipped: readonly string[];
  /** Imports that are not shipped in the package, e.g. opencensus or prometheus protos. */
  readonly missingImports: readonly string[];
}

let cached: LoadedProtos | undefined;

/**
 * Loads every envoy-api and xds proto whose imports are all present. Files that import protos the
 * package does not ship (opencensus, opentelemetry, prometheus, and the removed v2 API) are left
 * out rather than stubbed: an `@type` naming one of their messages then fails as unknown, which
 * is the honest answer for a config checked here.
 */
export function loadEnvoyProtos(): LoadedProtos {
  if (cached !== undefined) return cached;
  const dirs = protoDirs();
  const find = (target: string): string | undefined => {
    for (const d of dirs.search) {
      const p = join(d, target);
      if (existsSync(p)) return p;
    }
    return undefined;
  };
  const loadable = new Map<string, boolean>();
  const missing = new Set<string>();
  const isLoadable = (target: string): boolean => {
    const known = loadable.get(target);
    if (known !== undefined) return known;
    loadable.set(target, true); // cycles: assume fine while visiting
    const path = find(target);
    let ok = path !== undefined;
    if (path === undefined) missing.add(target);
    else {
      const text = readFileSync(path, 'utf8');
      for (const m of text.matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)"/gm)) {
        const dep = m[1]!;
        // protobufjs provides the well-known types itself; descriptor.proto comes from its package.
        if (dep.startsWith('google/protobuf/') && dep !== 'google/protobuf/descriptor.proto') continue;
        if (!isLoadable(dep)) {
          ok = false;
          break;
        }
      }
    }
    loadable.set(target, ok);
    return ok;
  };
  const all = [...listProtos(dirs.envoy), ...listProtos(dirs.xds)];
  const files: string[] = [];
  const skipped: string[] = [];
  for (const f of all) (isLoadable(f) ? files : skipped).push(f);

  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => find(target) ?? target;
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  cached = { root, skipped, missingImports: [...missing].sort() };
  return cached;
}

export interface CheckOptions {
  /** Accept fields marked `deprecated = true` (default: reject them). */
  readonly allowDeprecated?: boolean;
}

const WRAPPERS: Readonly<Record<string, string>> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

/** Types whose JSON form is not an object of fields. */
const SPECIAL_JSON = new Set([
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  ...Object.keys(WRAPPERS),
]);

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const INT_RE = /^-?\d+$/;
const FLOAT_RE = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$/;

/** protoc's ToJsonName: drop underscores, upper-case the letter after each. */
export function jsonName(protoName: string): string {
  let out = '';
  let upper = false;
  for (const ch of protoName) {
    if (ch === '_') upper = true;
    else {
      out += upper ? ch.toUpperCase() : ch;
      upper = false;
    }
  }
  return out;
}

function bare(fullName: string): string {
  return fullName.startsWith('.') ? fullName.slice(1) : fullName;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

const fieldIndex = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function fieldsByAnyName(type: protobuf.Type): Map<string, protobuf.Field> {
  let m = fieldIndex.get(type);
  if (m === undefined) {
    m = new Map();
    for (const f of type.fieldsArray) {
      m.set(f.name, f);
      m.set(jsonName(f.name), f);
      const explicit = (f.options as Record<string, unknown> | undefined)?.['json_name'];
      if (typeof explicit === 'string') m.set(explicit, f);
    }
    fieldIndex.set(type, m);
  }
  return m;
}

function opt(holder: { options?: Record<string, unknown> | undefined }, key: string): unknown {
  return holder.options?.[key];
}

class Checker {
  readonly errors: string[] = [];
  constructor(
    private readonly root: protobuf.Root,
    private readonly options: CheckOptions,
  ) {}

  private err(path: string, msg: string): void {
    this.errors.push(`${path === '' ? '<root>' : path}: ${msg}`);
  }

  message(type: protobuf.Type, value: unknown, path: string): void {
    const name = bare(type.fullName);
    if (SPECIAL_JSON.has(name)) {
      this.special(name, value, path);
      return;
    }
    if (name === 'google.protobuf.Any') {
      this.any(value, path);
      return;
    }
    if (value === null) return; // proto3 JSON: null means "unset"
    if (!isPlainObject(value)) {
      this.err(path, `expected an object (${name}), got ${describe(value)}`);
      return;
    }
    if (name === 'google.protobuf.Empty') {
      if (Object.keys(value).length > 0) this.err(path, 'google.protobuf.Empty takes no fields');
      return;
    }
    this.fields(type, value, path, new Set());
  }

  /** Walks the members of a message object; `skip` holds keys handled by the caller (`@type`). */
  private fields(type: protobuf.Type, value: Record<string, unknown>, path: string, skip: ReadonlySet<string>): void {
    const index = fieldsByAnyName(type);
    const seen = new Map<string, string>();
    const oneofSet = new Map<string, string>();
    for (const [key, v] of Object.entries(value)) {
      if (skip.has(key)) continue;
      const p = path === '' ? key : `${path}.${key}`;
      const field = index.get(key);
      if (field === undefined) {
        this.err(p, `unknown field of ${bare(type.fullName)}`);
        continue;
      }
      const prev = seen.get(field.name);
      if (prev !== undefined) {
        this.err(p, `field ${field.name} given twice (as ${prev} and ${key})`);
        continue;
      }
      seen.set(field.name, key);
      if (field.options?.['deprecated'] === true && this.options.allowDeprecated !== true) {
        this.err(p, `deprecated field of ${bare(type.fullName)}`);
      }
      const oneof = field.partOf;
      if (oneof !== null && v !== null) {
        const other = oneofSet.get(oneof.name);
        if (other !== undefined) this.err(p, `oneof ${oneof.name} already set by ${other}`);
        else oneofSet.set(oneof.name, key);
      }
      this.field(field, v, p);
    }
    // protoc-gen-validate rules Envoy enforces at load time.
    for (const f of type.fieldsArray) {
      // A rule on a oneof member applies only when that member is the one set.
      if (f.partOf !== null) continue;
      const present = seen.has(f.name) && value[seen.get(f.name)!] !== null;
      const required =
        opt(f, '(validate.rules).message.required') === true ||
        opt(f, '(validate.rules).duration.required') === true ||
        opt(f, '(validate.rules).any.required') === true ||
        opt(f, '(validate.rules).timestamp.required') === true;
      if (required && !present) this.err(path === '' ? f.name : `${path}.${f.name}`, `required field of ${bare(type.fullName)} is missing`);
      const minItems = opt(f, '(validate.rules).repeated.min_items') ?? opt(f, '(validate.rules).map.min_pairs');
      if (typeof minItems === 'number' && minItems > 0 && !present) {
        this.err(path === '' ? f.name : `${path}.${f.name}`, `needs at least ${minItems} item(s)`);
      }
    }
    for (const o of type.oneofsArray) {
      if (opt(o, '(validate.required)') === true && !oneofSet.has(o.name)) {
        this.err(path, `one of ${o.oneof.join(', ')} is required (${bare(type.fullName)}.${o.name})`);
      }
    }
  }

  private field(field: protobuf.Field, v: unknown, path: string): void {
    if (field.map) {
      if (v === null) return;
      if (!isPlainObject(v)) {
        this.err(path, `expected a map (object), got ${describe(v)}`);
        return;
      }
      const keyType = (field as unknown as protobuf.MapField).keyType;
      for (const [k, item] of Object.entries(v)) {
        const kp = `${path}[${JSON.stringify(k)}]`;
        if (keyType === 'bool' ? k !== 'true' && k !== 'false' : keyType !== 'string' && !INT_RE.test(k)) {
          this.err(kp, `map key is not a ${keyType}`);
        }
        this.single(field, item, kp);
      }
      return;
    }
    if (field.repeated) {
      if (v === null) return;
      if (!Array.isArray(v)) {
        this.err(path, `expected a list, got ${describe(v)}`);
        return;
      }
      v.forEach((item, i) => this.single(field, item, `${path}[${i}]`));
      this.bounds(field, v.length, path, 'repeated', ['min_items', 'max_items']);
      return;
    }
    this.single(field, v, path);
  }

  private single(field: protobuf.Field, v: unknown, path: string): void {
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) {
      this.message(rt, v, path);
      return;
    }
    if (rt instanceof protobuf.Enum) {
      this.enumValue(rt, v, path);
      return;
    }
    if (v === null) return;
    if (this.scalar(field.type, v, path)) this.scalarRules(field, v, path);
  }

  private enumValue(e: protobuf.Enum, v: unknown, path: string): void {
    if (bare(e.fullName) === 'google.protobuf.NullValue') {
      if (v !== null && v !== 'NULL_VALUE' && v !== 0) this.err(path, `expected null, got ${describe(v)}`);
      return;
    }
    if (v === null) return;
    if (typeof v === 'string') {
      if (!Object.prototype.hasOwnProperty.call(e.values, v)) {
        this.err(path, `unknown ${bare(e.fullName)} value ${JSON.stringify(v)} (allowed: ${Object.keys(e.values).join(', ')})`);
      } else if (e.valuesOptions?.[v]?.['deprecated'] === true && this.options.allowDeprecated !== true) {
        this.err(path, `deprecated ${bare(e.fullName)} value ${JSON.stringify(v)}`);
      }
      return;
    }
    if (typeof v === 'number' && Number.isInteger(v)) {
      if (!Object.values(e.values).includes(v)) this.err(path, `${v} is not a defined ${bare(e.fullName)} number`);
      return;
    }
    this.err(path, `expected an enum name of ${bare(e.fullName)}, got ${describe(v)}`);
  }

  /** Returns true when v has the right JSON shape for the scalar type. */
  private scalar(type: string, v: unknown, path: string): boolean {
    const bad = (): false => {
      this.err(path, `expected ${type}, got ${describe(v)}`);
      return false;
    };
    switch (type) {
      case 'string':
        return typeof v === 'string' ? true : bad();
      case 'bool':
        return typeof v === 'boolean' ? true : bad();
      case 'bytes':
        return typeof v === 'string' && BASE64_RE.test(v) ? true : bad();
      case 'double':
      case 'float':
        if (typeof v === 'number') return true;
        return typeof v === 'string' && (FLOAT_RE.test(v) || v === 'NaN' || v === 'Infinity' || v === '-Infinity') ? true : bad();
      case 'int32':
      case 'sint32':
      case 'sfixed32':
      case 'uint32':
      case 'fixed32':
      case 'int64':
      case 'sint64':
      case 'sfixed64':
      case 'uint64':
      case 'fixed64': {
        let n: number;
        if (typeof v === 'number' && Number.isInteger(v)) n = v;
        else if (typeof v === 'string' && INT_RE.test(v)) n = Number(v);
        else return bad();
        const unsigned = type.startsWith('u') || type === 'fixed32' || type === 'fixed64';
        const is32 = type.endsWith('32');
        const min = unsigned ? 0 : is32 ? -(2 ** 31) : Number.MIN_SAFE_INTEGER;
        const max = is32 ? (unsigned ? 2 ** 32 - 1 : 2 ** 31 - 1) : Number.MAX_SAFE_INTEGER;
        if (n < min || n > max) {
          this.err(path, `${n} is out of range for ${type}`);
          return false;
        }
        return true;
      }
      default:
        this.err(path, `unsupported scalar type ${type}`);
        return false;
    }
  }

  private scalarRules(field: protobuf.Field, v: unknown, path: string): void {
    if (typeof v === 'string' && field.type === 'string') {
      this.bounds(field, [...v].length, path, 'string', ['min_len', 'max_len']);
      this.bounds(field, Buffer.byteLength(v), path, 'string', ['min_bytes', 'max_bytes']);
      return;
    }
    if (field.type !== 'string' && field.type !== 'bool' && field.type !== 'bytes') {
      const n = Number(v);
      const kind = field.type;
      const gt = opt(field, `(validate.rules).${kind}.gt`);
      const gte = opt(field, `(validate.rules).${kind}.gte`);
      const lt = opt(field, `(validate.rules).${kind}.lt`);
      const lte = opt(field, `(validate.rules).${kind}.lte`);
      if (typeof gt === 'number' && !(n > gt)) this.err(path, `must be > ${gt}`);
      if (typeof gte === 'number' && !(n >= gte)) this.err(path, `must be >= ${gte}`);
      if (typeof lt === 'number' && !(n < lt)) this.err(path, `must be < ${lt}`);
      if (typeof lte === 'number' && !(n <= lte)) this.err(path, `must be <= ${lte}`);
    }
  }

  private bounds(field: protobuf.Field, n: number, path: string, kind: string, [minKey, maxKey]: [string, string]): void {
    const min = opt(field, `(validate.rules).${kind}.${minKey}`);
    const max = opt(field, `(validate.rules).${kind}.${maxKey}`);
    if (typeof min === 'number' && n < min) this.err(path, `${kind} ${minKey} is ${min}, got ${n}`);
    if (typeof max === 'number' && n > max) this.err(path, `${kind} ${maxKey} is ${max}, got ${n}`);
  }

  private special(name: string, v: unknown, path: string): void {
    const wrapped = WRAPPERS[name];
    if (wrapped !== undefined) {
      if (v !== null) this.scalar(wrapped, v, path);
      return;
    }
    switch (name) {
      case 'google.protobuf.Duration': {
        if (v === null) return;
        const m = typeof v === 'string' ? DURATION_RE.exec(v) : null;
        if (m === null) this.err(path, `expected a duration string like "0.25s", got ${describe(v)}`);
        else if (Number(m[2]) > 315_576_000_000) this.err(path, 'duration out of range');
        return;
      }
      case 'google.protobuf.Timestamp':
        if (v !== null && !(typeof v === 'string' && TIMESTAMP_RE.test(v))) this.err(path, `expected an RFC 3339 timestamp, got ${describe(v)}`);
        return;
      case 'google.protobuf.FieldMask':
        if (v !== null && typeof v !== 'string') this.err(path, `expected a field mask string, got ${describe(v)}`);
        return;
      case 'google.protobuf.Struct':
        if (v !== null && !isPlainObject(v)) this.err(path, `expected an object (Struct), got ${describe(v)}`);
        return;
      case 'google.protobuf.ListValue':
        if (v !== null && !Array.isArray(v)) this.err(path, `expected a list (ListValue), got ${describe(v)}`);
        return;
      case 'google.protobuf.Value':
        return; // any JSON value
    }
  }

  private any(v: unknown, path: string): void {
    if (v === null) return;
    if (!isPlainObject(v)) {
      this.err(path, `expected an object with "@type" (Any), got ${describe(v)}`);
      return;
    }
    const url = v['@type'];
    if (typeof url !== 'string' || url === '') {
      this.err(path, 'Any without "@type"');
      return;
    }
    const typeName = url.slice(url.lastIndexOf('/') + 1);
    let type: protobuf.Type | undefined;
    try {
      const found = this.root.lookup(typeName);
      if (found instanceof protobuf.Type) type = found;
    } catch {
      type = undefined;
    }
    if (type === undefined) {
      this.err(`${path}.@type`, `unknown message type ${JSON.stringify(typeName)}`);
      return;
    }
    const name = bare(type.fullName);
    if (SPECIAL_JSON.has(name)) {
      const extra = Object.keys(v).filter((k) => k !== '@type' && k !== 'value');
      if (extra.length > 0) this.err(path, `an Any of ${name} holds only "value", found ${extra.join(', ')}`);
      this.special(name, v['value'] ?? null, `${path}.value`);
      return;
    }
    if (name === 'google.protobuf.Any') {
      this.err(path, 'nested Any is not supported here');
      return;
    }
    this.fields(type, v, path, new Set(['@type']));
  }
}

/** Every problem found walking `value` as the JSON form of message `typeName`; empty = valid. */
export function checkMessage(typeName: string, value: unknown, options: CheckOptions = {}): string[] {
  const { root } = loadEnvoyProtos();
  const type = root.lookupType(typeName);
  const c = new Checker(root, options);
  c.message(type, value, '');
  return c.errors;
}
