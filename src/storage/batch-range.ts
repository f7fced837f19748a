/**
 * Which stored batches a read returns: the one that holds `offset`, then the following ones
 * while they fit in `maxBytes`, always at least the first however large (KIP-74), never one
 * whose base offset reaches `limit` (the high watermark, or the durable end for
 * geo-replication). Pure: bytes and numbers in, positions out, no I/O.
 *
 * Both segment readers walk batch headers in log order and hand each one to a `BatchRange`:
 * the local log (`PartitionLog`, over a window it preads, then header by header) and the
 * remote segment reader (`tiered/remote-reader.ts`, header by header through its block
 * cache). The rule lives here once, so a read gives the same bytes from either tier.
 */
import { readInt64BE } from './int64.js';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD } from './record-batch.js';

export class BatchRange {
  /** Byte position of the first batch chosen; -1 until the batch holding `offset` is seen. */
  start = -1;
  /** Bytes chosen from `start`: whole batches only. */
  length = 0;
  readonly #offset: bigint;
  readonly #maxBytes: number;
  readonly #limit: bigint | undefined;

  /** `limit` undefined: no limit (a sealed remote segment lies wholly below the high watermark). */
  constructor(offset: bigint, maxBytes: number, limit: bigint | undefined) {
    this.#offset = offset;
    this.#maxBytes = maxBytes;
    this.#limit = limit;
  }

  /**
   * Offers the next batch in log order (its byte position, total size, first and last
   * offset); returns whether the walk should go on. A batch before `offset` is passed over;
   * the first one holding it (or after it) is taken whatever its size; later ones while the
   * total stays within `maxBytes`.
   */
  offer(pos: number, size: number, baseOffset: bigint, lastOffset: bigint): boolean {
    if (this.#limit !== undefined && baseOffset >= this.#limit) return false;
    if (this.start < 0) {
      if (lastOffset < this.#offset) return true;
      this.start = pos;
      this.length = size;
      return true;
    }
    if (this.length + size > this.#maxBytes) return false;
    this.length += size;
    return true;
  }

  get found(): boolean {
    return this.start >= 0;
  }

  /** One past the last byte chosen. */
  get end(): number {
    return this.start + this.length;
  }

  /** Nothing more can be added: every batch is at least a header long. */
  get full(): boolean {
    return this.start >= 0 && this.length + BATCH_HEADER_BYTES > this.#maxBytes;
  }
}

export interface WindowSelection {
  /** Position in the window of the first batch chosen; -1 when the window ended before it. */
  start: number;
  length: number;
  /** Where the walk stopped: the position of the first batch not taken or not examined. */
  next: number;
}

/**
 * Runs a `BatchRange` over the batches of `window` (bytes read from a segment at a batch
 * boundary). Stops at the first header the window does not hold whole, and after a chosen
 * batch that runs past the window's end: the caller reads that range again from the segment
 * (`start + length` > window length), or, when nothing was chosen, walks on from `next`.
 */
export function selectBatchRange(window: Buffer, offset: bigint, maxBytes: number, limit: bigint | undefined): WindowSelection {
  const range = new BatchRange(offset, maxBytes, limit);
  let p = 0;
  while (p + BATCH_HEADER_BYTES <= window.length) {
    const size = window.readInt32BE(p + 8) + LOG_OVERHEAD;
    const base = readInt64BE(window, p);
    if (!range.offer(p, size, base, base + BigInt(window.readInt32BE(p + 23)))) break;
    p += size;
    if (range.found && range.end > window.length) break;
  }
  return { start: range.start, length: range.length, next: p };
}
