/**
 * The Kafka listeners: one TCP (or TLS) server per configured listener, whose connections
 * all hand every request to one handler. Transport only; what a request means is the
 * broker's business (broker/kafka/dispatcher.ts).
 *
 * It also keeps clients from exhausting the broker: new connections, on any listener, pass
 * the limits of connection-limits.ts or are closed at once; every connection's received
 * bytes share one RequestBudget; and a sweep closes connections that are idle or that take
 * too long to send a request. Each refusal and close is counted in `stats()` and logged at
 * warn, at most one line per reason per 10 s (throttled-log.ts).
 *
 * TLS listeners (SSL, SASL_SSL): a connection passes the limits first, as
 * a plain socket, and is then handed to a node:tls server that never listens itself
 * (`tlsServer.emit('connection')`), so a flood of handshakes costs no more than a flood of
 * connections. TLS 1.2 is the minimum; the certificate files are reloaded when they change
 * (tls-credentials.ts). A handshake that fails (a plaintext client, no common protocol, a
 * handshake not done within requestReceiveTimeoutMs) is refused as `tls-handshake`; with
 * clientAuth required, a connection without a client certificate that verifies against the
 * listener's CAs (none, expired, another CA's) is refused as `tls-client-certificate`, and
 * with clientAuth requested only one presenting a certificate that does not verify is.
 *
 * Every connection knows its listener, security protocol and principal (`User:<subject DN>`
 * of a verified client certificate, else `User:ANONYMOUS`); requests carry them in their
 * context for authorization, and `connections()` lists them.
 *
 * Lifecycle: `listen()` binds every listener (port 0 picks a free one, see `ports`) and
 * starts the sweep; `close()` stops accepting and sweeping, closes every connection and
 * resolves when the servers are closed. Idempotent.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { ListenerTlsConfig, SecurityProtocol } from '../../config/listeners.js';
import { usesTls } from '../../config/listeners.js';
import { CloseReason, Connection, type ConnectionIdentity, type RequestHandler } from './connection.js';
import { clientAddress, ConnectionLimits, RefusalReason } from './connection-limits.js';
import { RequestBudget } from './request-budget.js';
import { BufferPool } from '../../storage/buffer-pool.js';
import { POOLED_MAX_BYTES } from './frame-decoder.js';
import { ANONYMOUS, secureContextOptions, TlsCredentials, tlsPrincipal } from './tls-credentials.js';
import { ThrottledLog } from '../../throttled-log.js';

/** One listener as the server needs it (a `ListenerConfig` is one). */
export interface KafkaListenerOptions {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly securityProtocol: SecurityProtocol;
  readonly tls: ListenerTlsConfig | null;
}

export interface KafkaServerOptions {
  /** At least one. SASL listeners: the handler authenticates (broker/kafka/sasl.ts). */
  listeners: readonly KafkaListenerOptions[];
  maxFrameBytes: number;
  /** Received-but-unprocessed bytes allowed per connection before its socket is paused. */
  maxQueuedBytesPerConnection?: number;
  /** Request bytes received or being handled, across connections (queued.max.request.bytes). */
  queuedMaxRequestBytes: number;
  connectionsMaxIdleMs: number;
  requestReceiveTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  maxConnectionCreationRate: number;
  logger?: Logger;
}

/** Refusals after admission: the TLS handshake, or the client certificate, failed. */
export const TlsRefusal = {
  Handshake: 'tls-handshake',
  ClientCertificate: 'tls-client-certificate',
} as const;
export type TlsRefusal = (typeof TlsRefusal)[keyof typeof TlsRefusal];

export interface KafkaListenerStats {
  name: string;
  securityProtocol: SecurityProtocol;
  host: string;
  /** Bound port (0 before listen()). */
  port: number;
  /** Open now on this listener. */
  connections: number;
  /** Admitted (passed the limits; for TLS, before the handshake). */
  accepted: number;
  /** TLS listeners: the certificate in use and its reloads. */
  tls?: { certificateSerial: string | undefined; reloads: number; reloadFailures: number };
}

/** An open connection: where it came from and who it is. */
export interface KafkaConnectionInfo extends ConnectionIdentity {
  id: number;
  remote: string;
}

