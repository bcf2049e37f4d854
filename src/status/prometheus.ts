/**
 * A Prometheus text-exposition (format 0.0.4) reader that keeps only the
 * families the gate needs. A daemon's `/metrics/` carries hundreds of Go
 * runtime, HTTP and histogram series; those lines are skipped after a scan of
 * their metric name, before any label or value parsing.
 *
 * What counts as exposition (anything else is status_unparseable):
 *  1. every non-blank line is a `#` comment or starts with a metric name
 *     followed by `{`, a space or a tab (HTML, JSON and binary fail here, at
 *     their first line);
 *  2. lines of the wanted families are parsed in full, and one malformed line
 *     fails the whole body: partial per-plugin data would make plugins look
 *     absent, which the gate reads as "not launched yet";
 *  3. sample lines are also parsed in full until the first meaningful line, so
 *     a plain-text page ("Not Found") fails;
 *  4. at least one meaningful line: a `# HELP`/`# TYPE` comment naming a
 *     metric, or a well-formed sample.
 * A well-formed exposition with none of the wanted families (a daemon before
 * 0.5.7 with Prometheus on) is fine and yields empty maps. Lines of other
 * families past the first meaningful one are checked only by rule 1: that is
 * the price of not parsing them.
 */
import { createHash } from 'node:crypto';
import { GateError } from '../core/errors.js';
import { isPluginId, type PluginId } from '../core/plugin-id.js';
import type { MetricsData } from './types.js';

export type ExpositionResult =
  | {
      readonly ok: true;
      readonly data: MetricsData;
      /** Identity of the lines read (their digest and max-plugins): equal keys, equal answers. */
      readonly key: string;
      /** Series of plugins not kept because `maxPlugins` were already kept. */
      readonly droppedSeries: number;
      /** Series whose plugin_id is not a valid plugin id (never kept). */
      readonly invalidIds: number;
    }
  | { readonly ok: false; readonly error: GateError };

const F_RUNTIME = 'plugin_runtime_status';
const F_INSTALLS = 'plugin_installations_total';
const F_RESTARTS = 'plugin_restarts_total';
const F_START = 'process_start_time_seconds';

const enum Family {
  None,
  Runtime,
  Installs,
  Restarts,
  Start,
}

const CH_TAB = 9;
const CH_SPACE = 32;
const CH_HASH = 35;
const CH_QUOTE = 34;
const CH_BACKSLASH = 92;
const CH_LBRACE = 123;
const CH_RBRACE = 125;
const CH_COMMA = 44;
const CH_EQ = 61;
const CH_CR = 13;
const CH_LF = 10;

function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58;
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57);
}
function isLabelStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}
function isLabelChar(c: number): boolean {
  return isLabelStart(c) || (c >= 48 && c <= 57);
}

/** One parsed sample of a wanted family: only the labels the gate reads. */
interface Sample {
  pluginId: string | undefined;
  runtimeType: string | undefined;
  status: string | undefined;
  value: number;
}

/** Cursor-based line parser over the whole text: no per-line substrings except wanted label values. */
class Line {
  constructor(
    private readonly s: string,
    public i: number,
    private readonly end: number,
  ) {}

  skipWs(): void {
    while (this.i < this.end) {
      const c = this.s.charCodeAt(this.i);
      if (c !== CH_SPACE && c !== CH_TAB) return;
      this.i++;
    }
  }

  /** Parses `{labels} value [timestamp]` after the metric name; false when malformed. */
  parseRest(out: Sample): boolean {
    out.pluginId = undefined;
    out.runtimeType = undefined;
    out.status = undefined;
    this.skipWs();
    if (this.i < this.end && this.s.charCodeAt(this.i) === CH_LBRACE) {
      this.i++;
      if (!this.parseLabels(out)) return false;
      this.skipWs();
    }
    const vStart = this.i;
    while (this.i < this.end) {
      const c = this.s.charCodeAt(this.i);
      if (c === CH_SPACE || c === CH_TAB) break;
      this.i++;
    }
    const value = parseValue(this.s.slice(vStart, this.i));
    if (value === undefined) return false;
    out.value = value;
    this.skipWs();
    if (this.i < this.end) {
      const tStart = this.i;
      while (this.i < this.end) {
        const c = this.s.charCodeAt(this.i);
        if (c === CH_SPACE || c === CH_TAB) break;
        this.i++;
      }
      if (!isTimestamp(this.s, tStart, this.i)) return false;
      this.skipWs();
    }
    return this.i === this.end;
  }

