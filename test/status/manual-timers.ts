/** Timers driven by hand for poller and discovery tests: nothing fires until the test says so. */
export class ManualTimers {
  private seq = 0;
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms);
  }
  /** Fires every timer pending now (not the ones they schedule). */
  fireAll(): void {
    const now = [...this.pending];
    this.pending.clear();
    for (const [, t] of now) t.fn();
  }
  /** Fires the pending timers set with exactly `ms`. */
  fire(ms: number): void {
    for (const [id, t] of [...this.pending]) {
      if (t.ms !== ms) continue;
      this.pending.delete(id);
      t.fn();
    }
  }
}

/** Lets every already-resolved promise chain run. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
