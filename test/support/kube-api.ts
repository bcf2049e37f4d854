/**
 * A stand-in for the Kubernetes API server, on loopback over TLS, speaking the
 * wire protocol discovery uses: the EndpointSliceList JSON with
 * metadata.resourceVersion, watches as newline-delimited events (ADDED,
 * MODIFIED, DELETED, BOOKMARK, ERROR) each carrying its resourceVersion, a
 * 410 ERROR event for a resourceVersion older than the last compaction,
 * timeoutSeconds, label selection by kubernetes.io/service-name, Services by
 * name, and bearer tokens (401 for an unknown token, 403 for a token RBAC
 * refuses), with the API's Status objects as error bodies.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { TestPki, type CertFiles } from './certs.js';

export interface StandInEndpoint {
  readonly ip: string;
  /** targetRef name (kind Pod); omitted = no targetRef. */
  readonly pod?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export interface StandInSlice {
  readonly name: string;
  readonly service: string;
  readonly namespace?: string;
  readonly addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  readonly endpoints: readonly StandInEndpoint[];
  readonly ports: ReadonlyArray<{ readonly name?: string; readonly port: number }>;
}

export interface RecordedRequest {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly token: string | undefined;
  readonly status: number;
}

interface Watcher {
  readonly res: ServerResponse;
  readonly namespace: string;
  readonly service: string | undefined;
  readonly bookmarks: boolean;
  readonly timer: NodeJS.Timeout;
}

type Obj = Record<string, unknown>;

