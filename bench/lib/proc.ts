/**
 * Child processes of the benchmarks: every one is tracked from spawn to exit
 * and killed when the runner exits, normally or not, so a failed benchmark
 * never leaves a gate, a fleet or a load generator behind.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';

const live = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllNow();
      process.exit(130);
    });
  }
}

/** SIGKILL every child still running (synchronous: safe in an 'exit' handler). */
export function killAllNow(): void {
  for (const cp of live) {
    if (cp.exitCode === null && cp.signalCode === null) {
      try {
        cp.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

export interface Child {
  readonly cp: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  readonly exited: Promise<number | string>;
  /** Every stdout line so far (bounded: the last 2000). */
  readonly lines: string[];
  /** Waits for a stdout line matching `re` (one already printed counts); rejects on timeout or exit. */
  waitLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Like waitLine, but only lines printed from now on count. */
  nextLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** stderr collected so far (bounded). */
  stderr(): string;
}

const MAX_LINES = 2000;
const MAX_STDERR = 64 * 1024;

export function spawnChild(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  hookExit();
  const cp = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (cp.pid === undefined) throw new Error(`could not start ${cmd}`);
  live.add(cp);
  const lines: string[] = [];
  let err = '';
  const waiters = new Set<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }>();
  if (cp.stdout) {
    createInterface({ input: cp.stdout }).on('line', (line) => {
      lines.push(line);
      if (lines.length > MAX_LINES) lines.shift();
      for (const w of waiters) {
        const m = line.match(w.re);
        if (m) {
          waiters.delete(w);
          w.resolve(m);
        }
      }
    });
  }
  cp.stderr?.on('data', (d: Buffer) => {
    if (err.length < MAX_STDERR) err += d.toString('utf8');
  });
  const exited = new Promise<number | string>((resolve) => {
    cp.once('exit', (code, signal) => {
      live.delete(cp);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const nextLine = (re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> => {
    return new Promise((resolve, reject) => {
      const w = {
        re,
        resolve: (m: RegExpMatchArray) => {
          clearTimeout(t);
          resolve(m);
        },
      };
      const t = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`${cmd}: no line matching ${re} within ${timeoutMs} ms; stderr: ${err.slice(-500)}`));
      }, timeoutMs);
      waiters.add(w);
      void exited.then((code) => {
        if (!waiters.has(w)) return;
        waiters.delete(w);
        clearTimeout(t);
        reject(new Error(`${cmd} exited (${code}) before printing ${re}; stderr: ${err.slice(-500)}`));
      });
    });
  };
  const pid = cp.pid;
  return {
    nextLine,
    cp,
    pid,
    exited,
    lines,
    stderr: () => err,
    waitLine(re, timeoutMs) {
      for (const l of lines) {
        const m = l.match(re);
        if (m) return Promise.resolve(m);
      }
      return nextLine(re, timeoutMs);
    },
    async stop(graceMs = 3000) {
      if (cp.exitCode !== null || cp.signalCode !== null) return;
      cp.kill('SIGTERM');
      const t = setTimeout(() => cp.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Clock ticks per second for /proc/<pid>/stat (Linux: 100 on every mainstream build). */
const CLK_TCK = 100;

/** User + system CPU seconds a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}

/** Resident set size now and its high-water mark, in bytes. */
export function rss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * Samples a process's RSS every `everyMs` until stopped; returns the peak and
 * the CPU seconds it used in between.
 */
export function watchProcess(pid: number, everyMs = 200): { stop(): { cpuS: number; wallS: number; peakRss: number; endRss: number } } {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  let peak = rss(pid).rss;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rss(pid).rss);
    } catch {
      // process gone: the caller sees it elsewhere
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const end = rss(pid).rss;
      return { cpuS: cpuSeconds(pid) - cpu0, wallS: (performance.now() - t0) / 1000, peakRss: Math.max(peak, end), endRss: end };
    },
  };
}

/**
 * CPU placement on a machine with at least two cores: the process under test
 * gets core 1 to itself, load generator and fleet share core 0, so they never
 * compete for one core (the "realistic CPU budget": one core for the gate).
 * Without taskset or with one core, commands run unpinned.
 */
export const pinning = ((): { available: boolean; server: string[]; load: string[] } => {
  const ok = existsSync('/usr/bin/taskset') && availableParallelism() >= 2;
  return ok
    ? { available: true, server: ['/usr/bin/taskset', '-c', '1'], load: ['/usr/bin/taskset', '-c', '0'] }
    : { available: false, server: [], load: [] };
})();

/** A command line with an optional CPU pin prefix: [cmd, ...args]. */
export function pinned(prefix: readonly string[], cmd: string, args: readonly string[]): [string, string[]] {
  if (prefix.length === 0) return [cmd, [...args]];
  return [prefix[0]!, [...prefix.slice(1), cmd, ...args]];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
