/**
 * One client connection: frames in, requests handled in arrival order, responses out in the
 * same order.
 *
 * Kafka's own broker mutes a connection while one of its requests is in flight, and both
 * clients rely on in-order answers (they pipeline and match by correlation id, and
 * librdkafka's idempotent producer relies on the order of appends). Requests are therefore
 * handled one after another, with one refinement: a handler may call `ctx.release()` once
 * the order-sensitive part of its work is done (Produce: offsets assigned), and the next
 * request starts while it waits for the rest (fdatasync). Pipelined produce requests from
 * one client thus share group commits instead of paying one fdatasync each. Responses are
 * still written strictly in request order, and at most MAX_IN_FLIGHT wait at once.
 *
 * Bounded memory: at most `maxQueuedBytes` of received frames wait per connection; past that
 * the socket is paused (TCP backpressure reaches the client) until the queue drains. A
 * response that does not fit the socket's buffer pauses processing until 'drain'.
 *
 * A frame that cannot be framed (negative or oversize length) or whose header cannot be
 * decoded closes this connection with a log line; the broker keeps serving everyone else.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { apiKeyName } from './api-keys.js';
import { FrameDecoder } from './frame-decoder.js';
import { decodeRequestHeader, type RequestHeader } from './request-header.js';
import type { Reader } from './reader.js';

export interface RequestContext {
  readonly header: RequestHeader;
  readonly connectionId: number;
  readonly clientHost: string;
  /** Aborted when the connection closes, so a long-polling handler can give up early. */
  readonly signal: AbortSignal;
  /** Lets the connection start the next request before this one's response is ready. */
  release(): void;
  /**
   * Runs `fn` once this request's response has been handed to the kernel (or was dropped):
   * the moment pooled buffers referenced by the response may be reused.
   */
  afterWrite(fn: () => void): void;
}

const MAX_IN_FLIGHT = 16;

/** Returns the framed response (one or more buffers), or null when no response is due (acks=0). */
export type RequestHandler = (ctx: RequestContext, body: Reader) => Promise<Buffer[] | null>;

export interface ConnectionOptions {
  maxFrameBytes: number;
  maxQueuedBytes: number;
  logger?: Logger;
}

const noop = () => {};

function runAll(fns: Array<() => void>): void {
  for (const fn of fns.splice(0)) fn();
}

export class Connection {
  readonly id: number;
  readonly remote: string;
  #socket: net.Socket;
  #handler: RequestHandler;
  #decoder: FrameDecoder;
  #opts: ConnectionOptions;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #processing = false;
  /** Responses not yet written, in request order. */
  #pending: Array<{ response: Promise<Buffer[] | null>; api: string | number; version: number; afterWrite: Array<() => void> }> = [];
  #writing = false;
  #slotWaiters: Array<() => void> = [];
  #closed = false;
  #abort = new AbortController();
  #onClose: () => void;
  requests = 0;

  constructor(id: number, socket: net.Socket, handler: RequestHandler, opts: ConnectionOptions, onClose: () => void) {
    this.id = id;
    this.#socket = socket;
    this.#handler = handler;
    this.#opts = opts;
    this.#onClose = onClose;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#decoder = new FrameDecoder({ maxFrameBytes: opts.maxFrameBytes });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => opts.logger?.debug({ err, remote: this.remote }, 'connection error'));
    socket.on('close', () => this.#closedBySocket());
  }

  #onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      this.#opts.logger?.warn({ remote: this.remote, err: (err as Error).message }, 'closing connection: unreadable frame');
      this.close();
      return;
    }
    for (const f of frames) {
      this.#queue.push(f);
      this.#queuedBytes += f.length;
    }
    if (this.#queuedBytes > this.#opts.maxQueuedBytes) this.#socket.pause();
    if (!this.#processing && this.#queue.length > 0) void this.#process();
  }

  async #process(): Promise<void> {
    this.#processing = true;
    while (this.#queue.length > 0 && !this.#closed) {
      const frame = this.#queue.shift()!;
      this.#queuedBytes -= frame.length;
      if (this.#socket.isPaused() && this.#queuedBytes <= this.#opts.maxQueuedBytes / 2) this.#socket.resume();
      let decoded;
      try {
        decoded = decodeRequestHeader(frame);
      } catch (err) {
        this.#opts.logger?.warn({ remote: this.remote, err: (err as Error).message }, 'closing connection: unreadable request header');
        this.close();
        break;
      }
      this.requests++;
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const afterWrite: Array<() => void> = [];
      const ctx: RequestContext = {
        header: decoded.header,
        connectionId: this.id,
        clientHost: this.#socket.remoteAddress ?? '',
        signal: this.#abort.signal,
        release,
        afterWrite: (fn) => afterWrite.push(fn),
      };
      const response = this.#handler(ctx, decoded.body);
      this.#pending.push({ response, api: apiKeyName(decoded.header.apiKey) ?? decoded.header.apiKey, version: decoded.header.apiVersion, afterWrite });
      if (!this.#writing) void this.#writeResponses();
      await Promise.race([response.then(noop, noop), released]);
      while (this.#pending.length >= MAX_IN_FLIGHT && !this.#closed) await new Promise<void>((r) => this.#slotWaiters.push(r));
    }
    this.#processing = false;
  }

  async #writeResponses(): Promise<void> {
    this.#writing = true;
    while (this.#pending.length > 0 && !this.#closed) {
      const { response, api, version, afterWrite } = this.#pending[0];
      let chunks: Buffer[] | null;
      try {
        chunks = await response;
      } catch (err) {
        // The handler could not even build an error response (an unparseable body): Kafka
        // closes such connections, and so do we.
        this.#opts.logger?.warn({ remote: this.remote, api, version, err: (err as Error).message }, 'closing connection: request could not be handled');
        this.close();
        break;
      }
      this.#pending.shift();
      for (const w of this.#slotWaiters.splice(0)) w();
      if (chunks === null || this.#closed) {
        runAll(afterWrite);
        continue;
      }
      if (!this.#write(chunks, afterWrite.length > 0 ? () => runAll(afterWrite) : undefined)) await this.#drained();
    }
    this.#writing = false;
  }

  #drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  /** Writes one response; `done` runs when the kernel has its bytes (or the socket died). */
  #write(chunks: Buffer[], done?: () => void): boolean {
    if (chunks.length === 1) return this.#socket.write(chunks[0], done);
    this.#socket.cork();
    let ok = true;
    chunks.forEach((c, i) => (ok = this.#socket.write(c, i === chunks.length - 1 ? done : undefined)));
    this.#socket.uncork();
    return ok;
  }

  #closedBySocket(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    this.#queue = [];
    for (const p of this.#pending) p.response.catch(noop);
    this.#pending = [];
    for (const w of this.#slotWaiters.splice(0)) w();
    this.#onClose();
  }

  close(): void {
    this.#socket.destroy();
    this.#closedBySocket();
  }
}
