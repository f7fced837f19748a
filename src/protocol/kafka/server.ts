/**
 * The Kafka listener: a TCP server whose connections hand every request to one handler.
 * Transport only; what a request means is the broker's business (broker/kafka/dispatcher.ts).
 *
 * It also keeps clients from exhausting the broker: new connections pass the
 * limits of connection-limits.ts or are closed at once; every connection's received bytes
 * share one RequestBudget; and a sweep closes connections that are idle or that take too
 * long to send a request. Each refusal and close is counted in `stats()` and logged at warn,
 * at most one line per reason per 10 s (throttled-log.ts).
 *
 * Lifecycle: `listen()` binds (port 0 picks a free one, see `port`) and starts the sweep;
 * `close()` stops accepting and sweeping, closes every connection and resolves when the server
 * is closed. Idempotent.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { CloseReason, Connection, type RequestHandler } from './connection.js';
import { clientAddress, ConnectionLimits, RefusalReason } from './connection-limits.js';
import { RequestBudget } from './request-budget.js';
import { ThrottledLog } from '../../throttled-log.js';

export interface KafkaServerOptions {
  host: string;
  port: number;
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

/** Counters for the admin API and metrics; totals since the server started unless noted. */
export interface KafkaServerStats {
  /** Open now. */
  connections: number;
  accepted: number;
  refused: Record<RefusalReason, number>;
  /** Connections the broker closed, by reason (idle, receive timeout, unreadable input...). */
  closed: Record<CloseReason, number>;
  requestBudget: {
    limitBytes: number;
    /** Held now: received and not yet handled, across connections. */
    heldBytes: number;
  };
  /** Connections not being read now because the request budget is used up. */
  socketsPaused: number;
  /** Times a connection was paused for the request budget. */
  budgetPauses: number;
}

/** How often the sweep runs, as a fraction of the shorter timeout: closes come at most 10% late. */
const SWEEPS_PER_TIMEOUT = 10;

function zeroed<K extends string>(keys: Record<string, K>): Record<K, number> {
  return Object.fromEntries(Object.values(keys).map((k) => [k, 0])) as Record<K, number>;
}

export class KafkaServer {
  #opts: KafkaServerOptions;
  #handler: RequestHandler;
  #server: net.Server;
  #connections = new Set<Connection>();
  #nextId = 1;
  #closing: Promise<void> | undefined;
  #port = 0;
  #budget: RequestBudget;
  #limits: ConnectionLimits;
  #warn: ThrottledLog;
  #sweep: NodeJS.Timeout | undefined;
  #accepted = 0;
  #refused = zeroed(RefusalReason);
  #closed = zeroed(CloseReason);
  #budgetPauses = 0;

  constructor(opts: KafkaServerOptions, handler: RequestHandler) {
    this.#opts = opts;
    this.#handler = handler;
    this.#budget = new RequestBudget(opts.queuedMaxRequestBytes);
    this.#limits = new ConnectionLimits(opts, KafkaServer.#now());
    this.#warn = new ThrottledLog(opts.logger);
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  static #now(): number {
    return performance.now();
  }

  get port(): number {
    return this.#port;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  stats(): KafkaServerStats {
    return {
      connections: this.#connections.size,
      accepted: this.#accepted,
      refused: { ...this.#refused },
      closed: { ...this.#closed },
      requestBudget: { limitBytes: this.#budget.limit, heldBytes: this.#budget.used },
      socketsPaused: this.#budget.waiting,
      budgetPauses: this.#budgetPauses,
    };
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.#opts.port, this.#opts.host, () => {
        this.#server.off('error', onError);
        this.#port = (this.#server.address() as net.AddressInfo).port;
        const every = Math.max(10, Math.min(this.#opts.connectionsMaxIdleMs, this.#opts.requestReceiveTimeoutMs) / SWEEPS_PER_TIMEOUT);
        this.#sweep = setInterval(() => this.#sweepConnections(), every).unref();
        this.#opts.logger?.info({ host: this.#opts.host, port: this.#port }, 'kafka listener ready');
        resolve(this.#port);
      });
    });
  }

  #accept(socket: net.Socket): void {
    if (this.#closing || socket.remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    const address = clientAddress(socket.remoteAddress);
    const refusal = this.#limits.admit(address, KafkaServer.#now());
    if (refusal !== null) {
      this.#refused[refusal]++;
      this.#warn.warn(refusal, { remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'refusing connection: over a connection limit');
      socket.destroy();
      return;
    }
    this.#accepted++;
    const maxFrameBytes = this.#opts.maxFrameBytes;
    const conn: Connection = new Connection(
      this.#nextId++,
      socket,
      this.#handler,
      {
        maxFrameBytes,
        maxQueuedBytes: this.#opts.maxQueuedBytesPerConnection ?? Math.max(maxFrameBytes, 8 * 1024 * 1024),
        budget: this.#budget,
        idleMs: this.#opts.connectionsMaxIdleMs,
        receiveTimeoutMs: this.#opts.requestReceiveTimeoutMs,
        now: KafkaServer.#now,
        onSelfClose: (reason, fields, message) => this.#closedFor(reason, fields, message),
        onBudgetPause: () => this.#budgetPauses++,
        logger: this.#opts.logger,
      },
      () => {
        this.#connections.delete(conn);
        this.#limits.release(address);
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
        { remote: c.remote },
        reason === CloseReason.Idle ? 'closing idle connection' : 'closing connection: request not received in time',
      );
      c.close();
    }
    this.#warn.tick();
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      clearInterval(this.#sweep);
      this.#server.close(() => resolve());
      for (const c of this.#connections) c.close();
      this.#warn.flush();
    });
    return this.#closing;
  }
}
