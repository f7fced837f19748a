/**
 * A userspace TCP proxy on 127.0.0.1 for fault injection between a client and a server:
 * cut every connection, refuse new ones, add delay, or inspect Kafka frames flowing each
 * way and decide per frame to forward it or kill the connection. (tc netem does not exist
 * on this kernel; a proxy is the simplest way to break a link on loopback.)
 */
import net from 'node:net';
import { FrameDecoder } from '../../src/protocol/kafka/frame-decoder.js';

export type FrameVerdict = 'forward' | 'kill';

export interface ProxyOptions {
  /** May be set after start (a broker advertising the proxy's port starts after it). */
  targetPort: number;
  /** Called for every complete Kafka frame (size prefix included) going client → server. */
  onRequest?: (frame: Buffer) => FrameVerdict;
  /** Called for every complete Kafka frame going server → client. */
  onResponse?: (frame: Buffer) => FrameVerdict;
  delayMs?: number;
}

/** Splits a byte stream into whole frames, each with its size prefix, as the inspectors get them. */
class FrameSplitter {
  readonly #decoder = new FrameDecoder({ maxFrameBytes: 0x7fffffff });

  /** Throws on a negative size prefix, after which the stream has no frame boundary left. */
  push(chunk: Buffer): Buffer[] {
    return this.#decoder.push(chunk).map((body) => {
      const frame = Buffer.allocUnsafe(4 + body.length);
      frame.writeInt32BE(body.length, 0);
      body.copy(frame, 4);
      return frame;
    });
  }
}

export class TcpProxy {
  readonly #opts: ProxyOptions;

  get options(): ProxyOptions {
    return this.#opts;
  }
  readonly #server: net.Server;
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  #refusing = false;
  port = 0;

  constructor(opts: ProxyOptions) {
    this.#opts = opts;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  async start(): Promise<number> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this.port;
  }

  #accept(client: net.Socket): void {
    if (this.#refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.#opts.targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.#pairs.add(pair);
    const kill = () => {
      client.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
    };
    client.on('error', kill).on('close', kill);
    upstream.on('error', kill).on('close', kill);
    this.#pipe(client, upstream, this.#opts.onRequest, kill);
    this.#pipe(upstream, client, this.#opts.onResponse, kill);
  }

  #pipe(from: net.Socket, to: net.Socket, inspect: ((f: Buffer) => FrameVerdict) | undefined, kill: () => void): void {
    const splitter = inspect ? new FrameSplitter() : undefined;
    from.on('data', (chunk: Buffer) => {
      const send = (b: Buffer) => {
        if (this.#opts.delayMs) setTimeout(() => to.destroyed || to.write(b), this.#opts.delayMs);
        else to.write(b);
      };
      if (!splitter || !inspect) return send(chunk);
      let frames: Buffer[];
      try {
        frames = splitter.push(chunk);
      } catch {
        return kill();
      }
      for (const frame of frames) {
        if (inspect(frame) === 'kill') return kill();
        send(frame);
      }
    });
  }

  /** Drops every open connection (clients see a reset, as on a network failure). */
  cutAll(): void {
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    this.#pairs.clear();
  }

  /** While refusing, new connections are closed at once; existing ones are cut. */
  setRefusing(refusing: boolean): void {
    this.#refusing = refusing;
    if (refusing) this.cutAll();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