/** Counters for the admin API and metrics; totals since the server started unless noted. */
export interface KafkaServerStats {
  /** Open now. */
  connections: number;
  /** Counted against the connection limits now: the open connections and TLS handshakes under way. */
  admitted: number;
  accepted: number;
  refused: Record<RefusalReason | TlsRefusal, number>;
  /** Connections the broker closed, by reason (idle, receive timeout, unreadable input...). */
  closed: Record<CloseReason, number>;
  requestBudget: {
    limitBytes: number;
    /** Held now: received and not yet handled, across connections. */
    heldBytes: number;
  };
  /**
   * Large request frames (RequestContext.freeFrameAfter): held free for reuse now, and how
   * many were assembled in a reused buffer or a newly allocated one.
   */
  framePool: { pooledBytes: number; reused: number; allocated: number };
  /** Connections not being read now because the request budget is used up. */
  socketsPaused: number;
  /** Times a connection was paused for the request budget. */
  budgetPauses: number;
  listeners: KafkaListenerStats[];
}

/** How often the sweep runs, as a fraction of the shorter timeout: closes come at most 10% late. */
const SWEEPS_PER_TIMEOUT = 10;

function zeroed<K extends string>(keys: Record<string, K>): Record<K, number> {
  return Object.fromEntries(Object.values(keys).map((k) => [k, 0])) as Record<K, number>;
}

/** One bound listener. */
interface Listener {
  readonly spec: KafkaListenerOptions;
  readonly server: net.Server;
  /** TLS listeners: the server that does the handshakes (it never listens itself). */
  readonly tls: tls.Server | undefined;
  readonly credentials: TlsCredentials | undefined;
  port: number;
  accepted: number;
}

/** Request frame memory kept for reuse across the server's connections. */
const FRAME_POOL_BYTES = 32 * 1024 * 1024;

export class KafkaServer {
  #opts: KafkaServerOptions;
  #handler: RequestHandler;
  #listeners: Listener[];
  #connections = new Set<Connection>();
  /** The raw sockets under TLS connections, in their handshake or established. */
  #tlsSockets = new Set<net.Socket>();
  #nextId = 1;
  #closing: Promise<void> | undefined;
  #budget: RequestBudget;
  /**
   * Large request frames (produce, replication appends) are assembled in buffers reused once
   * their handler frees them: a fresh megabyte per request drove most of the broker's major
   * GCs at produce rates (V8 starts one for every 64 MB of new external memory).
   */
  readonly #framePool = new BufferPool({ maxPooledBytes: FRAME_POOL_BYTES, maxBufferBytes: POOLED_MAX_BYTES });
  #limits: ConnectionLimits;
  #warn: ThrottledLog;
  #sweep: NodeJS.Timeout | undefined;
  #accepted = 0;
  #refused = zeroed({ ...RefusalReason, ...TlsRefusal });
  #closed = zeroed(CloseReason);
  #budgetPauses = 0;

  /**
   * Reads every TLS listener's files: throws (a TlsFileError naming the file, or OpenSSL's
   * error) when one cannot be used, and an Error for a SASL listener.
   */
  constructor(opts: KafkaServerOptions, handler: RequestHandler) {
    if (opts.listeners.length === 0) throw new Error('KafkaServer needs at least one listener');
    this.#opts = opts;
    this.#handler = handler;
    this.#budget = new RequestBudget(opts.queuedMaxRequestBytes);
    this.#limits = new ConnectionLimits(opts, KafkaServer.#now());
    this.#warn = new ThrottledLog(opts.logger);
    this.#listeners = opts.listeners.map((spec) => this.#listener(spec));
  }

