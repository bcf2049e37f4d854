/**
 * Where log lines go: stdout, through a buffer of bounded size.
 *
 * stdout is a pipe more often than not (a container runtime, `| jq`), and a
 * pipe whose reader stops reading fills up: Node then keeps every further
 * write in memory (process.stdout on a POSIX pipe is asynchronous), which grew
 * the gate from 79 to 576 MB under a decision-log storm and kept it alive
 * after SIGTERM until the reader went away. Here a line that would take the
 * unwritten backlog past `maxBytes` is dropped and counted instead; nothing
 * ever waits for stdout, and shutdown flushes for a bounded time only.
 */
import type { DestinationStream } from 'pino';

/** The part of a Writable the sink uses (process.stdout, or a test's stream). */
export interface SinkStream {
  write(chunk: string): boolean;
  readonly writableLength: number;
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface SinkStats {
  /** Lines dropped since start: the backlog was full, or stdout is gone (EPIPE). */
  readonly dropped: number;
  /** Bytes written but not yet taken by the reader. */
  readonly buffered: number;
}

export class BoundedLogSink implements DestinationStream {
  private dropped = 0;
  private droppedUntold = 0;
  private broken = false;

  constructor(
    private readonly stream: SinkStream,
    readonly maxBytes: number,
  ) {
    // A reader that exits (EPIPE) must not become an uncaught 'error': the gate
    // keeps serving, and every later line is counted as dropped.
    stream.on('error', () => {
      this.broken = true;
    });
  }

  write(line: string): void {
    // Length in UTF-16 units approximates bytes well enough for a bound (log lines are ASCII JSON).
    if (this.broken || this.stream.writableLength + line.length > this.maxBytes) {
      this.dropped++;
      this.droppedUntold++;
      return;
    }
    this.stream.write(line);
  }

  stats(): SinkStats {
    return { dropped: this.dropped, buffered: this.stream.writableLength };
  }

  /** Lines dropped since the last call (for a once-a-second summary), and reset. */
  takeDropped(): number {
    const n = this.droppedUntold;
    this.droppedUntold = 0;
    return n;
  }

  /**
   * Resolves once the backlog is written or after `maxWaitMs`, whichever comes
   * first: a reader that never reads delays shutdown by `maxWaitMs` at most.
   */
  flushWithin(maxWaitMs: number): Promise<void> {
    if (this.broken || this.stream.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.stream.off('drain', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, maxWaitMs));
      timer.unref();
      this.stream.once('drain', done);
    });
  }

  /** pino's logger.flush(): a bounded flush as well. */
  flush(cb?: (err?: Error) => void): void {
    void this.flushWithin(FLUSH_DEFAULT_MS).then(() => cb?.());
  }
}

/** pino's flush() has no deadline argument; the shutdown path uses flushWithin directly. */
const FLUSH_DEFAULT_MS = 500;
