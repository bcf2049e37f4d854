/**
 * `discovery=kubernetes`: the EndpointSlices of one Service
 * (`kubernetes.io/service-name=<service>`) in one namespace, listed and then
 * watched. Unlike DNS, a slice says per endpoint which pod it is (targetRef)
 * and whether it is terminating, the moment the pod gets its deletion
 * timestamp, so a pod being deleted stops getting new requests at the next
 * snapshot instead of after polls fail.
 *
 * The watch follows the API's rules:
 * - list, then watch from the list's resourceVersion with bookmarks; every
 *   event (bookmarks included) moves the resourceVersion on;
 * - the server ends a watch after `timeoutSeconds`: watch again at once from
 *   the last resourceVersion;
 * - 410 Gone (as the response or an ERROR event): that resourceVersion is too
 *   old, list again;
 * - a failed or broken watch: watch again after a backoff (doubling, capped,
 *   jittered), on the injected scheduler;
 * - 401, 403 and an unknown Service are reported with their own codes and
 *   retried with the same backoff: a Role granted later is picked up without
 *   a restart.
 * The last good set is never dropped because of a failure; the gate is not
 * ready until a first list has answered.
 */
import { isIP } from 'node:net';
import type { KubeCredentials } from '../config/kubernetes-files.js';
import { Sleeper, systemScheduler, type Scheduler } from '../core/clock.js';
import { GateError } from '../core/errors.js';
import { KubeApi, statusError, type WatchEvent } from './kubernetes-api.js';
import type { Discovery, DiscoveryListener, Endpoint } from './types.js';

/** Which port of the slice is the daemon's: a number, a port name, or the slice's only port. */
export type PortSpec = { readonly kind: 'number'; readonly port: number } | { readonly kind: 'name'; readonly name: string } | { readonly kind: 'only' };

export interface KubernetesDiscoveryOptions {
  readonly credentials: KubeCredentials;
  readonly namespace: string;
  readonly service: string;
  readonly port: PortSpec;
  /** Bound of every list and get, and of a watch's connect and response head. */
  readonly timeoutMs: number;
  /** The watch's `timeoutSeconds`; a watch silent for this plus `idleGraceMs` is abandoned. */
  readonly watchTimeoutMs: number;
  /** Default WATCH_IDLE_GRACE_MS. */
  readonly idleGraceMs?: number;
  /** Backoff waits and the watch-duration reading; default the system's. */
  readonly scheduler?: Scheduler;
  /** [0, 1) source for backoff jitter. */
  readonly random?: () => number;
  /** Gets anything the listener throws (background work never throws). */
  readonly onError?: (error: GateError) => void;
  /** Watch life for the log: relists, reconnects. */
  readonly log?: (fields: Record<string, unknown>, msg: string) => void;
}

/** A silent watch is given this long past its timeoutSeconds before it counts as dead. */
export const WATCH_IDLE_GRACE_MS = 10_000;
/** First and largest wait before a retry. */
export const BACKOFF_MIN_MS = 250;
export const BACKOFF_MAX_MS = 30_000;

interface SliceEndpoints {
  readonly endpoints: ReadonlyArray<{ readonly address: string; readonly endpoint: Endpoint }>;
  /** Why this slice gave no address for its endpoints (the port could not be chosen). */
  readonly portProblem: string | undefined;
}

type ListOutcome = { readonly ok: true; readonly rv: string } | { readonly ok: false; readonly error: GateError };

export class KubernetesDiscovery implements Discovery {
  private readonly opts: KubernetesDiscoveryOptions;
  private readonly scheduler: Scheduler;
  private readonly random: () => number;
  private readonly sleeper: Sleeper;
  private readonly api: KubeApi;
  private readonly abort = new AbortController();
  private listener: DiscoveryListener | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private readonly slices = new Map<string, SliceEndpoints>();
  /** Set by the last list when the Service has no slices at all. */
  private emptyError: GateError | undefined;
  private error: GateError | undefined;
  private last: { addresses: readonly string[]; endpoints: ReadonlyMap<string, Endpoint>; errorKey: string | undefined } | undefined;
  private failures = 0;

  constructor(opts: KubernetesDiscoveryOptions) {
    this.opts = opts;
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.random = opts.random ?? Math.random;
    this.sleeper = new Sleeper(this.scheduler);
    this.api = new KubeApi({ credentials: opts.credentials, timeoutMs: opts.timeoutMs });
  }

