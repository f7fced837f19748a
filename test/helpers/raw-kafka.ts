/**
 * A bare Kafka client over one socket, for tests that need to send exactly the bytes they
 * choose: pipelined requests, partial frames, malformed input, unknown versions. Requests
 * are encoded with the project's own generated codecs; responses are returned as raw frames.
 */
import net from 'node:net';
import { FrameDecoder } from '../../src/protocol/kafka/frame-decoder.js';
import { Reader } from '../../src/protocol/kafka/reader.js';
import { Writer } from '../../src/protocol/kafka/writer.js';
import { requestHeaderVersion, responseHeaderVersion } from '../../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../../src/protocol/kafka/messages/index.js';

export class RawClient {
  readonly socket: net.Socket;
  /** Responses of any size a Kafka frame can announce. */
  readonly #decoder = new FrameDecoder({ maxFrameBytes: 0x7fffffff });
  #frames: Buffer[] = [];
  #waiters: Array<() => void> = [];
  closed = false;
  #nextCorrelation = 1;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      try {
        this.#frames.push(...this.#decoder.push(d));
      } catch {
        socket.destroy(); // a negative size prefix: no frame boundary can be trusted after it
      }
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The framed bytes of one request (size prefix included). */
  frame(apiKey: number, version: number, body: unknown, correlationId = this.#nextCorrelation++, clientId = 'raw-test'): Buffer {
    const w = new Writer();
    const size = w.reserveInt32();
    w.int16(apiKey).int16(version).int32(correlationId).nullableString(clientId);
    if (requestHeaderVersion(apiKey, version) === 2) w.taggedFields();
    messageCodecs.get(apiKey)!.encodeRequest(w, version, body as never);
    w.setInt32(size, w.length - 4);
    return w.toBuffer();
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Next response frame (without its size prefix), or null if the connection closed. */
  async next(timeoutMs = 10_000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0) {
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no response within timeout');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.#frames.shift()!;
  }

  /** Sends one request and decodes its response with the generated codec. */
  async request<T = any>(apiKey: number, version: number, body: unknown): Promise<{ correlationId: number; body: T }> {
    const correlationId = this.#nextCorrelation++;
    this.send(this.frame(apiKey, version, body, correlationId));
    const f = await this.next();
    if (f === null) throw new Error('connection closed before the response');
    return decodeResponse<T>(apiKey, version, f);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function decodeResponse<T>(apiKey: number, version: number, frame: Buffer): { correlationId: number; body: T } {
  const r = new Reader(frame);
  const correlationId = r.int32();
  if (responseHeaderVersion(apiKey, version) === 1) r.skipTaggedFields();
  return { correlationId, body: messageCodecs.get(apiKey)!.decodeResponse(r, version) as T };
}
