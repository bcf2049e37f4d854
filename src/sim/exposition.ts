/**
 * Prometheus text exposition written the way Go's client_golang writes it:
 * floats in Go's shortest `%g` form (`1.767225605e+09`, `2.863936e+06`),
 * HELP/TYPE before each family, label values escaped. The gate's parser must
 * read exactly this, so the sim reproduces its quirks instead of tidying them.
 */

/** Go `strconv.FormatFloat(v, 'g', -1, 64)` as client_golang uses it. */
export function goFloat(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  // JS toExponential() with no argument yields the shortest round-tripping digits, like Go's -1 precision.
  const e = v.toExponential();
  const at = e.indexOf('e');
  const mantissa = e.slice(0, at);
  const exp = Number(e.slice(at + 1));
  // Go switches to %e when exp < -4 or exp >= 6 for shortest formatting.
  if (exp < -4 || exp >= 6) {
    const abs = Math.abs(exp);
    return `${mantissa}e${exp < 0 ? '-' : '+'}${abs < 10 ? '0' : ''}${abs}`;
  }
  // In this range JS prints plain decimals with the same shortest digits.
  return String(v);
}

/** Label value escaping of the text format: backslash, double quote, newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** HELP text escaping: backslash and newline only. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
export type Labels = ReadonlyArray<readonly [string, string]>;

/** Accumulates one exposition body line by line. */
export class ExpositionWriter {
  private readonly lines: string[] = [];

  family(name: string, help: string, type: MetricType): this {
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    if (labels.length === 0) {
      this.lines.push(`${name} ${goFloat(value)}`);
    } else {
      let body = '';
      for (const [k, v] of labels) body += `${body === '' ? '' : ','}${k}="${escapeLabelValue(v)}"`;
      this.lines.push(`${name}{${body}} ${goFloat(value)}`);
    }
    return this;
  }

  /** Histogram series: cumulative buckets (+Inf last), then _sum and _count. */
  histogram(
    name: string,
    labels: Labels,
    bounds: readonly number[],
    counts: readonly number[],
    sum: number,
  ): this {
    let cumulative = 0;
    for (let i = 0; i < bounds.length; i++) {
      cumulative += counts[i] ?? 0;
      this.sample(`${name}_bucket`, [...labels, ['le', goFloat(bounds[i] ?? Infinity)]], cumulative);
    }
    const total = counts.reduce((a, b) => a + b, 0);
    this.sample(`${name}_bucket`, [...labels, ['le', '+Inf']], total);
    this.sample(`${name}_sum`, labels, sum);
    this.sample(`${name}_count`, labels, total);
    return this;
  }

  toString(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }
}

/** prometheus.DefBuckets, which the daemon's histograms use. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
