/**
 * TLS for the two wire faces (gRPC ext_authz and HTTP forward-auth; the admin
 * listener stays plain HTTP for probes and Prometheus): reading and checking
 * the PEM files, and re-reading them on an interval so a rotated certificate
 * is served without a restart.
 *
 * One TlsSource serves both faces, so they always present the same
 * certificate. It is a grpc-js CertificateProvider (the gRPC face) and has a
 * plain change listener (the HTTP face calls setSecureContext).
 *
 * grpc-js ships a FileWatcherCertificateProvider, but it pushes whatever it
 * reads: a read that fails mid-rotation (a file briefly missing while a
 * Kubernetes Secret's symlinks are swapped) clears the credentials and the
 * server drops every new connection, and a half-written PEM makes
 * setSecureContext throw, with the same result. Here a changed set of files is
 * only published once the certificate parses, the key matches it and OpenSSL
 * accepts the pair; anything else keeps the current credentials and logs a
 * warning, once per distinct broken content.
 */
import type { experimental } from '@grpc/grpc-js';
import { DEFAULTS } from '../config/config.js';
import { systemScheduler, type Scheduler, type TimerHandle } from '../core/clock.js';
import { GateError } from '../core/errors.js';
import type { FrontLogger } from './service.js';
import {
  parseTlsMaterial,
  readFilesAsync,
  readFilesSync,
  fingerprint,
  tlsFilesOf,
  type CertInfo,
  type TlsConfig,
  type TlsFiles,
  type TlsMaterial,
} from '../tls/files.js';

/** Bound on one re-read of the files (a hung network filesystem must not stall reloads forever). */
const READ_TIMEOUT_MS = 5_000;


// ------------------------------------------------------------------ reloading

export interface TlsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A front's logger for TLS events (a pino Logger has info and warn; a bare FrontLogger warns as error). */
export function tlsLogger(front: FrontLogger & Partial<TlsLogger>): TlsLogger {
  return {
    info: (obj, msg) => front.info?.(obj, msg),
    warn: (obj, msg) => (front.warn !== undefined ? front.warn(obj, msg) : front.error(obj, msg)),
  };
}

export interface TlsSourceOptions {
  /** Interval between re-reads of the files (tls-reload). */
  readonly reloadMs: number;
  readonly logger?: TlsLogger;
  readonly readTimeoutMs?: number;
  /** Runs the reload timer and tells the time for the expired-certificate warning; default the system's. */
  readonly scheduler?: Scheduler;
}

export type ReloadResult = 'unchanged' | 'reloaded' | 'rejected';

type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaListener = experimental.CaCertificateUpdateListener;

export class TlsSource implements experimental.CertificateProvider {
  private current: TlsMaterial;
  private seen: string;
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  private readonly changeListeners = new Set<(m: TlsMaterial) => void>();
  private readonly logger: TlsLogger | undefined;
  private readonly scheduler: Scheduler;
  private timer: TimerHandle | undefined;
  private inFlight: Promise<ReloadResult> | undefined;
  private closed = false;

  /**
   * Reads and checks the files now (synchronously: this is start-up) and starts
   * re-reading them every reloadMs. Throws GateError config_invalid listing the
   * problems when the files are not usable.
   */
  static open(files: TlsFiles, opts: TlsSourceOptions): TlsSource {
    const read = readFilesSync(files);
    const r = parseTlsMaterial(files, read);
    if ('problems' in r) throw new GateError('config_invalid', r.problems.join('\n'));
    return new TlsSource(files, r.material, fingerprint(read), opts);
  }

  private constructor(
    readonly files: TlsFiles,
    material: TlsMaterial,
    seen: string,
    private readonly opts: TlsSourceOptions,
  ) {
    this.current = material;
    this.seen = seen;
    this.logger = opts.logger;
    this.scheduler = opts.scheduler ?? systemScheduler;
    this.logger?.info({ ...logFields(material.info), mutual: this.mutual, reload_ms: opts.reloadMs }, 'TLS on the gRPC and HTTP faces');
    this.warnIfExpired(material.info);
    this.schedule();
  }

  /** What is served now. */
  get material(): TlsMaterial {
    return this.current;
  }

