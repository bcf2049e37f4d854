/**
 * The real thing in child processes: a simulated daemon fleet
 * (`dist/src/sim/main.js`, or the bench's own large fleet) and the gate
 * (`dist/src/cli/main.js`), each with its own event loop, so the load
 * generator, the gate and the fleet never share one.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinned, pinning, sleep, spawnChild, type Child } from './proc.js';

/** dist/ (this file is dist/bench/lib/gate.js once built). */
export const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface FleetChild {
  readonly child: Child;
  readonly targets: string;
}

/** `node dist/src/sim/main.js …`: the project's own sim CLI. */
export async function startSimCli(args: readonly string[]): Promise<FleetChild> {
  const [cmd, full] = pinned(pinning.load, process.execPath, [join(DIST, 'src/sim/main.js'), ...args]);
  const child = spawnChild(cmd, full);
  const m = await child.waitLine(/^targets=(.+)$/, 15_000);
  return { child, targets: m[1]! };
}

/** `node dist/bench/fleet-main.js …`: a fleet of any size (see fleet-main.ts). */
export async function startBenchFleet(args: readonly string[]): Promise<FleetChild> {
  const [cmd, full] = pinned(pinning.load, process.execPath, [join(DIST, 'bench/fleet-main.js'), ...args]);
  const child = spawnChild(cmd, full);
  const m = await child.waitLine(/^targets=(.+)$/, 60_000);
  return { child, targets: m[1]! };
}

export interface GateChild {
  readonly child: Child;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly adminPort: number;
}

/** The gate CLI on ephemeral loopback ports, pinned to its own core when possible. */
export async function startGateCli(targets: string, extra: readonly string[] = [], nodeFlags: readonly string[] = []): Promise<GateChild> {
  const args = [
    ...nodeFlags,
    join(DIST, 'src/cli/main.js'),
    '--targets', targets,
    '--grpc-listen', '127.0.0.1:0',
    '--http-listen', '127.0.0.1:0',
    '--admin-listen', '127.0.0.1:0',
    '--decision-log', 'none',
    '--drain', '0ms',
    ...extra,
  ];
  const [cmd, full] = pinned(pinning.server, process.execPath, args);
  const child = spawnChild(cmd, full);
  const m = await child.waitLine(/"grpc":(\d+),"http":(\d+|null),"admin":(\d+)/, 15_000);
  return { child, grpcPort: Number(m[1]), httpPort: Number(m[2]), adminPort: Number(m[3]) };
}

/** Waits until `/readyz` answers 200 (first complete poll round). */
export async function waitReady(adminPort: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`gate not ready within ${timeoutMs} ms`);
    await sleep(100);
  }
}

export async function adminText(adminPort: number, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, { signal: AbortSignal.timeout(10_000) });
  return res.text();
}

/** `plugin_gate_decisions_total` by `face/reason`. */
export async function decisionCounts(adminPort: number): Promise<Map<string, number>> {
  const text = await adminText(adminPort, '/metrics');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^plugin_gate_decisions_total\{face="(\w+)",decision="\w+",reason="(\w+)"\} (\S+)$/gm)) {
    out.set(`${m[1]}/${m[2]}`, Number(m[3]));
  }
  return out;
}

/** after − before, only the keys that moved. */
export function countDelta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}