export class KubeApiStandIn {
  readonly pki: TestPki;
  readonly ca: CertFiles;
  private server!: Server;
  private rv = 100;
  /** A watch from a resourceVersion below this gets 410. */
  private floor = 0;
  private readonly slices = new Map<string, { rv: number; obj: Obj; namespace: string; service: string }>();
  private readonly history: { rv: number; type: string; obj: Obj; namespace: string; service: string }[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  readonly tokens = new Set<string>();
  readonly forbidden = new Set<string>();
  readonly services = new Set<string>();
  readonly requests: RecordedRequest[] = [];
  /** While set, requests are accepted and never answered (a hung API server). */
  stall = false;
  /** While set, a watch's timeoutSeconds never ends it: the connection stays open and silent (half-open after a failover). */
  holdWatchesOpen = false;
  port = 0;

  private constructor(pki: TestPki) {
    this.pki = pki;
    this.ca = pki.ca('kube-ca');
  }

  static async start(opts: { tokens?: readonly string[]; services?: readonly string[] } = {}): Promise<KubeApiStandIn> {
    const s = new KubeApiStandIn(new TestPki('pg-kube-'));
    for (const t of opts.tokens ?? []) s.tokens.add(t);
    for (const svc of opts.services ?? []) s.services.add(svc);
    const leaf = s.pki.leaf('kube-apiserver', s.ca, 'server');
    s.server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => s.handle(req, res));
    s.server.on('connection', (sock: Socket) => {
      s.sockets.add(sock);
      sock.on('close', () => s.sockets.delete(sock));
    });
    s.server.on('secureConnection', (sock) => {
      s.sockets.add(sock);
      sock.on('close', () => s.sockets.delete(sock));
    });
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.port = (s.server.address() as AddressInfo).port;
    return s;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Adds or replaces a slice (ADDED or MODIFIED to watchers); returns its resourceVersion. */
  setSlice(slice: StandInSlice): string {
    const namespace = slice.namespace ?? 'dify';
    const existed = this.slices.has(`${namespace}/${slice.name}`);
    const rv = ++this.rv;
    const obj = sliceObject(slice, namespace, rv);
    this.slices.set(`${namespace}/${slice.name}`, { rv, obj, namespace, service: slice.service });
    this.publish(existed ? 'MODIFIED' : 'ADDED', obj, namespace, slice.service);
    return String(rv);
  }

  deleteSlice(name: string, namespace = 'dify'): void {
    const cur = this.slices.get(`${namespace}/${name}`);
    if (cur === undefined) return;
    this.slices.delete(`${namespace}/${name}`);
    const rv = ++this.rv;
    const obj = { ...cur.obj, metadata: { ...(cur.obj['metadata'] as Obj), resourceVersion: String(rv) } };
    this.publish('DELETED', obj, namespace, cur.service);
  }

  /** A BOOKMARK to every watcher that asked for them: only a new resourceVersion. */
  bookmark(): string {
    const rv = ++this.rv;
    for (const w of this.watchers) {
      if (w.bookmarks) write(w.res, { type: 'BOOKMARK', object: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(rv) } } });
    }
    return String(rv);
  }

  /**
   * Compaction: every resourceVersion older than the current one becomes too old
   * to watch from. Open watches get the ERROR 410 event a real server sends when
   * it cannot continue them.
   */
  compact(): void {
    this.floor = this.rv;
    this.history.length = 0;
    for (const w of [...this.watchers]) {
      write(w.res, { type: 'ERROR', object: goneStatus(this.rv) });
      this.endWatch(w);
    }
  }

  /** Breaks every open watch connection without a clean end (a network drop, an API server crash). */
  dropWatches(): void {
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      clearTimeout(w.timer);
      w.res.socket?.destroy();
    }
  }

  openWatches(): number {
    return this.watchers.size;
  }

  watchRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.query.get('watch') === '1');
  }

  listRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.path.endsWith('/endpointslices') && r.query.get('watch') !== '1');
  }

  async close(): Promise<void> {
    for (const w of this.watchers) clearTimeout(w.timer);
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.pki.remove();
  }

  private publish(type: string, obj: Obj, namespace: string, service: string): void {
    this.history.push({ rv: this.rv, type, obj, namespace, service });
    for (const w of this.watchers) {
      if (w.namespace === namespace && (w.service === undefined || w.service === service)) write(w.res, { type, object: obj });
    }
  }

  private endWatch(w: Watcher): void {
    this.watchers.delete(w);
    clearTimeout(w.timer);
    w.res.end();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://stand-in');
    const auth = req.headers['authorization'];
    const token = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const record = (status: number): void => {
      this.requests.push({ path: url.pathname, query: url.searchParams, token, status });
    };
    if (this.stall) {
      record(0);
      return; // never answered
    }
    if (token === undefined || !this.tokens.has(token)) {
      record(401);
      return sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const slices = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/.exec(url.pathname);
    const service = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || (slices === null && service === null)) {
      record(404);
      return sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
    }
    if (this.forbidden.has(token)) {
      record(403);
      const [resource, group, verb] = slices !== null ? ['endpointslices', 'discovery.k8s.io', url.searchParams.get('watch') === '1' ? 'watch' : 'list'] : ['services', '', 'get'];
      const ns = (slices ?? service)![1];
      return sendStatus(
        res,
        403,
        'Forbidden',
        `${resource}${group === '' ? '' : '.' + group} is forbidden: User "system:serviceaccount:${ns}:plugin-gate" cannot ${verb} resource "${resource}" in API group "${group}" in the namespace "${ns}"`,
      );
    }
    if (service !== null) {
      const [, ns, name] = service;
      if (!this.services.has(`${ns}/${name}`)) {
        record(404);
        return sendStatus(res, 404, 'NotFound', `services "${name}" not found`);
      }
      record(200);
      return sendJson(res, 200, { kind: 'Service', apiVersion: 'v1', metadata: { name, namespace: ns, resourceVersion: String(this.rv) }, spec: {} });
    }
    const ns = slices![1]!;
    const selector = url.searchParams.get('labelSelector') ?? '';
    const m = /^kubernetes\.io\/service-name=(.+)$/.exec(selector);
    const svc = m === null ? undefined : m[1];
    if (url.searchParams.get('watch') === '1' || url.searchParams.get('watch') === 'true') return this.watch(req, res, url, ns, svc, record);
    record(200);
    const items = [...this.slices.values()]
      .filter((s) => s.namespace === ns && (svc === undefined || s.service === svc))
      .map((s) => {
        // List items carry no kind/apiVersion, as the real list does.
        const { kind: _k, apiVersion: _a, ...rest } = s.obj;
        return rest;
      });
    return sendJson(res, 200, { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(this.rv) }, items });
  }

  private watch(req: IncomingMessage, res: ServerResponse, url: URL, ns: string, svc: string | undefined, record: (s: number) => void): void {
    const from = Number(url.searchParams.get('resourceVersion') ?? '0');
    const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') ?? '1800');
    record(200);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from < this.floor) {
      // A real server answers 200 and then a single ERROR event for an expired resourceVersion.
      write(res, { type: 'ERROR', object: goneStatus(from) });
      res.end();
      return;
    }
    for (const h of this.history) {
      if (h.rv > from && h.namespace === ns && (svc === undefined || h.service === svc)) write(res, { type: h.type, object: h.obj });
    }
    const w: Watcher = {
      res,
      namespace: ns,
      service: svc,
      bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true',
      timer: setTimeout(() => {
        if (!this.holdWatchesOpen) this.endWatch(w);
      }, timeoutSeconds * 1000),
    };
    this.watchers.add(w);
    req.on('close', () => {
      this.watchers.delete(w);
      clearTimeout(w.timer);
    });
  }
}

function sliceObject(s: StandInSlice, namespace: string, rv: number): Obj {
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: {
      name: s.name,
      namespace,
      resourceVersion: String(rv),
      labels: { 'kubernetes.io/service-name': s.service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      generateName: `${s.service}-`,
    },
    addressType: s.addressType ?? 'IPv4',
    endpoints: s.endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ...(e.ready === undefined ? {} : { ready: e.ready }),
        ...(e.serving === undefined ? {} : { serving: e.serving }),
        ...(e.terminating === undefined ? {} : { terminating: e.terminating }),
      },
      ...(e.pod === undefined ? {} : { targetRef: { kind: 'Pod', namespace, name: e.pod, uid: `uid-${e.pod}` } }),
      nodeName: 'node-1',
    })),
    ports: s.ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: 'TCP' })),
  };
}

function goneStatus(rv: number): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${rv}`, reason: 'Expired', code: 410 };
}

function write(res: ServerResponse, event: Obj): void {
  if (!res.writableEnded) res.write(JSON.stringify(event) + '\n');
}

function sendJson(res: ServerResponse, status: number, body: Obj): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
