/**
 * Splits a TCP byte stream into Kafka frames (https://kafka.apache.org/protocol#protocol_common):
 *
 *   RequestOrResponse => Size (RequestMessage | ResponseMessage)
 *     Size => INT32   number of bytes that follow, not counting Size itself
 *
 * Pure and synchronous: the connection feeds it socket chunks and gets whole frames back.
 */
import { MessageChannel } from 'node:worker_threads';
import type { BufferPool } from '../../storage/buffer-pool.js';
import { KafkaCodecErrorCode, KafkaFrameError } from './codec-errors.js';

export interface FrameDecoderOptions {
  /**
   * Largest frame accepted, checked as soon as its size prefix arrives and before any of
   * it is buffered (Kafka's socket.request.max.bytes, 100 MiB by default there).
   */
  readonly maxFrameBytes: number;
  /**
   * Where frames of POOLED_MIN_BYTES..POOLED_MAX_BYTES that span chunks are assembled (a
   * class-sized buffer, sliced). Such a frame goes back only when its owner says nothing
   * refers to it any more (`takePooled`); one never given back is the garbage collector's.
   */
  readonly pool?: BufferPool;
}

/**
 * Frames assembled in pooled buffers: the sizes produce and replication requests come in
 * (librdkafka's message.max.bytes is 1 MB). Smaller ones are cheap to allocate; larger ones
 * are rare and would hold a class twice their size.
 */
export const POOLED_MIN_BYTES = 64 * 1024;
export const POOLED_MAX_BYTES = 4 * 1024 * 1024;

const EMPTY = Buffer.alloc(0);

/**
 * Frees a buffer's memory now rather than at the next garbage collection, which an idle
 * broker may not run for a long time. Transferring an ArrayBuffer detaches it from every view,
 * and postMessage transfers even on a closed port (the HTML spec requires it, and Node follows
 * it), so the message, and the memory it took over, is dropped at once. The caller must hold
 * the only views of `buffer`, and it must be an allocation of its own (allocUnsafeSlow), since
 * Node's shared pool cannot be transferred.
 */
function freeNow(buffer: ArrayBuffer): void {
  const { port1 } = new MessageChannel();
  port1.close();
  port1.postMessage(null, [buffer]);
}

