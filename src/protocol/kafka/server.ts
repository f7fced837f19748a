/**
 * The Kafka listener: a TCP server whose connections hand every request to one handler.
 * Transport only; what a request means is the broker's business (broker/kafka-api.ts).
 *
 * Lifecycle: `listen()` binds (port 0 picks a free one, see `port`); `close()` stops
 * accepting, closes every connection and resolves when the server is closed. Idempotent.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { Connection, type RequestHandler } from './connection.js';

export interface KafkaServerOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  /** Received-but-unprocessed bytes allowed per connection before its socket is paused. */
  maxQueuedBytesPerConnection?: number;
  logger?: Logger;
}

export class KafkaServer {
  #opts: KafkaServerOptions;
  #handler: RequestHandler;
  #server: net.Server;
  #connections = new Set<Connection>();
  #nextId = 1;
  #closing: Promise<void> | undefined;
  #port = 0;

  constructor(opts: KafkaServerOptions, handler: RequestHandler) {
    this.#opts = opts;
    this.#handler = handler;
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  get port(): number {
    return this.#port;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.#opts.port, this.#opts.host, () => {
        this.#server.off('error', onError);
        this.#port = (this.#server.address() as net.AddressInfo).port;
        this.#opts.logger?.info({ host: this.#opts.host, port: this.#port }, 'kafka listener ready');
        resolve(this.#port);
      });
    });
  }

  #accept(socket: net.Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const maxFrameBytes = this.#opts.maxFrameBytes;
    const conn: Connection = new Connection(
      this.#nextId++,
      socket,
      this.#handler,
      { maxFrameBytes, maxQueuedBytes: this.#opts.maxQueuedBytesPerConnection ?? Math.max(maxFrameBytes, 8 * 1024 * 1024), logger: this.#opts.logger },
      () => this.#connections.delete(conn),
    );
    this.#connections.add(conn);
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const c of this.#connections) c.close();
    });
    return this.#closing;
  }
}