  private parseLabels(out: Sample): boolean {
    const seen: string[] = [];
    for (;;) {
      this.skipWs();
      if (this.i >= this.end) return false;
      if (this.s.charCodeAt(this.i) === CH_RBRACE) {
        this.i++;
        return true;
      }
      const nStart = this.i;
      if (!isLabelStart(this.s.charCodeAt(this.i))) return false;
      this.i++;
      while (this.i < this.end && isLabelChar(this.s.charCodeAt(this.i))) this.i++;
      const name = this.s.slice(nStart, this.i);
      if (seen.includes(name)) return false;
      seen.push(name);
      this.skipWs();
      if (this.i >= this.end || this.s.charCodeAt(this.i) !== CH_EQ) return false;
      this.i++;
      this.skipWs();
      if (this.i >= this.end || this.s.charCodeAt(this.i) !== CH_QUOTE) return false;
      this.i++;
      const value = this.parseQuoted();
      if (value === undefined) return false;
      if (name === 'plugin_id') out.pluginId = value;
      else if (name === 'runtime_type') out.runtimeType = value;
      else if (name === 'status') out.status = value;
      this.skipWs();
      if (this.i >= this.end) return false;
      const c = this.s.charCodeAt(this.i);
      if (c === CH_COMMA) {
        this.i++;
        continue; // a trailing comma before `}` is allowed by the format
      }
      if (c !== CH_RBRACE) return false;
    }
  }

  /** After the opening quote; leaves the cursor after the closing one. */
  private parseQuoted(): string | undefined {
    const start = this.i;
    let escaped = false;
    while (this.i < this.end) {
      const c = this.s.charCodeAt(this.i);
      if (c === CH_QUOTE) {
        const raw = this.s.slice(start, this.i);
        this.i++;
        return escaped ? unescapeLabel(raw) : raw;
      }
      if (c === CH_BACKSLASH) {
        escaped = true;
        this.i += 2;
        continue;
      }
      this.i++;
    }
    return undefined;
  }
}

function unescapeLabel(raw: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\' || i + 1 >= raw.length) {
      out += c;
      continue;
    }
    const n = raw[++i];
    // The format defines \\, \" and \n; any other escape is kept as written.
    if (n === 'n') out += '\n';
    else if (n === '\\' || n === '"') out += n;
    else out += '\\' + n;
  }
  return out;
}

const FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Go's ParseFloat spellings the exposition uses: decimals, NaN, ±Inf. */
export function parseValue(s: string): number | undefined {
  if (s.length === 0 || s.length > 64) return undefined;
  if (FLOAT.test(s)) return Number(s);
  switch (s.toLowerCase()) {
    case 'nan':
      return NaN;
    case 'inf':
    case '+inf':
    case 'infinity':
    case '+infinity':
      return Infinity;
    case '-inf':
    case '-infinity':
      return -Infinity;
    default:
      return undefined;
  }
}