  static #now(): number {
    return performance.now();
  }

  #listener(spec: KafkaListenerOptions): Listener {
    if (!usesTls(spec.securityProtocol) || spec.tls === null) {
      const l: Listener = { spec, server: net.createServer(), tls: undefined, credentials: undefined, port: 0, accepted: 0 };
      l.server.on('connection', (socket) => this.#accept(l, socket));
      return l;
    }
    const cfg = spec.tls;
    const credentials = new TlsCredentials(cfg, spec.name, this.#opts.logger);
    let material;
    try {
      material = credentials.load();
    } catch (err) {
      // Whoever reports it names the listener's field (broker/startup-error.ts).
      if (err !== null && typeof err === 'object') (err as { listener?: string }).listener = spec.name;
      throw err;
    }
    const server = tls.createServer({
      ...secureContextOptions(material),
      requestCert: cfg.clientAuth !== 'none',
      // Checked on 'secureConnection' instead, so a refused certificate is counted and logged.
      rejectUnauthorized: false,
      handshakeTimeout: this.#opts.requestReceiveTimeoutMs,
    });
    const l: Listener = { spec, server: net.createServer(), tls: server, credentials, port: 0, accepted: 0 };
    l.server.on('connection', (socket) => this.#accept(l, socket));
    server.on('secureConnection', (socket: tls.TLSSocket) => this.#secured(l, socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      this.#refused[TlsRefusal.Handshake]++;
      this.#warn.warn(
        TlsRefusal.Handshake,
        { listener: spec.name, remote: `${socket.remoteAddress}:${socket.remotePort}`, detail: err.code ?? err.message },
        'refusing connection: TLS handshake failed (a plaintext client on a TLS listener, no common TLS version or cipher, or too slow)',
      );
      socket.destroy();
    });
    return l;
  }

  /** The port the first listener is bound to. */
  get port(): number {
    return this.#listeners[0]!.port;
  }

  /** Every listener's bound port, by name. */
  get ports(): ReadonlyMap<string, number> {
    return new Map(this.#listeners.map((l) => [l.spec.name, l.port]));
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** The open connections with their listener, security protocol and principal. */
  connections(): KafkaConnectionInfo[] {
    return [...this.#connections].map((c) => ({ id: c.id, remote: c.remote, ...c.identity }));
  }

  stats(): KafkaServerStats {
    const open = new Map<string, number>();
    for (const c of this.#connections) open.set(c.identity.listener, (open.get(c.identity.listener) ?? 0) + 1);
    return {
      connections: this.#connections.size,
      admitted: this.#limits.open,
      accepted: this.#accepted,
      refused: { ...this.#refused },
      closed: { ...this.#closed },
      requestBudget: { limitBytes: this.#budget.limit, heldBytes: this.#budget.used },
      framePool: { pooledBytes: this.#framePool.pooledBytes, reused: this.#framePool.reused, allocated: this.#framePool.allocated },
      socketsPaused: this.#budget.waiting,
      budgetPauses: this.#budgetPauses,
      listeners: this.#listeners.map((l) => ({
        name: l.spec.name,
        securityProtocol: l.spec.securityProtocol,
        host: l.spec.host,
        port: l.port,
        connections: open.get(l.spec.name) ?? 0,
        accepted: l.accepted,
        ...(l.credentials === undefined
          ? {}
          : { tls: { certificateSerial: l.credentials.serial, reloads: l.credentials.reloads.done, reloadFailures: l.credentials.reloads.failed } }),
      })),
    };
  }

  /**
   * Binds every listener, in order; resolves with the first one's port. A listener that
   * cannot bind closes those already bound and rejects with the error, its `listener`
   * property naming it.
   */
  async listen(): Promise<number> {
    for (const l of this.#listeners) {
      try {
        l.port = await KafkaServer.#bind(l);
      } catch (err) {
        (err as { listener?: string }).listener = l.spec.name;
        await this.close();
        throw err;
      }
      if (l.credentials !== undefined && l.tls !== undefined) {
        const server = l.tls;
        l.credentials.watch((options) => server.setSecureContext(options));
      }
      this.#opts.logger?.info({ listener: l.spec.name, securityProtocol: l.spec.securityProtocol, host: l.spec.host, port: l.port }, 'kafka listener ready');
    }
    const every = Math.max(10, Math.min(this.#opts.connectionsMaxIdleMs, this.#opts.requestReceiveTimeoutMs) / SWEEPS_PER_TIMEOUT);
    this.#sweep = setInterval(() => this.#sweepConnections(), every).unref();
    return this.port;
  }

  static #bind(l: Listener): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      l.server.once('error', onError);
      l.server.listen(l.spec.port, l.spec.host, () => {
        l.server.off('error', onError);
        resolve((l.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** A new TCP connection on any listener: the limits, then Kafka (or first the handshake). */
  #accept(l: Listener, socket: net.Socket): void {
    if (this.#closing || socket.remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    const address = clientAddress(socket.remoteAddress);
    const refusal = this.#limits.admit(address, KafkaServer.#now());
    if (refusal !== null) {
      this.#refused[refusal]++;
      this.#warn.warn(refusal, { listener: l.spec.name, remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'refusing connection: over a connection limit');
      socket.destroy();
      return;
    }
    this.#accepted++;
    l.accepted++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#limits.release(address);
    };
    if (l.tls === undefined) {
      this.#serve(l, socket, { listener: l.spec.name, securityProtocol: l.spec.securityProtocol, principal: ANONYMOUS }, release);
      return;
    }
    // The raw socket holds the admission through the handshake and the connection after it:
    // it closes when either ends (a failed handshake, or the TLS socket destroyed).
    this.#tlsSockets.add(socket);
    socket.once('close', () => {
      this.#tlsSockets.delete(socket);
      release();
    });
    socket.on('error', () => {});
    l.tls.emit('connection', socket);
  }

  /** A TLS handshake finished: check the client certificate, then serve Kafka on it. */
  #secured(l: Listener, socket: tls.TLSSocket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const clientAuth = l.spec.tls?.clientAuth ?? 'none';
    if (clientAuth !== 'none' && !socket.authorized) {
      const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
      if (clientAuth === 'required' || presented) {
        this.#refused[TlsRefusal.ClientCertificate]++;
        const detail = presented ? String(socket.authorizationError ?? 'not verified') : 'no client certificate';
        this.#warn.warn(TlsRefusal.ClientCertificate, { listener: l.spec.name, remote, detail }, 'refusing connection: client certificate missing or not trusted (mutual TLS)');
        socket.destroy();
        return;
      }
    }
    const principal = clientAuth === 'none' ? ANONYMOUS : tlsPrincipal(socket);
    this.#opts.logger?.debug({ listener: l.spec.name, remote, principal, protocol: socket.getProtocol() }, 'TLS connection established');
    // The raw socket's close gives the admission back (see #accept).
    this.#serve(l, socket, { listener: l.spec.name, securityProtocol: l.spec.securityProtocol, principal }, () => {});
  }

  #serve(l: Listener, socket: net.Socket, identity: ConnectionIdentity, release: () => void): void {
    const maxFrameBytes = this.#opts.maxFrameBytes;
    const conn: Connection = new Connection(
      this.#nextId++,
      socket,
      this.#handler,
      {
        maxFrameBytes,
        maxQueuedBytes: this.#opts.maxQueuedBytesPerConnection ?? Math.max(maxFrameBytes, 8 * 1024 * 1024),
        budget: this.#budget,
        framePool: this.#framePool,
        idleMs: this.#opts.connectionsMaxIdleMs,
        receiveTimeoutMs: this.#opts.requestReceiveTimeoutMs,
        now: KafkaServer.#now,
        onSelfClose: (reason, fields, message) => this.#closedFor(reason, { listener: l.spec.name, ...fields }, message),
        onBudgetPause: () => this.#budgetPauses++,
        logger: this.#opts.logger,
        identity,
      },
      () => {
        this.#connections.delete(conn);
        release();
      },
    );
    this.#connections.add(conn);
  }

  #closedFor(reason: CloseReason, fields: Record<string, unknown>, message: string): void {
    this.#closed[reason]++;
    this.#warn.warn(reason, fields, message);
  }

  #sweepConnections(): void {
    const now = KafkaServer.#now();
    for (const c of this.#connections) {
      const reason = c.overdue(now);
      if (reason === null) continue;
      this.#closedFor(
        reason,
        { listener: c.identity.listener, remote: c.remote },
        reason === CloseReason.Idle ? 'closing idle connection' : 'closing connection: request not received in time',
      );
      c.close();
    }
    this.#warn.tick();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sweep);
      const closed = this.#listeners.map(
        (l) =>
          new Promise<void>((resolve) => {
            l.credentials?.close();
            if (!l.server.listening) resolve();
            else l.server.close(() => resolve());
          }),
      );
      for (const c of this.#connections) c.close();
      for (const s of this.#tlsSockets) s.destroy();
      this.#warn.flush();
      await Promise.all(closed);
    })();
    return this.#closing;
  }
}
