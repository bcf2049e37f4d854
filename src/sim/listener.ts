/**
 * The simulated daemon's server lifecycle: one HTTP server that listens while
 * the pod should accept connections (up, not restarting, not refusing) and is
 * closed otherwise, on the same port each time, so a gate sees ECONNREFUSED
 * exactly while the pod is away. Changes run one at a time, in order.
 */
import http from 'node:http';
import type { Socket } from 'node:net';

export interface SimListenerOptions {
  readonly host: string;
  /** 0 = ephemeral; the port first bound is kept for every later listen. */
  readonly port: number;
  /** Whether the pod should accept connections now. */
  readonly want: () => boolean;
  readonly onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  readonly onError: (message: string) => void;
}

export class SimListener {
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private boundPort: number | undefined;
  /** Listener changes run one at a time, in order. */
  private ops: Promise<void> = Promise.resolve();

  constructor(private readonly opts: SimListenerOptions) {
    const server = http.createServer(opts.onRequest);
    // The daemon's Go http.Server sets no IdleTimeout: idle keep-alives stay open until
    // the process exits (Node would close them after 5 s and say so in a Keep-Alive header).
    server.keepAliveTimeout = 0;
    server.on('connection', (socket: Socket) => {
      if (!opts.want()) {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    server.on('error', (err) => opts.onError(err.message));
    this.server = server;
  }

  /** The port bound once listened; undefined before. */
  get port(): number | undefined {
    return this.boundPort;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  get openSockets(): number {
    return this.sockets.size;
  }

  /** Listens or stops listening to match `want()`; while not wanted, open sockets are cut. */
  reconcile(): Promise<void> {
    const op = this.ops.then(() => this.apply());
    this.ops = op.catch(() => undefined);
    return op;
  }

  /** Binds once whatever `want()` says, so a pod started refusing has an address that refuses. */
  async bind(): Promise<void> {
    await this.listen();
    await this.reconcile();
  }

  private async apply(): Promise<void> {
    const want = this.opts.want();
    if (want && !this.server.listening) {
      await this.listen();
    } else if (!want && this.server.listening) {
      await this.stopListening();
    } else if (!want) {
      this.destroySockets();
    }
  }

  private listen(): Promise<void> {
    const server = this.server;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        server.off('listening', onListening);
        this.opts.onError(`listen: ${err.message}`);
        reject(err);
      };
      const onListening = (): void => {
        server.off('error', onError);
        const addr = server.address();
        if (addr !== null && typeof addr === 'object') this.boundPort = addr.port;
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this.boundPort ?? this.opts.port, this.opts.host);
    });
  }

  private stopListening(): Promise<void> {
    const server = this.server;
    return new Promise<void>((resolve) => {
      // Bounded even if some socket refuses to die: closing must never hang a test.
      const fallback = setTimeout(resolve, 2000);
      fallback.unref();
      server.close(() => {
        clearTimeout(fallback);
        resolve();
      });
      server.closeAllConnections();
      this.destroySockets();
    });
  }

  private destroySockets(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