  /** Whether clients must present a certificate (tls-client-ca is set). */
  get mutual(): boolean {
    return this.files.clientCa !== undefined;
  }

  /** Called after each successful reload; returns the unsubscribe function. */
  onChange(fn: (m: TlsMaterial) => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  /**
   * Re-reads the files once; a changed, valid set replaces the material and is
   * pushed to every listener. Never rejects. Concurrent calls share one read.
   */
  reload(): Promise<ReloadResult> {
    this.inFlight ??= this.reloadOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** Stops the reload timer; the current material stays readable. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.scheduler.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.closed) return;
    // A chain of timeouts, not an interval: a slow read never overlaps the next.
    this.timer = this.scheduler.setTimeout(() => {
      this.timer = undefined;
      void this.reload().finally(() => this.schedule());
    }, this.opts.reloadMs);
  }

  private async reloadOnce(): Promise<ReloadResult> {
    try {
      const read = await readFilesAsync(this.files, this.opts.readTimeoutMs ?? READ_TIMEOUT_MS);
      const seen = fingerprint(read);
      if (seen === this.seen || this.closed) return 'unchanged';
      this.seen = seen;
      const r = parseTlsMaterial(this.files, read);
      if ('problems' in r) {
        this.logger?.warn({ problems: r.problems, serving: logFields(this.current.info) }, 'TLS files changed but are not usable; keeping the current certificate');
        return 'rejected';
      }
      this.current = r.material;
      this.publish();
      this.logger?.info(logFields(r.material.info), 'TLS certificate reloaded');
      this.warnIfExpired(r.material.info);
      return 'reloaded';
    } catch (err) {
      this.logger?.warn({ err: GateError.from(err).toJSON() }, 'TLS reload failed; keeping the current certificate');
      return 'rejected';
    }
  }

  private publish(): void {
    const m = this.current;
    // Identity before CA: grpc-js rebuilds its context on each, and the old CA
    // with the new identity is a valid intermediate state.
    for (const l of this.identityListeners) this.guard(() => l(identityUpdate(m)));
    for (const l of this.caListeners) this.guard(() => l(caUpdate(m)));
    for (const l of this.changeListeners) this.guard(() => l(m));
  }

  /** A listener's failure is logged; it never stops the others or the reload loop. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger?.warn({ err: GateError.from(err).toJSON() }, 'a TLS listener failed to take the new certificate');
    }
  }

  private warnIfExpired(info: CertInfo): void {
    if (info.notAfterMs <= this.scheduler.now()) this.logger?.warn(logFields(info), 'the TLS certificate has expired; clients will refuse it');
  }

  // grpc-js CertificateProvider. grpc-js subscribes before it starts watching
  // for updates, so the first update must arrive on a later tick, as grpc-js's
  // own providers deliver it.

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) this.guard(() => listener(identityUpdate(this.current)));
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      if (this.caListeners.has(listener)) this.guard(() => listener(caUpdate(this.current)));
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
}

function identityUpdate(m: TlsMaterial): experimental.IdentityCertificateUpdate {
  return { certificate: m.cert, privateKey: m.key };
}

function caUpdate(m: TlsMaterial): experimental.CaCertificateUpdate | null {
  return m.clientCa === undefined ? null : { caCertificate: m.clientCa };
}

function logFields(info: CertInfo): Record<string, unknown> {
  return {
    subject: info.subject,
    issuer: info.issuer,
    serial: info.serial,
    not_after: info.notAfter,
    fingerprint256: info.fingerprint256,
  };
}

/**
 * The TLS source a face uses: the shared one it was given, else one opened from
 * its own tls-* config (owned: the face closes it), else none (plaintext).
 */
export function tlsForFace(
  shared: TlsSource | undefined,
  config: TlsConfig,
  logger: FrontLogger & Partial<TlsLogger>,
  scheduler?: Scheduler,
): { tls: TlsSource | undefined; owned: boolean } {
  if (shared !== undefined) return { tls: shared, owned: false };
  const files = tlsFilesOf(config);
  if (files === undefined) return { tls: undefined, owned: false };
  return { tls: TlsSource.open(files, { reloadMs: config.tlsReloadMs ?? DEFAULTS.tlsReloadMs, logger: tlsLogger(logger), scheduler }), owned: true };
}
