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
 * response that does not fit the socket's buffer pauses processing until 'drain'. Across
 * connections, every received byte is charged to the broker-wide `budget` until its
 * request's response promise settles (or the connection closes), and a connection that finds
 * the budget exhausted stops reading until it has room (see request-budget.ts).
 *
 * Time limits, checked by the server's sweep through `overdue()`: a connection
 * with no bytes received and no request being handled for `idleMs` is idle; a frame not
 * complete `receiveTimeoutMs` after its first byte arrived is a slow client pinning memory.
 *
 * A frame that cannot be framed (negative or oversize length) or whose header cannot be
 * decoded closes this connection with a (rate-limited) log line; the broker keeps serving
 * everyone else.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { usesSasl, type SecurityProtocol } from '../../config/listeners.js';
import type { BufferPool } from '../../storage/buffer-pool.js';
import { apiKeyName } from './api-keys.js';
import { FrameDecoder } from './frame-decoder.js';
import type { RequestBudget } from './request-budget.js';
import { decodeRequestHeader, type RequestHeader } from './request-header.js';
import type { Reader } from './reader.js';

/** Who a connection is: the listener it came in on, its security protocol and its principal. */
export interface ConnectionIdentity {
  /** The listener's name (kafka.listeners[].name; PLAINTEXT for the single default one). */
  readonly listener: string;
  readonly securityProtocol: SecurityProtocol;
  /** Kafka's form: User:<subject DN> of a verified client certificate, else User:ANONYMOUS. */
  readonly principal: string;
}

export const DEFAULT_IDENTITY: ConnectionIdentity = { listener: 'PLAINTEXT', securityProtocol: 'PLAINTEXT', principal: 'User:ANONYMOUS' };

/**
 * A connection's security state, changed by the SASL handlers (broker/kafka/sasl.ts): who it
 * is now, whether it may send ordinary requests, and until when.
 */
export interface ConnectionSession {
  readonly listener: string;
  readonly securityProtocol: SecurityProtocol;
  principal: string;
  /** False on a SASL listener until SaslAuthenticate succeeds; true elsewhere. */
  authenticated: boolean;
  /** Date.now() at which the SASL session ends (KIP-368); 0: it does not. */
  expiresAt: number;
  /** The SASL exchange under way, owned by the SASL handlers. */
  sasl: unknown;
}

export interface RequestContext extends ConnectionIdentity {
  /** The connection's security state (the principal above is its value when the request arrived). */
  readonly session: ConnectionSession;
  /** Closes the connection once this request's response is written (a failed authentication). */
  closeAfterResponse(): void;
  /**
   * Stops handling this connection's next requests for `ms` after this one (a quota's
   * throttle: Kafka mutes the channel while the client backs off).
   */
  mute(ms: number): void;
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
  /**
   * The request's frame (the body and every view of it the handler made) is referenced by
   * nothing once `settled` settles: the connection may then give its memory back to the
   * frame pool for the next request. A handler calls it only when it knows that (Produce:
   * once every partition's append has been written or refused; the log's queue holds the
   * batches until then). Not calling it is always safe; calling it early corrupts the next
   * request that reuses the memory. At most once per request.
   */
  freeFrameAfter(settled: Promise<unknown>): void;
}

const MAX_IN_FLIGHT = 16;

/** Returns the framed response (one or more buffers), or null when no response is due (acks=0). */
export type RequestHandler = (ctx: RequestContext, body: Reader) => Promise<Buffer[] | null>;

/** Why a connection closed itself: the key its (rate-limited) warn line is counted under. */
export const CloseReason = {
  UnreadableFrame: 'unreadable-frame',
  UnreadableHeader: 'unreadable-request-header',
  RequestFailed: 'request-failed',
  Idle: 'idle',
  ReceiveTimeout: 'request-receive-timeout',
} as const;
export type CloseReason = (typeof CloseReason)[keyof typeof CloseReason];

export interface ConnectionOptions {
  maxFrameBytes: number;
  maxQueuedBytes: number;
  budget: RequestBudget;
  idleMs: number;
  receiveTimeoutMs: number;
  /** Monotonic milliseconds; the server's sweep passes the same clock to `overdue()`. */
  now: () => number;
  /** Reports a close this connection decided on; the server logs it, rate-limited. */
  onSelfClose: (reason: CloseReason, fields: Record<string, unknown>, message: string) => void;
  /** Counts the times this connection stopped reading for the budget. */
  onBudgetPause: () => void;
  logger?: Logger;
  /** Default: the PLAINTEXT listener, anonymous. */
  identity?: ConnectionIdentity;
  /** Large frames are assembled in buffers from here, reused once handlers free them (`freeFrameAfter`). */
  framePool?: BufferPool;
}

const noop = () => {};