  start(onChange: DiscoveryListener): void {
    if (this.loop !== undefined || this.stopped) return;
    this.listener = onChange;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.sleeper.wake();
    await this.loop;
    await this.api.close();
  }

  private get selectorPath(): string {
    const { namespace, service } = this.opts;
    return `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${service}`)}`;
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped) {
        const listed = await this.list();
        if (this.stopped) break;
        if (!listed.ok) {
          this.fail(listed.error);
          await this.backoff();
          continue;
        }
        this.failures = 0;
        this.error = undefined;
        this.emit();
        await this.watchFrom(listed.rv);
      }
    } catch (err) {
      // list() and watchFrom() catch everything; this only keeps a bug from becoming an unhandled rejection.
      this.report(GateError.from(err, 'internal'));
    } finally {
      this.sleeper.cancel();
    }
  }

  /** Replaces the slice set with a fresh list; on zero slices, asks whether the Service exists. */
  private async list(): Promise<ListOutcome> {
    let res;
    try {
      res = await this.api.getJson(this.selectorPath, this.abort.signal);
    } catch (err) {
      return { ok: false, error: GateError.from(err, 'discovery_failed') };
    }
    if (res.status !== 200) return { ok: false, error: statusError(res.status, res.body, `listing EndpointSlices of ${this.what()}`) };
    const body = res.body;
    const rv = isObj(body) && isObj(body['metadata']) ? body['metadata']['resourceVersion'] : undefined;
    const items = isObj(body) ? body['items'] : undefined;
    if (typeof rv !== 'string' || !Array.isArray(items)) {
      return { ok: false, error: new GateError('discovery_failed', `listing EndpointSlices of ${this.what()}: not an EndpointSliceList`) };
    }
    this.slices.clear();
    for (const item of items) {
      if (!isObj(item)) continue;
      const name = sliceName(item);
      if (name !== undefined) this.slices.set(name, this.parseSlice(item));
    }
    this.emptyError = this.slices.size === 0 ? await this.whyNoSlices() : undefined;
    if (this.emptyError?.code === 'discovery_service_not_found') return { ok: false, error: this.emptyError };
    return { ok: true, rv };
  }

  /**
   * Zero slices: the Service does not exist, has no selector, or is in another
   * namespace. A get of the Service tells these apart when RBAC allows it;
   * without that right the answer stays discovery_empty.
   */
  private async whyNoSlices(): Promise<GateError> {
    const { namespace, service } = this.opts;
    const selector = `no EndpointSlice labelled kubernetes.io/service-name=${service} in namespace ${namespace}`;
    try {
      const res = await this.api.getJson(`/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(service)}`, this.abort.signal);
      if (res.status === 404) return new GateError('discovery_service_not_found', `Service ${namespace}/${service} not found (${selector})`);
      if (res.status === 200) return new GateError('discovery_empty', `${selector}: the Service exists but has no EndpointSlices (a Service without a selector?)`);
    } catch {
      // fall through: the list answered, so report what it said
    }
    return new GateError('discovery_empty', `${selector} (does the Service exist?)`);
  }

  /** Watches from `rv` until a 410 (then returns, to list again) or stop. */
  private async watchFrom(startRv: string): Promise<void> {
    let rv = startRv;
    const timeoutSeconds = Math.max(1, Math.round(this.opts.watchTimeoutMs / 1000));
    while (!this.stopped) {
      const path = `${this.selectorPath}&watch=1&resourceVersion=${encodeURIComponent(rv)}&allowWatchBookmarks=true&timeoutSeconds=${timeoutSeconds}`;
      const began = this.scheduler.now();
      const end = await this.api.watch(
        path,
        timeoutSeconds * 1000 + (this.opts.idleGraceMs ?? WATCH_IDLE_GRACE_MS),
        this.abort.signal,
        (ev) => {
          const next = this.applyEvent(ev);
          if (next !== undefined) rv = next;
          if (ev.type !== 'BOOKMARK') this.emit();
        },
        () => {
          // The watch is up again: whatever kept it down is over.
          if (this.error !== undefined) {
            this.error = undefined;
            this.failures = 0;
            this.emit();
          }
        },
      );
      if (this.stopped || end.kind === 'stopped') return;
      if (end.kind === 'gone') {
        this.opts.log?.({ resource_version: rv, why: end.message }, 'EndpointSlice watch expired (410); listing again');
        return;
      }
      if (end.kind === 'closed') {
        // The server's timeoutSeconds: routine. A watch that closes at once, again and again, is not.
        if (this.scheduler.now() - began >= (timeoutSeconds * 1000) / 2) {
          this.failures = 0;
          continue;
        }
        this.failures++;
        this.opts.log?.({ resource_version: rv, failures: this.failures }, 'EndpointSlice watch closed early; watching again after a backoff');
      } else {
        this.failures++;
        this.opts.log?.({ resource_version: rv, code: end.error.code, err: end.error.message, failures: this.failures }, 'EndpointSlice watch failed; watching again after a backoff');
        // One dropped watch is routine (an API server restart); report only when it does not come back at once,
        // or when the API refused outright.
        if (this.failures > 1 || end.error.code !== 'discovery_failed') this.fail(end.error, false);
      }
      await this.backoff();
    }
  }

  /** Applies one event; returns the resourceVersion it carries. */
  private applyEvent(ev: WatchEvent): string | undefined {
    const meta = isObj(ev.object['metadata']) ? ev.object['metadata'] : undefined;
    const rv = typeof meta?.['resourceVersion'] === 'string' ? meta['resourceVersion'] : undefined;
    const name = sliceName(ev.object);
    if (name === undefined) return rv;
    if (ev.type === 'ADDED' || ev.type === 'MODIFIED') this.slices.set(name, this.parseSlice(ev.object));
    else if (ev.type === 'DELETED') this.slices.delete(name);
    if (ev.type !== 'BOOKMARK' && this.slices.size > 0) this.emptyError = undefined;
    if (ev.type === 'DELETED' && this.slices.size === 0) {
      this.emptyError = new GateError('discovery_empty', `no EndpointSlice labelled kubernetes.io/service-name=${this.opts.service} in namespace ${this.opts.namespace} any more`);
    }
    return rv;
  }

  private parseSlice(obj: Record<string, unknown>): SliceEndpoints {
    const type = obj['addressType'];
    // FQDN slices name hosts, not pods the gate can route to by IP.
    if (type !== 'IPv4' && type !== 'IPv6') return { endpoints: [], portProblem: undefined };
    const endpoints = Array.isArray(obj['endpoints']) ? obj['endpoints'].filter(isObj) : [];
    if (endpoints.length === 0) return { endpoints: [], portProblem: undefined };
    const port = choosePort(obj['ports'], this.opts.port);
    if (typeof port === 'string') return { endpoints: [], portProblem: `EndpointSlice ${sliceName(obj) ?? '?'}: ${port}` };
    const out: { address: string; endpoint: Endpoint }[] = [];
    for (const e of endpoints) {
      const ip = Array.isArray(e['addresses']) ? e['addresses'][0] : undefined;
      if (typeof ip !== 'string' || isIP(ip) === 0) continue;
      const c = isObj(e['conditions']) ? e['conditions'] : {};
      // discovery.k8s.io/v1: ready and serving unset = true, terminating unset = false.
      const ready = c['ready'] !== false;
      const serving = c['serving'] !== false;
      const terminating = c['terminating'] === true;
      const ref = isObj(e['targetRef']) ? e['targetRef'] : undefined;
      const refName = ref?.['kind'] === 'Pod' ? ref['name'] : undefined;
      out.push({
        address: isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`,
        endpoint: { podName: typeof refName === 'string' && POD_NAME.test(refName) ? refName : undefined, ready, serving, terminating },
      });
    }
    return { endpoints: out, portProblem: undefined };
  }

  /** The merged view of every slice, handed on when it or the error changed. */
  private emit(): void {
    const merged = new Map<string, Endpoint>();
    let portProblem: string | undefined;
    for (const s of this.slices.values()) {
      portProblem ??= s.portProblem;
      for (const { address, endpoint } of s.endpoints) {
        const seen = merged.get(address);
        // An endpoint in two slices (moving between them): terminating wins, so it is never routed to by mistake.
        merged.set(address, seen === undefined ? endpoint : mergeEndpoints(seen, endpoint));
      }
    }
    const addresses = [...merged.keys()].sort();
    const endpoints = new Map(addresses.map((a) => [a, merged.get(a)!] as const));
    const error =
      this.error ?? (portProblem !== undefined ? new GateError('discovery_failed', portProblem) : this.emptyError);
    const errorKey = error === undefined ? undefined : `${error.code}:${error.message}`;
    const last = this.last;
    if (last !== undefined && errorKey === last.errorKey && sameEndpoints(last.addresses, last.endpoints, addresses, endpoints)) return;
    this.last = { addresses: Object.freeze(addresses), endpoints, errorKey };
    try {
      this.listener?.(this.last.addresses, error, endpoints);
    } catch (err) {
      this.report(GateError.from(err, 'internal'));
    }
  }

  /** Records a failure and hands on the last good set with it (the slices of the last good list and watch). */
  private fail(error: GateError, countIt = true): void {
    if (countIt) this.failures++;
    this.error = error;
    this.emit();
  }

  /** Waits 250 ms, 500 ms, 1 s, … up to 30 s as failures pile up; a stop ends the wait at once. */
  private async backoff(): Promise<void> {
    const n = Math.max(0, this.failures - 1);
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(n, 20));
    // ±20 %: many gate replicas restarted together do not hit the API server in step.
    const ms = Math.round(base * (0.8 + 0.4 * this.random()));
    if (!this.stopped) await this.sleeper.sleep(ms);
  }

  private what(): string {
    return `Service ${this.opts.namespace}/${this.opts.service}`;
  }

  private report(error: GateError): void {
    try {
      this.opts.onError?.(error);
    } catch {
      // nowhere left to report to
    }
  }
}