/**
 * One decoder per connection; not shared. A frame lying inside one chunk is returned as a view
 * of it (zero copy). A frame that spans chunks is assembled in one buffer of its full size,
 * allocated when its first body byte arrives and filled as the rest does; the chunks
 * themselves are never kept. Every byte is thus copied at most once, so total work is linear
 * in the bytes received however the stream is split. Callers must not modify a chunk after
 * pushing it, and should copy frame bytes they keep after handling the request.
 *
 * Why not a queue of chunks: a large frame arriving slowly was held as hundreds of
 * 64 KiB socket reads, small enough for malloc to keep in its heap, where they fragmented it:
 * after 200 connections that each sent 2 MiB of a 100 MiB frame had gone, the broker stayed
 * 130 MB larger even after a full garbage collection. One allocation of the frame's size is
 * mapped on its own: its untouched pages cost nothing until bytes arrive (a client that
 * announces 100 MiB and sends 2 MiB holds 2 MiB), and `discard()` unmaps it when the
 * connection closes.
 *
 * After a KafkaFrameError the stream has no trustworthy boundary left: every later push()
 * throws the same error, and the connection should be closed. Frames completed by the same
 * push() as the bad prefix are not returned.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  /** A size prefix split across chunks, while it is incomplete. */
  readonly #prefix = Buffer.alloc(4);
  #prefixBytes = 0;
  /** Body size of the frame being received, or -1 while its size prefix is incomplete. */
  #frameSize = -1;
  /** The frame being assembled from several chunks, and how much of it has arrived. */
  #frame: Buffer | null = null;
  #filled = 0;
  #failure: KafkaFrameError | null = null;
  #discarded = false;
  readonly #pool: BufferPool | undefined;
  /** The pooled buffer behind each frame returned that was assembled in one. */
  readonly #pooled = new WeakMap<Buffer, Buffer>();

  constructor(options: FrameDecoderOptions) {
    const max = options.maxFrameBytes;
    if (!Number.isInteger(max) || max < 0 || max > 0x7fffffff) {
      throw new RangeError(`maxFrameBytes must be an integer in 0 ..= 2^31-1, got ${max}`);
    }
    this.#maxFrameBytes = max;
    this.#pool = options.pool;
  }

  /**
   * The pooled buffer `frame` was assembled in, once: the caller gives it back to the pool
   * when nothing refers to the frame any more. Undefined for a frame of its own (or asked
   * for a second time: a buffer given back twice would be handed to two frames).
   */
  takePooled(frame: Buffer): Buffer | undefined {
    const pooled = this.#pooled.get(frame);
    this.#pooled.delete(frame);
    return pooled;
  }

  /** Bytes received but not yet returned as part of a frame, size prefixes included. */
  get bufferedBytes(): number {
    return this.#frameSize < 0 ? this.#prefixBytes : 4 + this.#filled;
  }

  /** Feeds one chunk; returns the frames it completes (bodies without the size prefix), in order. */
  push(chunk: Buffer): Buffer[] {
    if (this.#failure !== null) throw this.#failure;
    if (this.#discarded) throw new Error('FrameDecoder.push() after discard()');
    const frames: Buffer[] = [];
    let at = 0;
    for (;;) {
      if (this.#frameSize < 0) {
        let size: number;
        if (this.#prefixBytes === 0 && chunk.length - at >= 4) {
          size = chunk.readInt32BE(at);
          at += 4;
        } else {
          const n = Math.min(4 - this.#prefixBytes, chunk.length - at);
          chunk.copy(this.#prefix, this.#prefixBytes, at, at + n);
          at += n;
          this.#prefixBytes += n;
          if (this.#prefixBytes < 4) break;
          this.#prefixBytes = 0;
          size = this.#prefix.readInt32BE(0);
        }
        this.#frameSize = this.#checkSize(size);
      }
      const available = chunk.length - at;
      if (this.#frame === null) {
        if (available >= this.#frameSize) {
          frames.push(this.#frameSize === 0 ? EMPTY : chunk.subarray(at, at + this.#frameSize));
          at += this.#frameSize;
          this.#frameSize = -1;
          continue;
        }
        // Nothing is allocated for a bare size prefix: an announcement costs nothing.
        if (available === 0) break;
        // Slow: an allocation of its own, never a slice of Node's shared pool, so that
        // discard() can free it (a pooled buffer is one too: nothing else uses it until it
        // is given back, which a discarded frame never is).
        const size = this.#frameSize;
        this.#frame = this.#pool !== undefined && size >= POOLED_MIN_BYTES && size <= POOLED_MAX_BYTES ? this.#fromPool(size) : Buffer.allocUnsafeSlow(size);
        this.#filled = 0;
      }
      const n = Math.min(this.#frameSize - this.#filled, available);
      chunk.copy(this.#frame, this.#filled, at, at + n);
      at += n;
      this.#filled += n;
      if (this.#filled < this.#frameSize) break;
      frames.push(this.#frame);
      this.#frame = null;
      this.#filled = 0;
      this.#frameSize = -1;
    }
    return frames;
  }

  #fromPool(size: number): Buffer {
    const pooled = this.#pool!.acquire(size);
    const frame = pooled.subarray(0, size);
    this.#pooled.set(frame, pooled);
    return frame;
  }

  /** Drops a partly received frame, returning its memory now; for a connection that closed. */
  discard(): void {
    if (this.#frame !== null) freeNow(this.#frame.buffer as ArrayBuffer);
    this.#frame = null;
    this.#filled = 0;
    this.#discarded = true;
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
}