interface PendingResponse {
  response: Promise<Buffer[] | null>;
  api: string | number;
  version: number;
  afterWrite: Array<() => void>;
  /** Close the connection once this response is written. */
  closeAfter: boolean;
}

function runAll(fns: Array<() => void>): void {
  for (const fn of fns.splice(0)) fn();
}

export class Connection {
  readonly id: number;
  readonly remote: string;
  readonly session: ConnectionSession;
  #socket: net.Socket;
  #handler: RequestHandler;
  #decoder: FrameDecoder;
  #opts: ConnectionOptions;
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #processing = false;
  /** Responses not yet written, in request order. */
  #pending: PendingResponse[] = [];
  #writing = false;
  #slotWaiters: Array<() => void> = [];
  #closed = false;
  #abort = new AbortController();
  #onClose: () => void;
  /** Bytes this connection has charged to the budget and not given back. */
  #charged = 0;
  /** Requests whose handler has not settled yet. */
  #handling = 0;
  /** Last byte received or request finished: the idle clock. */
  #activeAt: number;
  /** When the first byte of the frame being received arrived; -1 when none is partial. */
  #receiveStartedAt = -1;
  /** Paused because this connection's own queue is full. */
  #queueFull = false;
  /** Paused until the broker-wide budget has room; cancels the wait when set. */
  #budgetWait: (() => void) | null = null;
  /** performance.now() until which no further request is handled (a quota throttle). */
  #mutedUntil = 0;
  /** A response asked the connection to close once written: nothing more is read or handled. */
  #closingAfterResponse = false;
  requests = 0;

  /** Who the connection is now. */
  get identity(): ConnectionIdentity {
    const { listener, securityProtocol, principal } = this.session;
    return { listener, securityProtocol, principal };
  }

