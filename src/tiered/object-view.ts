/**
 * A per-read window onto one remote object held in the BlockCache: the blocks that one read
 * has touched stay pinned until the read ends, so that a header walk followed by a copy of
 * the same range costs one lookup per block and survives eviction in between. Not shared
 * between reads; `close()` (or dropping it) unpins. Pinned blocks are usually the very
 * buffers the cache holds: they cost extra memory only once the cache has evicted them, and
 * only until the read ends. Block buffers are recycled by the cache (see block-cache.ts), so
 * the views `bytes` returns are valid only until `close()`; `copy` is what may outlive it.
 */
import { ErrorCode, MeridianError } from '../errors.js';

/**
 * What a view reads through: the BlockCache, which creates the views (`BlockCache.view`).
 * Stated here rather than imported so that the two files do not import each other.
 */
export interface BlockSource {
  readonly blockBytes: number;
  /** Blocks `first..last` of the object, each a promise of its bytes. */
  blocks(key: string, size: number, first: number, last: number, signal?: AbortSignal): Array<Promise<Buffer>>;
  /** Told once when a view closes: block buffers a view may hold are recycled only after. */
  viewClosed(): void;
}

export class ObjectView {
  readonly key: string;
  readonly size: number;
  readonly #cache: BlockSource;
  readonly #signal: AbortSignal | undefined;
  #pinned = new Map<number, Buffer>();
  #closed = false;

  constructor(cache: BlockSource, key: string, size: number, signal?: AbortSignal) {
    this.#cache = cache;
    this.key = key;
    this.size = size;
    this.#signal = signal;
  }

  /** Bytes [pos, pos + len): a view into a block when they sit in one, else a copy. */
  async bytes(pos: number, len: number): Promise<Buffer> {
    this.#checkRange(pos, len);
    const B = this.#cache.blockBytes;
    const first = Math.floor(pos / B);
    const last = Math.floor((pos + len - 1) / B);
    const missing: number[] = [];
    for (let n = first; n <= last; n++) if (!this.#pinned.has(n)) missing.push(n);
    if (missing.length > 0) {
      const bufs = await Promise.all(this.#cache.blocks(this.key, this.size, missing[0], missing[missing.length - 1], this.#signal));
      bufs.forEach((b, i) => this.#pinned.set(missing[0] + i, b));
    }
    if (first === last) return this.#pinned.get(first)!.subarray(pos - first * B, pos - first * B + len);
    return this.#copyPinned(Buffer.allocUnsafe(len), pos, first, last);
  }

  /** Bytes [pos, pos + len) as a view into one pinned block, or undefined (call `bytes`). */
  pinnedBytes(pos: number, len: number): Buffer | undefined {
    const B = this.#cache.blockBytes;
    const n = Math.floor(pos / B);
    if (Math.floor((pos + len - 1) / B) !== n || pos < 0 || len < 1 || pos + len > this.size) return undefined;
    const block = this.#pinned.get(n);
    return block === undefined ? undefined : block.subarray(pos - n * B, pos - n * B + len);
  }

  /**
   * Bytes [pos, pos + len) copied into `into` (its first `len` bytes; a fresh buffer when not
   * given). Pinned blocks are copied; the others are fetched concurrently and copied as each
   * arrives, without pinning them, so a large range costs its output plus the GETs in flight.
   * `used`, when given, receives the block buffers the bytes came from (index: block number
   * minus the first block's): each GET brings a new one, so they name what was read.
   */
  async copy(pos: number, len: number, into?: Buffer, used?: Buffer[]): Promise<Buffer> {
    this.#checkRange(pos, len);
    if (into !== undefined && into.length < len) throw new MeridianError(ErrorCode.StorageIo, `a ${into.length}-byte buffer cannot hold ${len} bytes of ${this.key}`);
    const B = this.#cache.blockBytes;
    const out = into === undefined ? Buffer.allocUnsafe(len) : into.subarray(0, len);
    const first = Math.floor(pos / B);
    const last = Math.floor((pos + len - 1) / B);
    const pending: Array<Promise<void>> = [];
    try {
      let n = first;
      while (n <= last) {
        if (this.#pinned.has(n)) {
          const b = this.#pinned.get(n)!;
          this.#copyBlock(out, pos, n, b);
          if (used !== undefined) used[n - first] = b;
          n++;
          continue;
        }
        let runEnd = n;
        while (runEnd < last && !this.#pinned.has(runEnd + 1)) runEnd++;
        const base = n;
        this.#cache.blocks(this.key, this.size, n, runEnd, this.#signal).forEach((p, i) =>
          pending.push(
            p.then((b) => {
              this.#copyBlock(out, pos, base + i, b);
              if (used !== undefined) used[base + i - first] = b;
            }),
          ),
        );
        n = runEnd + 1;
      }
    } catch (err) {
      await Promise.allSettled(pending); // the cache closed mid-loop: settle what was started
      throw err;
    }
    // Every copy settles before this returns or throws: `into` may be a pooled buffer that
    // the caller reuses at once after a failure, and a late copy must not land in it.
    const settled = await Promise.allSettled(pending);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    return out;
  }

  /** Unpins the blocks that end at or before `pos` (a scan has moved past them). */
  unpinBefore(pos: number): void {
    const B = this.#cache.blockBytes;
    for (const n of this.#pinned.keys()) if ((n + 1) * B <= pos) this.#pinned.delete(n);
  }

  /** Idempotent. Nothing the view returned (its `bytes` views) may be used afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pinned.clear();
    this.#cache.viewClosed();
  }

  #checkRange(pos: number, len: number): void {
    if (pos < 0 || len < 1 || pos + len > this.size) {
      throw new MeridianError(ErrorCode.StorageIo, `range ${pos}+${len} lies outside object ${this.key} of ${this.size} bytes`);
    }
  }

  #copyPinned(out: Buffer, pos: number, first: number, last: number): Buffer {
    for (let n = first; n <= last; n++) this.#copyBlock(out, pos, n, this.#pinned.get(n)!);
    return out;
  }

  /** Copies the part of block `n` that overlaps [pos, pos + out.length) into `out`. */
  #copyBlock(out: Buffer, pos: number, n: number, block: Buffer): void {
    const blockStart = n * this.#cache.blockBytes;
    const from = Math.max(pos, blockStart);
    const to = Math.min(pos + out.length, blockStart + block.length);
    block.copy(out, from - pos, from - blockStart, to - blockStart);
  }
}