/** A DNS-1123 subdomain, as Kubernetes requires of pod names: safe for logs and metric labels. */
const POD_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** The slice's daemon port, or why there is none. */
export function choosePort(ports: unknown, spec: PortSpec): number | string {
  if (spec.kind === 'number') return spec.port;
  const list = Array.isArray(ports) ? ports.filter(isObj) : [];
  const valid = (p: Record<string, unknown>): number | undefined =>
    typeof p['port'] === 'number' && Number.isInteger(p['port']) && p['port'] > 0 && p['port'] <= 65535 ? p['port'] : undefined;
  if (spec.kind === 'name') {
    const p = list.find((x) => x['name'] === spec.name);
    const n = p === undefined ? undefined : valid(p);
    return n ?? `no port named ${JSON.stringify(spec.name)} (has ${list.map((x) => JSON.stringify(x['name'] ?? '')).join(', ') || 'none'}); set kubernetes-port`;
  }
  if (list.length !== 1) return `${list.length} ports, so kubernetes-port must name one`;
  return valid(list[0]!) ?? 'its port has no number; set kubernetes-port';
}

/** `5002` → that port; `http` → the slice port with that name; unset → the slice's only port. */
export function portSpecOf(value: string | undefined): PortSpec {
  if (value === undefined) return { kind: 'only' };
  return /^\d+$/.test(value) ? { kind: 'number', port: Number(value) } : { kind: 'name', name: value };
}

function mergeEndpoints(a: Endpoint, b: Endpoint): Endpoint {
  return {
    podName: a.podName ?? b.podName,
    ready: a.ready && b.ready,
    serving: a.serving && b.serving,
    terminating: a.terminating || b.terminating,
  };
}

function sameEndpoints(
  aAddr: readonly string[],
  a: ReadonlyMap<string, Endpoint>,
  bAddr: readonly string[],
  b: ReadonlyMap<string, Endpoint>,
): boolean {
  if (aAddr.length !== bAddr.length) return false;
  for (let i = 0; i < aAddr.length; i++) {
    if (aAddr[i] !== bAddr[i]) return false;
    const x = a.get(aAddr[i]!);
    const y = b.get(bAddr[i]!);
    if (x === undefined || y === undefined) return false;
    if (x.podName !== y.podName || x.ready !== y.ready || x.serving !== y.serving || x.terminating !== y.terminating) return false;
  }
  return true;
}

function sliceName(obj: Record<string, unknown>): string | undefined {
  const meta = obj['metadata'];
  return isObj(meta) && typeof meta['name'] === 'string' ? meta['name'] : undefined;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