  constructor(id: number, socket: net.Socket, handler: RequestHandler, opts: ConnectionOptions, onClose: () => void) {
    this.id = id;
    const identity = opts.identity ?? DEFAULT_IDENTITY;
    this.session = { ...identity, authenticated: !usesSasl(identity.securityProtocol), expiresAt: 0, sasl: undefined };
    this.#socket = socket;
    this.#handler = handler;
    this.#opts = opts;
    this.#onClose = onClose;
    this.#activeAt = opts.now();
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#decoder = new FrameDecoder({ maxFrameBytes: opts.maxFrameBytes, pool: opts.framePool });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => opts.logger?.debug({ err, remote: this.remote }, 'connection error'));
    socket.on('close', () => this.#closedBySocket());
  }

  /**
   * Whether a time limit has passed: the receive timeout, or the idle timeout. Time spent
   * paused for this connection's own full queue does not count against the receive timeout
   * (the broker, not the client, is slow then); time paused for the budget does, because
   * only timeouts free a budget that partial frames have used up.
   */
  overdue(now: number): CloseReason | null {
    if (this.#closed) return null;
    if (this.#receiveStartedAt >= 0 && !this.#queueFull && now - this.#receiveStartedAt >= this.#opts.receiveTimeoutMs) return CloseReason.ReceiveTimeout;
    if (this.#handling === 0 && this.#queue.length === 0 && now - this.#activeAt >= this.#opts.idleMs) return CloseReason.Idle;
    return null;
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return;
    const now = this.#opts.now();
    this.#activeAt = now;
    this.#charged += chunk.length;
    this.#opts.budget.take(chunk.length);
    let frames: Buffer[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      this.#closeFor(CloseReason.UnreadableFrame, { err: (err as Error).message }, 'closing connection: unreadable frame');
      return;
    }
    if (this.#decoder.bufferedBytes === 0) this.#receiveStartedAt = -1;
    else if (frames.length > 0 || this.#receiveStartedAt < 0) this.#receiveStartedAt = now;
    for (const f of frames) {
      this.#queue.push(f);
      this.#queuedBytes += f.length;
    }
    if (this.#queuedBytes > this.#opts.maxQueuedBytes) this.#queueFull = true;
    if (this.#opts.budget.exhausted && this.#budgetWait === null) {
      this.#opts.onBudgetPause();
      this.#budgetWait = this.#opts.budget.wait(() => {
        this.#budgetWait = null;
        this.#updateReading();
      });
    }
    this.#updateReading();
    if (!this.#processing && this.#queue.length > 0) void this.#process();
  }

  #updateReading(): void {
    if (this.#closed) return;
    const stop = this.#queueFull || this.#budgetWait !== null;
    if (stop && !this.#socket.isPaused()) this.#socket.pause();
    else if (!stop && this.#socket.isPaused()) this.#socket.resume();
  }

  /** Gives back a finished request's bytes (its frame and size prefix). */
  #finished(bytes: number): void {
    this.#handling--;
    if (this.#closed) return;
    this.#activeAt = this.#opts.now();
    this.#charged -= bytes;
    this.#opts.budget.give(bytes);
  }

  async #process(): Promise<void> {
    this.#processing = true;
    while (this.#queue.length > 0 && !this.#closed && !this.#closingAfterResponse) {
      const wait = this.#mutedUntil - this.#opts.now();
      if (wait > 0) {
        await new Promise<void>((r) => setTimeout(r, wait).unref());
        continue;
      }
      const frame = this.#queue.shift()!;
      this.#queuedBytes -= frame.length;
      if (this.#queueFull && this.#queuedBytes <= this.#opts.maxQueuedBytes / 2) {
        this.#queueFull = false;
        // The client could not send while paused: its frame's clock restarts now.
        if (this.#receiveStartedAt >= 0) this.#receiveStartedAt = this.#opts.now();
        this.#updateReading();
      }
      let decoded;
      try {
        decoded = decodeRequestHeader(frame);
      } catch (err) {
        this.#closeFor(CloseReason.UnreadableHeader, { err: (err as Error).message }, 'closing connection: unreadable request header');
        break;
      }
      this.requests++;
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const afterWrite: Array<() => void> = [];
      const entry: PendingResponse = { response: undefined as unknown as Promise<Buffer[] | null>, api: apiKeyName(decoded.header.apiKey) ?? decoded.header.apiKey, version: decoded.header.apiVersion, afterWrite, closeAfter: false };
      const ctx: RequestContext = {
        listener: this.session.listener,
        securityProtocol: this.session.securityProtocol,
        principal: this.session.principal,
        session: this.session,
        closeAfterResponse: () => {
          entry.closeAfter = true;
          this.#closingAfterResponse = true;
        },
        mute: (ms) => {
          if (ms > 0) this.#mutedUntil = Math.max(this.#mutedUntil, this.#opts.now() + ms);
        },
        header: decoded.header,
        connectionId: this.id,
        clientHost: this.#socket.remoteAddress ?? '',
        signal: this.#abort.signal,
        release,
        afterWrite: (fn) => afterWrite.push(fn),
        freeFrameAfter: (settled) => {
          const pooled = this.#decoder.takePooled(frame);
          if (pooled === undefined) return;
          const giveBack = () => this.#opts.framePool!.release(pooled);
          settled.then(giveBack, giveBack);
        },
      };
      this.#handling++;
      const response = this.#handler(ctx, decoded.body);
      entry.response = response;
      const done = () => this.#finished(4 + frame.length);
      response.then(done, done);
      this.#pending.push(entry);
      if (!this.#writing) void this.#writeResponses();
      await Promise.race([response.then(noop, noop), released]);
      while (this.#pending.length >= MAX_IN_FLIGHT && !this.#closed) await new Promise<void>((r) => this.#slotWaiters.push(r));
    }
    this.#processing = false;
  }

  async #writeResponses(): Promise<void> {
    this.#writing = true;
    while (this.#pending.length > 0 && !this.#closed) {
      const entry = this.#pending[0];
      const { response, api, version, afterWrite } = entry;
      let chunks: Buffer[] | null;
      try {
        chunks = await response;
      } catch (err) {
        // The handler could not even build an error response (an unparseable body): Kafka
        // closes such connections, and so do we.
        this.#closeFor(CloseReason.RequestFailed, { api, version, err: (err as Error).message }, 'closing connection: request could not be handled');
        break;
      }
      this.#pending.shift();
      for (const w of this.#slotWaiters.splice(0)) w();
      // Read once the response is ready: a handler may ask to close after an await (a failed
      // SASL login is answered, and the connection closed, only after its delay).
      const closeAfter = entry.closeAfter;
      if (chunks === null || this.#closed) {
        runAll(afterWrite);
        if (closeAfter) this.close();
        continue;
      }
      if (closeAfter) {
        // The answer goes out, then the connection ends (end() flushes what is written).
        this.#write(chunks, afterWrite.length > 0 ? () => runAll(afterWrite) : undefined);
        this.#socket.end();
        // A client that does not close its side is cut off shortly after.
        setTimeout(() => this.close(), 1000).unref();
        break;
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

  #closeFor(reason: CloseReason, fields: Record<string, unknown>, message: string): void {
    if (this.#closed) return;
    this.#opts.onSelfClose(reason, { remote: this.remote, ...fields }, message);
    this.close();
  }

  #closedBySocket(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    this.#queue = [];
    this.#queuedBytes = 0;
    for (const p of this.#pending) p.response.catch(noop);
    this.#pending = [];
    for (const w of this.#slotWaiters.splice(0)) w();
    this.#budgetWait?.();
    this.#budgetWait = null;
    this.#decoder.discard();
    // Handlers still running may hold views of their frames, but the client is gone and
    // so is the reason to keep its bytes out of the budget.
    this.#opts.budget.give(this.#charged);
    this.#charged = 0;
    this.#onClose();
  }

  close(): void {
    this.#socket.destroy();
    this.#closedBySocket();
  }
}
