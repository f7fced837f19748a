/**
 * Splits a TCP byte stream into Kafka frames (https://kafka.apache.org/protocol#protocol_common):
 *
 *   RequestOrResponse => Size (RequestMessage | ResponseMessage)
 *     Size => INT32   number of bytes that follow, not counting Size itself
 *
 * Pure and synchronous: the connection feeds it socket chunks and gets whole frames back.
 */
import { KafkaCodecErrorCode, KafkaFrameError } from './codec-errors.js';

export interface FrameDecoderOptions {
  /**
   * Largest frame accepted, checked as soon as its size prefix arrives and before any of
   * it is buffered (Kafka's socket.request.max.bytes, 100 MiB by default there).
   */
  readonly maxFrameBytes: number;
}

const EMPTY = Buffer.alloc(0);

/**
 * One decoder per connection; not shared. Chunks are queued as received and each frame is
 * cut out once: a frame lying inside one chunk is returned as a view of it (zero copy), and a
 * frame spanning chunks is copied exactly once when its last byte arrives, so total work is
 * linear in the bytes received however the stream is split. Callers must not modify a chunk
 * after pushing it, and should copy frame bytes they keep after handling the request.
 *
 * After a KafkaFrameError the stream has no trustworthy boundary left: every later push()
 * throws the same error, and the connection should be closed. Frames completed by the same
 * push() as the bad prefix are not returned.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  /** Index in #chunks of the first chunk with unconsumed bytes. */
  #first = 0;
  /** Offset of the first unconsumed byte in #chunks[#first]. */
  #head = 0;
  #buffered = 0;
  /** Body size of the frame being assembled, or -1 while its size prefix is incomplete. */
  #frameSize = -1;
  #failure: KafkaFrameError | null = null;

  constructor(options: FrameDecoderOptions) {
    const max = options.maxFrameBytes;
    if (!Number.isInteger(max) || max < 0 || max > 0x7fffffff) {
      throw new RangeError(`maxFrameBytes must be an integer in 0 ..= 2^31-1, got ${max}`);
    }
    this.#maxFrameBytes = max;
  }

  /** Bytes received but not yet returned as part of a frame, size prefixes included. */
  get bufferedBytes(): number {
    return this.#frameSize < 0 ? this.#buffered : this.#buffered + 4;
  }

  /** Feeds one chunk; returns the frames it completes (bodies without the size prefix), in order. */
  push(chunk: Buffer): Buffer[] {
    if (this.#failure !== null) throw this.#failure;
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const frames: Buffer[] = [];
    for (;;) {
      if (this.#frameSize < 0) {
        if (this.#buffered < 4) break;
        this.#frameSize = this.#checkSize(this.#take(4).readInt32BE(0));
      }
      if (this.#buffered < this.#frameSize) break;
      frames.push(this.#take(this.#frameSize));
      this.#frameSize = -1;
    }
    if (this.#first > 0) {
      // Drop consumed chunks once per push, not once per frame, so the queue never shifts
      // element by element (quadratic for a frame assembled from many small chunks).
      this.#chunks = this.#chunks.slice(this.#first);
      this.#first = 0;
    }
    return frames;
  }

  #checkSize(size: number): number {
    if (size < 0) {
      this.#failure = new KafkaFrameError(
        KafkaCodecErrorCode.FrameInvalid,
        `Invalid Kafka frame: negative size prefix ${size}`,
        size,
      );
      throw this.#failure;
    }
    if (size > this.#maxFrameBytes) {
      this.#failure = new KafkaFrameError(
        KafkaCodecErrorCode.FrameTooLarge,
        `Kafka frame of ${size} bytes exceeds the limit of ${this.#maxFrameBytes} bytes`,
        size,
      );
      throw this.#failure;
    }
    return size;
  }

  /** Consumes `length` buffered bytes (the caller has checked they are there). */
  #take(length: number): Buffer {
    if (length === 0) return EMPTY;
    this.#buffered -= length;
    const chunk = this.#chunks[this.#first];
    if (chunk.length - this.#head >= length) {
      const view = chunk.subarray(this.#head, this.#head + length);
      this.#advance(chunk, length);
      return view;
    }
    const out = Buffer.allocUnsafe(length);
    let copied = 0;
    while (copied < length) {
      const current = this.#chunks[this.#first];
      const n = Math.min(current.length - this.#head, length - copied);
      current.copy(out, copied, this.#head, this.#head + n);
      copied += n;
      this.#advance(current, n);
    }
    return out;
  }

  #advance(chunk: Buffer, length: number): void {
    this.#head += length;
    if (this.#head === chunk.length) {
      this.#first++;
      this.#head = 0;
    }
  }
}