function isTimestamp(s: string, from: number, to: number): boolean {
  let i = from;
  if (i < to && s.charCodeAt(i) === 45) i++;
  if (i >= to || to - i > 19) return false;
  for (; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function familyOf(s: string, start: number, len: number): Family {
  // First-character and length checks reject almost every other family before any compare.
  const c = s.charCodeAt(start);
  if (c !== 112 /* p */) return Family.None;
  if (len === F_RUNTIME.length && s.startsWith(F_RUNTIME, start)) return Family.Runtime;
  if (len === F_INSTALLS.length && s.startsWith(F_INSTALLS, start)) return Family.Installs;
  if (len === F_RESTARTS.length && s.startsWith(F_RESTARTS, start)) return Family.Restarts;
  if (len === F_START.length && s.startsWith(F_START, start)) return Family.Start;
  return Family.None;
}

/** `# HELP name …` / `# TYPE name …`: the comments that mark real exposition. */
function isDescriptor(s: string, i: number, end: number): boolean {
  i++; // '#'
  while (i < end && (s.charCodeAt(i) === CH_SPACE || s.charCodeAt(i) === CH_TAB)) i++;
  if (!(s.startsWith('HELP', i) || s.startsWith('TYPE', i))) return false;
  i += 4;
  const c = s.charCodeAt(i);
  if (i >= end || (c !== CH_SPACE && c !== CH_TAB)) return false;
  while (i < end && (s.charCodeAt(i) === CH_SPACE || s.charCodeAt(i) === CH_TAB)) i++;
  return i < end && isNameStart(s.charCodeAt(i));
}

function unparseable(why: string): ExpositionResult {
  return { ok: false, error: new GateError('status_unparseable', `metrics body is not Prometheus text: ${why}`) };
}

/**
 * A pod's previous answer, so that the next body with byte-identical wanted
 * lines (a settled pod: only its Go runtime and HTTP families move) is neither
 * parsed again nor handed on as new data.
 */
export type ExpositionMemo = ExpositionResult & { readonly ok: true };

/**
 * Reads the wanted families from an exposition. Never throws.
 *
 * - `plugin_runtime_status`: one value per plugin id. A plugin with several
 *   runtime_type series takes its `local` series (a series without runtime_type
 *   counts as local: it is what a local-platform pod runs); failing that, the
 *   largest value of the others. NaN and ±Inf series are ignored.
 * - `plugin_installations_total{status="failed"}` and `plugin_restarts_total`:
 *   summed per plugin id over their other labels; non-finite or negative values ignored.
 * - `process_start_time_seconds`: the first finite positive value, × 1000.
 * - plugin ids failing `isPluginId` are counted in `invalidIds` and never kept;
 *   at most `maxPlugins` distinct ids are kept, first seen first (the Go
 *   client sorts series, so the choice is stable); series of further ids are
 *   counted in `droppedSeries`.
 *
 * Two passes: the first finds the lines of the wanted families by their
 * metric name alone; the second parses those. With `memo` (the previous
 * answer of the same pod) and wanted lines identical to the ones it was read
 * from, the second pass is skipped and `memo` itself is returned: the
 * same object (its `data` too), which tells the fleet view that nothing about the plugins moved.
 */
export function parseExposition(text: string, maxPlugins: number, memo?: ExpositionMemo): ExpositionResult {
  const steps = parseSteps(text, maxPlugins, memo);
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/**
 * parseExposition in slices of about SLICE_CHARS characters, each started by
 * `turn()`: with a turn per event-loop iteration, no body, however large,
 * holds the loop that answers Checks for more than one slice.
 */
export async function parseExpositionInSlices(text: string, maxPlugins: number, memo: ExpositionMemo | undefined, turn: () => Promise<void>): Promise<ExpositionResult> {
  const steps = parseSteps(text, maxPlugins, memo);
  for (;;) {
    await turn();
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/** Characters of body read (or wanted lines parsed, counted by their length) per slice: well under a millisecond. */
export const SLICE_CHARS = 64 * 1024;

function* parseSteps(text: string, maxPlugins: number, memo: ExpositionMemo | undefined): Generator<void, ExpositionResult, void> {
  let meaningful = 0;
  let lineNo = 0;
  const sample: Sample = { pluginId: undefined, runtimeType: undefined, status: undefined, value: 0 };
  /** Wanted lines as (start, end, line number, family) quadruples. */
  const wanted: number[] = [];

  const n = text.length;
  let pos = 0;
  let sliceEnd = SLICE_CHARS;
  while (pos < n) {
    if (pos >= sliceEnd) {
      yield;
      sliceEnd = pos + SLICE_CHARS;
    }
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = n;
    let end = nl;
    if (end > pos && text.charCodeAt(end - 1) === CH_CR) end--;
    const lineStart = pos;
    pos = nl + 1;
    lineNo++;

    let i = lineStart;
    while (i < end && (text.charCodeAt(i) === CH_SPACE || text.charCodeAt(i) === CH_TAB)) i++;
    if (i >= end) continue;
    const first = text.charCodeAt(i);
    if (first === CH_HASH) {
      if (meaningful === 0 && isDescriptor(text, i, end)) meaningful++;
      continue;
    }
    if (!isNameStart(first)) return unparseable(`line ${lineNo} does not start with a metric name`);
    const nameStart = i;
    i++;
    while (i < end && isNameChar(text.charCodeAt(i))) i++;
    const after = i < end ? text.charCodeAt(i) : CH_LF;
    if (after !== CH_LBRACE && after !== CH_SPACE && after !== CH_TAB) {
      return unparseable(`line ${lineNo} has no value after the metric name`);
    }
    const family = familyOf(text, nameStart, i - nameStart);
    if (family !== Family.None) {
      // Parsed in the second pass; a malformed one fails the body there, so it may count as meaningful now.
      wanted.push(i, end, lineNo, family);
      meaningful++;
      continue;
    }
    if (meaningful > 0) continue;
    // Until the first meaningful line, other samples are parsed in full (rule 3).
    if (!new Line(text, i, end).parseRest(sample)) return unparseable(`line ${lineNo} is not a well-formed sample`);
    meaningful++;
  }
  if (meaningful === 0) return unparseable('no metric descriptor or sample found');

  const key = yield* digestOf(text, wanted, maxPlugins);
  if (memo !== undefined && memo.key === key) return memo;
  return yield* readWanted(text, wanted, maxPlugins, sample, key);
}

/**
 * Plugin ids are slices of the body they came in: kept as they are, each would
 * hold its whole body in memory, and 500 pods would hold 500 copies of every
 * id. The first copy seen is detached from its body and shared by every later
 * answer. Bounded; past the bound an id is detached but not shared.
 */
const sharedIds = new Map<string, PluginId>();
const SHARED_IDS = 20_000;

function shareId(raw: string): PluginId {
  const known = sharedIds.get(raw);
  if (known !== undefined) return known;
  // Plugin ids are ASCII (isPluginId): a latin1 round trip is an exact, flat copy.
  const id = Buffer.from(raw, 'latin1').toString('latin1');
  if (sharedIds.size < SHARED_IDS) sharedIds.set(id, id);
  return id;
}

/** The identity of the wanted lines: a digest of their text (runs of adjacent lines hashed together, in slices). */
function* digestOf(text: string, wanted: readonly number[], maxPlugins: number): Generator<void, string, void> {
  const h = createHash('sha1');
  let runStart = -1;
  let runEnd = -1;
  let hashed = 0;
  const flush = (): void => {
    if (runStart < 0) return;
    h.update(text.slice(runStart, runEnd)).update('\n');
    hashed += runEnd - runStart;
  };
  for (let k = 0; k < wanted.length; k += 4) {
    const a = lineStartOf(text, wanted[k]!);
    const b = wanted[k + 1]!;
    if (runStart >= 0 && a <= runEnd + 2 && runEnd - runStart < SLICE_CHARS) {
      runEnd = b;
      continue;
    }
    flush();
    if (hashed >= SLICE_CHARS) {
      yield;
      hashed = 0;
    }
    runStart = a;
    runEnd = b;
  }
  flush();
  return `${maxPlugins}:${h.digest('base64')}`;
}

/** Start of the line holding `i`. */
function lineStartOf(text: string, i: number): number {
  const nl = text.lastIndexOf('\n', i - 1);
  return nl + 1;
}

function* readWanted(text: string, wanted: readonly number[], maxPlugins: number, sample: Sample, key: string): Generator<void, ExpositionResult, void> {
  const kept = new Set<PluginId>();
  const localStatus = new Map<PluginId, number>();
  const otherStatus = new Map<PluginId, number>();
  const failedLaunches = new Map<PluginId, number>();
  const restarts = new Map<PluginId, number>();
  let processStartMs: number | undefined;
  let droppedSeries = 0;
  let invalidIds = 0;

  // Returns the id as kept (shared with every other pod's answer), or undefined when not kept.
  const admit = (raw: string | undefined): PluginId | undefined => {
    if (raw === undefined || !isPluginId(raw)) {
      invalidIds++;
      return undefined;
    }
    const id = shareId(raw);
    if (kept.has(id)) return id;
    if (kept.size >= maxPlugins) {
      droppedSeries++;
      return undefined;
    }
    kept.add(id);
    return id;
  };

  let parsed = 0;
  for (let k = 0; k < wanted.length; k += 4) {
    parsed += wanted[k + 1]! - wanted[k]!;
    if (parsed >= SLICE_CHARS / 2) {
      // Wanted lines cost more per character than the scan: smaller slices.
      yield;
      parsed = 0;
    }
    const line = new Line(text, wanted[k]!, wanted[k + 1]!);
    if (!line.parseRest(sample)) return unparseable(`line ${wanted[k + 2]!} is not a well-formed sample`);
    const v = sample.value;
    switch (wanted[k + 3] as Family) {
      case Family.None:
        break;
      case Family.Runtime: {
        if (!Number.isFinite(v)) break;
        const id = admit(sample.pluginId);
        if (id === undefined) break;
        const local = sample.runtimeType === undefined || sample.runtimeType === 'local';
        const m = local ? localStatus : otherStatus;
        const prev = m.get(id);
        m.set(id, prev === undefined ? v : Math.max(prev, v));
        break;
      }
      case Family.Installs: {
        if (sample.status !== 'failed' || !Number.isFinite(v) || v < 0) break;
        const id = admit(sample.pluginId);
        if (id === undefined) break;
        failedLaunches.set(id, (failedLaunches.get(id) ?? 0) + v);
        break;
      }
      case Family.Restarts: {
        if (!Number.isFinite(v) || v < 0) break;
        const id = admit(sample.pluginId);
        if (id === undefined) break;
        restarts.set(id, (restarts.get(id) ?? 0) + v);
        break;
      }
      case Family.Start:
        if (processStartMs === undefined && Number.isFinite(v) && v > 0) processStartMs = v * 1000;
        break;
    }
  }

  const runtimeStatus = new Map<PluginId, number>(localStatus);
  for (const [id, v] of otherStatus) if (!runtimeStatus.has(id)) runtimeStatus.set(id, v);
  return {
    ok: true,
    data: { runtimeStatus, failedLaunches, restarts, processStartMs, ...(droppedSeries > 0 ? { droppedSeries } : {}) },
    key,
    droppedSeries,
    invalidIds,
  };
}
