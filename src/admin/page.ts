/**
 * `/` on the admin port: the fleet view as a small HTML page for people (the
 * same snapshot as /status), refreshed every few seconds. Every value is
 * escaped, though plugin ids and addresses are validated long before here.
 */
import type { FleetSnapshot, PluginState } from '../fleet/types.js';

const NONE_HELD: ReadonlyMap<string, number> = new Map();

const CELL: Record<PluginState, string> = { ready: 'ready', starting: 'starting', failed: 'failed', absent: '·' };

/** `held`: requests waiting per plugin (hold-starting); a plugin no pod reports yet still gets its row. */
export function statusPage(snap: FleetSnapshot, now: number, draining: boolean, held: ReadonlyMap<string, number> = NONE_HELD): string {
  const pods = [...snap.pods.values()];
  const ids = [...new Set([...snap.plugins.keys(), ...held.keys()])].sort();
  const head = pods
    .map((p) => {
      const age = p.lastSuccessAt === undefined ? 'never' : `${Math.max(0, Math.round((now - p.lastSuccessAt) / 1000))}s ago`;
      const err = p.lastError === undefined ? '' : `<br><small class="err">${esc(p.lastError.code)}</small>`;
      const name = p.name === undefined ? '' : `${esc(p.name)}<br>`;
      return `<th class="pod ${esc(p.state)}">${name}${esc(p.address)}<br><small>${esc(p.state)}${p.inStartup ? ', starting plugins' : ''}, ${esc(age)}</small>${err}</th>`;
    })
    .join('');
  const rows = ids
    .map((id) => {
      const pv = snap.plugins.get(id);
      const cells = pods
        .map((p) => {
          const s = p.plugins.get(id);
          const state: PluginState = s?.state ?? 'absent';
          // Absent on a pod still launching plugins may be queued behind its launch limit.
          if (state === 'absent' && p.inStartup && p.state === 'live') return `<td class="queued" title="${esc(s?.why ?? 'no series yet')}">queued?</td>`;
          return `<td class="${state}" title="${esc(s?.why ?? 'no series')}">${CELL[state]}</td>`;
        })
        .join('');
      const waiting = held.get(id) ?? 0;
      return `<tr><th class="plugin">${esc(id)}</th>${cells}<td class="n">${pv?.readyPods.length ?? 0}</td><td class="${waiting > 0 ? 'starting' : ''}">${waiting}</td></tr>`;
    })
    .join('\n');
  let totalHeld = 0;
  for (const n of held.values()) totalHeld += n;
  const state = draining ? 'draining' : snap.complete ? 'ready' : 'waiting for the first complete poll round';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>plugin-gate</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:center}
th.plugin{text-align:left;font-family:monospace}th.pod{font-family:monospace;font-weight:normal}
.ready{background:#d9f2d9}.queued{background:#fbf8e6;color:#777}.starting{background:#fff3c4}.failed{background:#f6d0d0}
.unreachable,.stale,.removed,.terminating{background:#eee;color:#888}.err{color:#a00}.n{font-weight:bold}
</style></head><body>
<h1>plugin-gate</h1>
<p>${esc(state)} · snapshot ${snap.version} · ${snap.livePods.length} of ${snap.pods.size} pods live, ${snap.startupPods.length} starting plugins · ${snap.plugins.size} plugins${
    snap.discoveryError === undefined ? '' : ` · <span class="err">discovery: ${esc(snap.discoveryError.code)}</span>`
  }${totalHeld > 0 ? ` · ${totalHeld} requests held` : ''} · <a href="/status">JSON</a> · <a href="/metrics">metrics</a></p>
<table><tr><th>plugin</th>${head}<th>ready pods</th><th title="requests waiting for the plugin to start (hold-starting)">held</th></tr>
${rows}
</table></body></html>
`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
