/**
 * Unknown-field detection for kubernetes-models objects.
 *
 * The models' validators (compiled JSON Schema from the Kubernetes OpenAPI document, or Istio's
 * CRD schemas) check types, enums and required fields, but the schemas do not say
 * `additionalProperties: false`, so `imagePullPolicyy: Always` passes. The API server would
 * drop such a field silently (or reject it with strict field validation), which makes a typo in a
 * manifest a silent misconfiguration.
 *
 * The validators read every property their schema declares (`data.minReadySeconds`, ...) and
 * iterate the keys of free-form maps (labels, annotations, ConfigMap data, resource quantities).
 * So: run the model's own validator on a recording proxy of the object; any own key of any
 * object that the validator never read is a key the schema does not know.
 */

export interface StrictResult {
  /** Errors from the model's own validator (types, enums, required fields). */
  readonly schemaErrors: readonly string[];
  /** JSON paths of keys the schema does not declare. */
  readonly unknownKeys: readonly string[];
}

interface Validatable {
  validate(): void;
}

type Tracked = { readonly target: object; readonly path: string; readonly read: Set<string> };

function track(value: unknown, path: string, all: Tracked[]): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const read = new Set<string>();
  const rec: Tracked = { target: value, path, read };
  all.push(rec);
  const childCache = new Map<string, unknown>();
  const isArray = Array.isArray(value);
  return new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key !== 'string') return v;
      if (!Object.prototype.hasOwnProperty.call(target, key)) return v;
      read.add(key);
      if (typeof v !== 'object' || v === null) return v;
      let child = childCache.get(key);
      if (child === undefined) {
        child = track(v, isArray ? `${path}[${key}]` : `${path}.${key}`, all);
        childCache.set(key, child);
      }
      return child;
    },
  });
}

/**
 * Validates `model` (an instance of a kubernetes-models class) with its own validator, then
 * reports keys that validator never looked at.
 */
export function strictValidate(model: Validatable): StrictResult {
  const all: Tracked[] = [];
  const proxy = track(model, '', all) as Validatable;
  const schemaErrors: string[] = [];
  try {
    // The validator receives `this`, i.e. the proxy.
    model.validate.call(proxy);
  } catch (err) {
    schemaErrors.push((err as Error).message);
  }
  const unknownKeys: string[] = [];
  if (schemaErrors.length === 0) {
    for (const { target, path, read } of all) {
      if (Array.isArray(target)) continue;
      for (const key of Object.keys(target)) {
        if (!read.has(key)) unknownKeys.push(path === '' ? key : `${path.slice(1)}.${key}`);
      }
    }
  }
  return { schemaErrors, unknownKeys: unknownKeys.sort() };
}

/**
 * A small structural schema for the resources no installed package describes (Envoy Gateway
 * CRDs, Gateway API, Traefik CRDs). Unknown keys are errors, like the API server's strict field
 * validation.
 */
export type Shape =
  | { readonly t: 'string'; readonly enum?: readonly string[]; readonly pattern?: RegExp }
  | { readonly t: 'int'; readonly min?: number; readonly max?: number }
  | { readonly t: 'bool' }
  | { readonly t: 'any' }
  | { readonly t: 'list'; readonly of: Shape; readonly min?: number }
  | { readonly t: 'map'; readonly of: Shape }
  | { readonly t: 'object'; readonly props: Readonly<Record<string, Shape>>; readonly required?: readonly string[] };

export const S = {
  str: (extra: { enum?: readonly string[]; pattern?: RegExp } = {}): Shape => ({ t: 'string', ...extra }),
  int: (min?: number, max?: number): Shape => ({ t: 'int', ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) }),
  bool: (): Shape => ({ t: 'bool' }),
  any: (): Shape => ({ t: 'any' }),
  list: (of: Shape, min?: number): Shape => ({ t: 'list', of, ...(min !== undefined ? { min } : {}) }),
  map: (of: Shape): Shape => ({ t: 'map', of }),
  obj: (props: Record<string, Shape>, required: readonly string[] = []): Shape => ({ t: 'object', props, required }),
};

export function checkShape(shape: Shape, v: unknown, path = ''): string[] {
  const at = path === '' ? '<root>' : path;
  switch (shape.t) {
    case 'any':
      return [];
    case 'string': {
      if (typeof v !== 'string') return [`${at}: expected a string, got ${JSON.stringify(v)}`];
      if (shape.enum !== undefined && !shape.enum.includes(v)) return [`${at}: ${JSON.stringify(v)} is not one of ${shape.enum.join(', ')}`];
      if (shape.pattern !== undefined && !shape.pattern.test(v)) return [`${at}: ${JSON.stringify(v)} does not match ${shape.pattern}`];
      return [];
    }
    case 'int': {
      if (typeof v !== 'number' || !Number.isInteger(v)) return [`${at}: expected an integer, got ${JSON.stringify(v)}`];
      if (shape.min !== undefined && v < shape.min) return [`${at}: ${v} < ${shape.min}`];
      if (shape.max !== undefined && v > shape.max) return [`${at}: ${v} > ${shape.max}`];
      return [];
    }
    case 'bool':
      return typeof v === 'boolean' ? [] : [`${at}: expected a boolean, got ${JSON.stringify(v)}`];
    case 'list': {
      if (!Array.isArray(v)) return [`${at}: expected a list`];
      const errs = v.flatMap((item, i) => checkShape(shape.of, item, `${path}[${i}]`));
      if (shape.min !== undefined && v.length < shape.min) errs.push(`${at}: needs at least ${shape.min} item(s)`);
      return errs;
    }
    case 'map': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${at}: expected a map`];
      return Object.entries(v).flatMap(([k, item]) => checkShape(shape.of, item, `${path}[${JSON.stringify(k)}]`));
    }
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`${at}: expected an object, got ${JSON.stringify(v)}`];
      const errs: string[] = [];
      const o = v as Record<string, unknown>;
      for (const [k, item] of Object.entries(o)) {
        const p = path === '' ? k : `${path}.${k}`;
        const sub = shape.props[k];
        if (sub === undefined) errs.push(`${p}: unknown field`);
        else errs.push(...checkShape(sub, item, p));
      }
      for (const r of shape.required ?? []) if (!(r in o)) errs.push(`${path === '' ? r : `${path}.${r}`}: required field missing`);
      return errs;
    }
  }
}
