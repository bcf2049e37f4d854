/**
 * Printing and summarising. Every figure a benchmark claims goes through
 * `figure()`, which prints one line of a fixed shape
 *
 *   [bench] label: value unit  (how it was obtained)
 *
 * and keeps it for the summary at the end of the run.
 */

export interface Figure {
  readonly bench: string;
  readonly label: string;
  readonly value: string;
  readonly unit: string;
  readonly note: string;
}

export class Report {
  readonly figures: Figure[] = [];
  readonly problems: string[] = [];

  constructor(private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {}

  line(s = ''): void {
    this.write(s + '\n');
  }

  section(bench: string, title: string, method: readonly string[]): void {
    this.line();
    this.line(`== ${bench}: ${title}`);
    for (const m of method) this.line(`   ${m}`);
  }

  figure(bench: string, label: string, value: string, unit: string, note = ''): void {
    this.figures.push({ bench, label, value, unit, note });
    this.line(`  [${bench}] ${label}: ${value}${unit === '' ? '' : ` ${unit}`}${note === '' ? '' : `  (${note})`}`);
  }

  note(s: string): void {
    this.line(`   - ${s}`);
  }

  /** Something that does not look right: printed now and repeated in the summary. */
  problem(bench: string, s: string): void {
    this.problems.push(`[${bench}] ${s}`);
    this.line(`   ! ${s}`);
  }

  summary(): void {
    this.line();
    this.line('== summary');
    const width = Math.min(60, Math.max(...this.figures.map((f) => f.bench.length + f.label.length + 3), 10));
    for (const f of this.figures) {
      const key = `[${f.bench}] ${f.label}`;
      this.line(`  ${key.padEnd(width)}  ${f.value}${f.unit === '' ? '' : ` ${f.unit}`}`);
    }
    if (this.problems.length > 0) {
      this.line();
      this.line('== problems seen');
      for (const p of this.problems) this.line(`  ${p}`);
    }
  }
}

/** Nearest-rank percentile of an ascending array (p in 0..1). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i]!;
}

export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

/** "1.23", "12.3", "123": three significant digits, no exponent. */
export function sig(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const mag = Math.floor(Math.log10(Math.abs(v)));
  const decimals = Math.max(0, digits - 1 - mag);
  return v.toFixed(Math.min(decimals, 6));
}

export function mb(bytes: number): string {
  return sig(bytes / (1024 * 1024));
}

/** ops/s with a k/M suffix. */
export function rate(perSecond: number): string {
  if (perSecond >= 1e6) return `${sig(perSecond / 1e6)} M`;
  if (perSecond >= 1e3) return `${sig(perSecond / 1e3)} k`;
  return sig(perSecond);
}

export function ms(v: number): string {
  return sig(v);
}
