/**
 * One TCP connection from this region to a remote region's Kafka port, shared by every
 * worker of that link. Requests are pipelined and matched to responses by correlation id.
 * Any failure (connect error, reset, timeout, garbled response) destroys the connection and
 * fails every request in flight; the next request connects again. Workers treat a failure
 * as "progress unknown" and ask the remote where to resume, so nothing here needs to retry.
 */
import net from 'node:net';
import { ErrorCode, MeridianError } from '../errors.js';
import { FrameDecoder } from '../protocol/kafka/frame-decoder.js';
import { Reader } from '../protocol/kafka/reader.js';
import { Writer } from '../protocol/kafka/writer.js';

export interface LinkClientOptions {
  address: string;
  clientId: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxFrameBytes?: number;
}

interface InFlight {
  resolve: (r: Reader) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class LinkClient {
  readonly address: string;
  #opts: Required<LinkClientOptions>;
  #socket: net.Socket | undefined;
  #connecting: Promise<net.Socket> | undefined;
  #inFlight = new Map<number, InFlight>();
  #nextId = 1;
  #frames: FrameDecoder | undefined;
  #closed = false;

  constructor(opts: LinkClientOptions) {
    this.address = opts.address;
    this.#opts = { connectTimeoutMs: 5000, requestTimeoutMs: 30_000, maxFrameBytes: 64 * 1024 * 1024, ...opts };
  }

  get connected(): boolean {
    return this.#socket !== undefined;
  }

  async request(apiKey: number, version: number, body: (w: Writer) => void): Promise<Reader> {
    if (this.#closed) throw new MeridianError(ErrorCode.Aborted, `link to ${this.address} is closed`);
    const socket = await this.#connect();
    const correlationId = this.#nextId++ & 0x7fffffff;
    // Batches of 16 KiB and more go out as their own chunks, uncopied; the size prefix is
    // therefore a separate buffer written once the length is known.
    const w = new Writer(4096, { zeroCopyFrom: 16 * 1024 });
    w.int16(apiKey).int16(version).int32(correlationId).string(this.#opts.clientId);
    body(w);
    const size = Buffer.allocUnsafe(4);
    size.writeInt32BE(w.length, 0);
    return new Promise<Reader>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new MeridianError(ErrorCode.LinkUnreachable, `no answer from ${this.address} within ${this.#opts.requestTimeoutMs} ms`)), this.#opts.requestTimeoutMs);
      this.#inFlight.set(correlationId, { resolve, reject, timer });
      socket.cork();
      socket.write(size);
      for (const chunk of w.toBuffers()) socket.write(chunk);
      socket.uncork();
    });
  }

  close(): void {
    this.#closed = true;
    this.#fail(new MeridianError(ErrorCode.Aborted, `link to ${this.address} closed`));
  }

  #connect(): Promise<net.Socket> {
    if (this.#socket) return Promise.resolve(this.#socket);
    this.#connecting ??= new Promise<net.Socket>((resolve, reject) => {
      const [host, port] = splitAddress(this.address);
      const socket = net.connect({ host, port, noDelay: true });
      const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${this.#opts.connectTimeoutMs} ms`)), this.#opts.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        this.#connecting = undefined;
        if (this.#closed) {
          socket.destroy();
          return reject(new MeridianError(ErrorCode.Aborted, `link to ${this.address} is closed`));
        }
        this.#socket = socket;
        const frames = new FrameDecoder({ maxFrameBytes: this.#opts.maxFrameBytes });
        this.#frames = frames;
        socket.on('data', (d: Buffer) => this.#onData(frames, d));
        socket.on('close', () => {
          frames.discard();
          if (this.#socket === socket) this.#fail(new MeridianError(ErrorCode.LinkUnreachable, `connection to ${this.address} closed`));
        });
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        if (this.#socket === socket) {
          this.#fail(new MeridianError(ErrorCode.LinkUnreachable, `connection to ${this.address} failed: ${err.message}`, { cause: err }));
        } else {
          this.#connecting = undefined;
          reject(new MeridianError(ErrorCode.LinkUnreachable, `cannot connect to ${this.address}: ${err.message}`, { cause: err }));
        }
      });
    });
    return this.#connecting;
  }

  #onData(frames: FrameDecoder, d: Buffer): void {
    // A chunk that arrives after the connection failed belongs to no request any more.
    if (this.#frames !== frames) return;
    let bodies: Buffer[];
    try {
      bodies = frames.push(d);
    } catch (err) {
      this.#fail(new MeridianError(ErrorCode.LinkUnreachable, `garbled response from ${this.address}: ${(err as Error).message}`, { retriable: true, cause: err }));
      return;
    }
    for (const body of bodies) {
      if (body.length < 4) {
        this.#fail(new MeridianError(ErrorCode.LinkUnreachable, `garbled response from ${this.address} (frame of ${body.length} bytes)`));
        return;
      }
      const r = new Reader(body);
      const id = r.int32('correlation_id');
      const waiter = this.#inFlight.get(id);
      if (waiter === undefined) continue; // answered after a timeout gave up on it
      this.#inFlight.delete(id);
      clearTimeout(waiter.timer);
      waiter.resolve(r);
    }
  }

  #fail(err: Error): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#frames?.discard();
    this.#frames = undefined;
    socket?.destroy();
    const waiting = [...this.#inFlight.values()];
    this.#inFlight.clear();
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}

export function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
