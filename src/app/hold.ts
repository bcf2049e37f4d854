/**
 * The waiting room of hold-starting (the activator pattern): requests whose
 * plugin is still starting wait here instead of being denied, indexed by plugin
 * so a new snapshot touches only the plugins somebody waits for, and ordered by
 * expiry in one heap so one timer serves them all.
 *
 * This is bookkeeping only: what a waiter is answered, and when, is the
 * service's business (src/app/service.ts). Time and the one timer come from
 * the injected Scheduler.
 */
import type { Scheduler, TimerHandle } from '../core/clock.js';
import type { PluginId } from '../core/plugin-id.js';

/** How a held request ended; also the values of the outcome metric label. */
export const HOLD_OUTCOMES = ['released', 'denied', 'expired', 'shed', 'cancelled', 'drained'] as const;
export type HoldOutcome = (typeof HOLD_OUTCOMES)[number];

/**
 * One held request. Small and fixed-size: the plugin id, a few numbers, links,
 * and the caller's payload (the service keeps only what it needs to answer and
 * log, never the request's header map).
 */
export interface Waiter<P> {
  readonly pluginId: PluginId;
  /** Clock time the wait began. */
  readonly since: number;
  /** Clock time the wait ends at the latest (budget or the caller's deadline). */
  readonly expiresAt: number;
  readonly payload: P;
  /** Position in the expiry heap; -1 once the waiter left the queue. */
  heapIndex: number;
  prev: Waiter<P> | undefined;
  next: Waiter<P> | undefined;
}

interface PluginLine<P> {
  head: Waiter<P> | undefined;
  tail: Waiter<P> | undefined;
  size: number;
}

export class HoldQueue<P> {
  /** Oldest first per plugin: a doubly linked list, so a cancelled waiter leaves in O(1). */
  private readonly lines = new Map<PluginId, PluginLine<P>>();
  /** Min-heap on expiresAt. */
  private readonly heap: Waiter<P>[] = [];
  private timer: TimerHandle | undefined;
  private timerDue = Infinity;

  constructor(
    private readonly scheduler: Scheduler,
    /** Called for every waiter whose time is up, already removed from the queue. */
    private readonly onExpire: (w: Waiter<P>) => void,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  add(pluginId: PluginId, since: number, expiresAt: number, payload: P): Waiter<P> {
    const w: Waiter<P> = { pluginId, since, expiresAt, payload, heapIndex: this.heap.length, prev: undefined, next: undefined };
    let line = this.lines.get(pluginId);
    if (line === undefined) {
      line = { head: undefined, tail: undefined, size: 0 };
      this.lines.set(pluginId, line);
    }
    w.prev = line.tail;
    if (line.tail !== undefined) line.tail.next = w;
    else line.head = w;
    line.tail = w;
    line.size++;
    this.heap.push(w);
    this.siftUp(w.heapIndex);
    this.arm();
    return w;
  }

  /** Takes a waiter out (released, cancelled, drained); false if it had already left. */
  remove(w: Waiter<P>): boolean {
    if (w.heapIndex < 0) return false;
    this.unlink(w);
    this.heapRemove(w.heapIndex);
    this.arm();
    return true;
  }

  /** Plugins somebody waits for. */
  plugins(): IterableIterator<PluginId> {
    return this.lines.keys();
  }

  /** The plugin's oldest waiter. */
  oldest(pluginId: PluginId): Waiter<P> | undefined {
    return this.lines.get(pluginId)?.head;
  }

  /** Waiters per plugin, for /status. */
  countsByPlugin(): Map<PluginId, number> {
    const out = new Map<PluginId, number>();
    for (const [id, line] of this.lines) out.set(id, line.size);
    return out;
  }

  /** Every waiter, oldest first within each plugin (drain). */
  all(): Waiter<P>[] {
    const out: Waiter<P>[] = [];
    for (const line of this.lines.values()) for (let w = line.head; w !== undefined; w = w.next) out.push(w);
    return out;
  }

  /** Stops the timer (the queue must be empty or about to be dropped). */
  stop(): void {
    if (this.timer !== undefined) this.scheduler.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  /** Ends every wait that is due at the clock's now. Called by the timer; exposed for tests. */
  expireDue(): void {
    const now = this.scheduler.now();
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.expiresAt > now) break;
      this.unlink(top);
      this.heapRemove(0);
      try {
        this.onExpire(top);
      } catch {
        // The service answers inside its own try; nothing may stop the sweep.
      }
    }
    this.arm();
  }

  /** One timer for the earliest expiry, re-armed only when that changes. */
  private arm(): void {
    const due = this.heap[0]?.expiresAt ?? Infinity;
    if (due === this.timerDue) return;
    if (this.timer !== undefined) this.scheduler.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = due;
    if (due === Infinity) return;
    this.timer = this.scheduler.setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.expireDue();
    }, Math.max(0, due - this.scheduler.now()));
  }

  private unlink(w: Waiter<P>): void {
    const line = this.lines.get(w.pluginId);
    if (line === undefined) return;
    if (w.prev !== undefined) w.prev.next = w.next;
    else line.head = w.next;
    if (w.next !== undefined) w.next.prev = w.prev;
    else line.tail = w.prev;
    w.prev = undefined;
    w.next = undefined;
    line.size--;
    if (line.size === 0) this.lines.delete(w.pluginId);
  }

  private heapRemove(i: number): void {
    const h = this.heap;
    const w = h[i]!;
    const last = h.pop()!;
    w.heapIndex = -1;
    if (last === w) return;
    h[i] = last;
    last.heapIndex = i;
    this.siftDown(i);
    this.siftUp(last.heapIndex);
  }

  private siftUp(i: number): void {
    const h = this.heap;
    const w = h[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent]!;
      if (p.expiresAt <= w.expiresAt) break;
      h[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    h[i] = w;
    w.heapIndex = i;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const n = h.length;
    const w = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.expiresAt < h[l]!.expiresAt ? r : l;
      const child = h[c]!;
      if (child.expiresAt >= w.expiresAt) break;
      h[i] = child;
      child.heapIndex = i;
      i = c;
    }
    h[i] = w;
    w.heapIndex = i;
  }
}
