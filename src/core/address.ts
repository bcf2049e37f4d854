/**
 * Addresses as the gate writes and reads them: `IP:port`, `[v6]:port`, and for
 * a few options `name:port`. Parsed once, at start-up (configuration) or at
 * discovery, never on the hot path.
 */
import { isIP } from 'node:net';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A DNS name; may hold underscores, as Docker Compose service names do (Dify's is plugin_daemon). */
const DNS_NAME = /^[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$/i;

/**
 * `IP:port` or `[v6]:port`; with allowName, a DNS name is accepted as host.
 * Port 0 is accepted (an ephemeral listener, used by tests).
 */
export function parseHostPort(s: string, allowName: boolean): HostPort | undefined {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']:');
    if (end < 0) return undefined;
    host = s.slice(1, end);
    portText = s.slice(end + 2);
    if (isIP(host) !== 6) return undefined;
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) return undefined;
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (isIP(host) !== 4 && !(allowName && DNS_NAME.test(host))) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
