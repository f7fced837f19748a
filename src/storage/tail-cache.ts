/**
 * The newest bytes of each log's active segment, kept in memory (config `log.tailCacheBytes`),
 * so that the reads that follow a write are answered without a pread. A streaming broker's
 * readers sit at the end of the log: a consumer long-polling, the geo-replication worker
 * sending what was just made durable, a follower fetching its leader's last append. Each of
 * those reads went through the 4-thread I/O pool, queued behind the writes and fdatasyncs of
 * every partition, and put that queue into the replication lag (issue 15: bench:georep's
 * lag at 5,000 msgs/s traced a pread on each side of the link among the slowest hops).
 *
 * Shape: one buffer per log, holding a run of whole batches exactly as they lie in the file,
 * from a file position to the written end, with the base offset and position of each batch.
 * Writes are copied in after they reach the file (the log's buffers come from requests and
 * pools whose owners reuse them); a read copies out the batches it selects (a reader may
 * stamp them into another log in place). So a read from the cache returns the same bytes
 * as a read of the file, in a buffer of its own, one copy from memory instead of a syscall.
 *
 * Bounds: a log's buffer grows by doubling up to PARTITION_BYTES; when full, its older half
 * is dropped (whole batches, so every window starts on a batch). All logs of a TopicManager
 * share one TailCacheBudget: past its limit, the least recently written logs lose their
 * buffers (they stay followed: their next write is kept again). Only a log that was read at
 * its active segment caches (someone follows it): the 10,000 partitions nobody reads cost
 * nothing. Any change of what the file holds that is not an append at the written end (a
 * truncation, a failed write, a roll to a new segment) clears the log's buffer first.
 */
import { selectBatchRange } from './batch-range.js';
import type { BufferPool } from './buffer-pool.js';
import { BATCH_HEADER_BYTES, type BatchHeader, lastOffsetOf, readBatchHeader } from './record-batch.js';

/** The most one partition's tail holds. */
export const PARTITION_BYTES = 1024 * 1024;
/**
 * A log's first buffer (it grows by doubling): small, so that the default budget holds the
 * tails of thousands of partitions of small batches at once.
 */
const FIRST_BYTES = 4 * 1024;
/**
 * Buffers given up are kept for the next log that needs one of the same size: up to half
 * the budget, and 4 MiB. With more followed partitions than the budget holds (bench:scale's
 * 10,000, each written 20 KB at a time), every write evicts another log's buffer and needs
 * one of its own; a fresh allocation each time was 8% of the broker's time there (new
 * memory faulted in on the copy), and the garbage collector's work besides.
 */
const MAX_SPARE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_TAIL_CACHE_BYTES = 32 * 1024 * 1024;

export class TailCacheBudget {
  readonly limit: number;
  /** Logs holding a buffer, least recently written first; the value is its capacity. */
  readonly #held = new Map<TailCache, number>();
  #bytes = 0;
  /** Reads answered from memory, and buffers dropped to stay within the limit. */
  hits = 0;
  evictions = 0;
  /** Buffers allocated (not taken from those given up). */
  allocations = 0;
  /**
   * Buffers given up, by size, for the next log that needs one: with more followed
   * partitions than the budget holds, logs keep taking turns, and each turn would otherwise
   * be a fresh allocation. Their bytes are not charged (they hold nothing).
   */
  readonly #spare = new Map<number, Buffer[]>();
  #spareBytes = 0;
  readonly #maxSpareBytes: number;

  constructor(limit = DEFAULT_TAIL_CACHE_BYTES) {
    this.limit = limit;
    this.#maxSpareBytes = Math.min(MAX_SPARE_BYTES, Math.floor(limit / 2));
  }

  /** Bytes held across logs. */
  get bytes(): number {
    return this.#bytes;
  }

  /** `cache` holds `capacity` bytes now (0: none) and was just written: the most recent. */
  charge(cache: TailCache, capacity: number): void {
    this.#bytes -= this.#held.get(cache) ?? 0;
    this.#held.delete(cache);
    if (capacity === 0) return;
    this.#held.set(cache, capacity);
    this.#bytes += capacity;
    for (const [other] of this.#held) {
      if (this.#bytes <= this.limit) break;
      if (other === cache) continue;
      this.evictions++;
      other.evict(); // charges 0, which deletes it from the map
    }
  }

  /** A buffer of exactly `size` bytes: one given up earlier, or a new one. */
  take(size: number): Buffer {
    const buf = this.#spare.get(size)?.pop();
    if (buf === undefined) {
      this.allocations++;
      return Buffer.allocUnsafeSlow(size);
    }
    this.#spareBytes -= size;
    return buf;
  }

  /**
   * A log gave its buffer up (nothing reads it any more): kept for the next one. When the
   * spares are full, buffers of other sizes make room (the most bytes first): the sizes in
   * use change with the traffic (bench:scale's lag run leaves thousands of 4 KiB buffers, its
   * 20 KB produce then needs 32 KiB ones), and spares of a size nobody takes would otherwise
   * keep every buffer of the size in use from being kept.
   */
  giveBack(buf: Buffer): void {
    const size = buf.length;
    if (size > this.#maxSpareBytes) return;
    while (this.#spareBytes + size > this.#maxSpareBytes) this.#dropSpareOtherThan(size);
    let list = this.#spare.get(size);
    if (list === undefined) this.#spare.set(size, (list = []));
    list.push(buf);
    this.#spareBytes += size;
  }

  /** Drops one spare buffer of the size holding the most spare bytes, `size` last. */
  #dropSpareOtherThan(size: number): void {
    let victim = size;
    let most = 0;
    for (const [s, list] of this.#spare) {
      if (s !== size && s * list.length > most) {
        victim = s;
        most = s * list.length;
      }
    }
    this.#spare.get(victim)!.pop();
    this.#spareBytes -= victim;
  }

  /** Bytes kept in given-up buffers (for tests and stats). */
  get spareBytes(): number {
    return this.#spareBytes;
  }

  /** `cache` was just written: the most recent. */
  touch(cache: TailCache): void {
    const capacity = this.#held.get(cache);
    if (capacity === undefined) return;
    this.#held.delete(cache);
    this.#held.set(cache, capacity);
  }
}

/** One log's tail. The key is the segment the bytes belong to. */
export class TailCache {
  readonly #budget: TailCacheBudget;
  #buf: Buffer | null = null;
  #segment: object | null = null;
  /** File position of #buf[0], and bytes held. */
  #start = 0;
  #length = 0;
  /** Base offset and file position of each batch held, from #first on. */
  #bases: bigint[] = [];
  #positions: number[] = [];
  #first = 0;
  /** Whether a reader read this log's active segment: only then is it worth caching. */
  #followed = false;
  /** A reader read this log's end since its buffer was last evicted (or it was followed). */
  #readSinceEvicted = false;

  constructor(budget: TailCacheBudget) {
    this.#budget = budget;
  }

  /** Bytes held (for tests and stats). */
  get bytes(): number {
    return this.#length;
  }

  /** A reader read the active segment (`segment`): appends to it are kept from now on. */
  follow(): void {
    this.#followed = true;
    this.#readSinceEvicted = true;
  }

  /**
   * `bufs` (whole batches with these base offsets) were written to `segment` at file position
   * `position`. Kept when they continue what is held; otherwise what is held is dropped first.
   */
  written(segment: object, position: number, bufs: readonly Buffer[], bases: readonly bigint[]): void {
    if (!this.#followed || this.#budget.limit === 0) return;
    let n = 0;
    for (const b of bufs) n += b.length;
    const cap = Math.min(PARTITION_BYTES, this.#budget.limit);
    if (n > cap) return this.clear();
    if (segment !== this.#segment || position !== this.#start + this.#length) {
      this.#reset();
      this.#segment = segment;
      this.#start = position;
    }
    if (this.#buf === null || this.#length + n > this.#buf.length) this.#makeRoom(n, cap);
    const buf = this.#buf!;
    let at = this.#length;
    for (let i = 0; i < bufs.length; i++) {
      this.#bases.push(bases[i]);
      this.#positions.push(this.#start + at);
      at += bufs[i].copy(buf, at);
    }
    this.#length = at;
    this.#budget.touch(this);
  }

  /** Makes room for `n` more bytes: drops the older half (or more) when full, then grows. */
  #makeRoom(n: number, cap: number): void {
    if (this.#length + n > cap) {
      // Keep the batches that start in the newer half, and leave room for n.
      const keepFrom = this.#start + Math.max(this.#length + n - cap, this.#length >> 1);
      let i = this.#first;
      while (i < this.#positions.length && this.#positions[i] < keepFrom) i++;
      const drop = i === this.#positions.length ? this.#length : this.#positions[i] - this.#start;
      if (drop < this.#length) this.#buf!.copy(this.#buf!, 0, drop, this.#length);
      this.#length -= drop;
      this.#start += drop;
      this.#first = i;
      if (this.#first > 1024 && this.#first * 2 > this.#positions.length) {
        this.#bases = this.#bases.slice(this.#first);
        this.#positions = this.#positions.slice(this.#first);
        this.#first = 0;
      }
    }
    const needed = this.#length + n;
    if (this.#buf !== null && needed <= this.#buf.length) return;
    let size = this.#buf === null ? FIRST_BYTES : this.#buf.length;
    while (size < needed) size *= 2;
    size = Math.min(size, cap);
    // Charged first: the logs evicted to make room give their buffers up before one is taken.
    this.#budget.charge(this, size);
    const next = this.#budget.take(size);
    if (this.#buf !== null) {
      this.#buf.copy(next, 0, 0, this.#length);
      this.#budget.giveBack(this.#buf);
    }
    this.#buf = next;
  }

  /**
   * The batches a read of `segment` from `offset` selects (the batch holding it first, then
   * whole batches within `maxBytes`, none starting at or past `limit`), copied into a buffer
   * of their own (from `pool` when given: `pooled` is then what the caller releases); null
   * when this tail does not hold the batch holding `offset`.
   */
  read(segment: object, offset: bigint, maxBytes: number, limit: bigint, pool?: BufferPool): { records: Buffer; pooled?: Buffer } | null {
    const at = this.#batchAtOrBefore(segment, offset);
    if (at < 0) return null;
    const from = this.#positions[at] - this.#start;
    const window = this.#buf!.subarray(from, this.#length);
    const { start, length } = selectBatchRange(window, offset, maxBytes, limit);
    if (start < 0 || start + length > window.length) return null;
    this.#budget.hits++;
    const pooled = pool?.acquire(length);
    const records = pooled !== undefined ? pooled.subarray(0, length) : Buffer.allocUnsafe(length);
    window.copy(records, 0, start, start + length);
    return { records, pooled };
  }

  /**
   * The header of the batch holding `offset` in `segment`, read in place (nothing copied);
   * null when this tail does not hold it. For a reader that needs one batch's header only
   * (disaster recovery's last timestamp of every partition).
   */
  headerAt(segment: object, offset: bigint): BatchHeader | null {
    const at = this.#batchAtOrBefore(segment, offset);
    if (at < 0) return null;
    const from = this.#positions[at] - this.#start;
    if (from + BATCH_HEADER_BYTES > this.#length) return null;
    const h = readBatchHeader(this.#buf!, from);
    return offset <= lastOffsetOf(h) ? h : null;
  }

  /** The index of the last batch held that starts at or before `offset`; -1 when none does. */
  #batchAtOrBefore(segment: object, offset: bigint): number {
    if (this.#buf === null || segment !== this.#segment || this.#first >= this.#bases.length || offset < this.#bases[this.#first]) return -1;
    let lo = this.#first;
    let hi = this.#bases.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#bases[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Drops what is held: the file changed other than by an append. Cached again once read at its end. */
  clear(): void {
    this.evict();
    this.#followed = false;
  }

  /**
   * Drops what is held for the budget. A log read since its last eviction stays followed, so
   * its next write is kept: with more followed logs than the budget holds (10,000 partitions
   * written round-robin), a log evicted between two of its writes would otherwise be
   * unfollowed, its next write not kept, and every read after a write a pread (bench:scale
   * saw none answered from memory). A log nobody read since its last eviction is unfollowed:
   * its readers are gone (a consumer group that read every partition once, then stopped),
   * and copying each of its writes into a buffer that is evicted unread, and evicting other
   * logs' to make room, is work for nobody (bench:scale's eu-west after its lag run). Its
   * next read at the end follows it again.
   */
  evict(): void {
    if (!this.#readSinceEvicted) this.#followed = false;
    this.#readSinceEvicted = false;
    this.#reset();
    if (this.#buf !== null) this.#budget.giveBack(this.#buf);
    this.#buf = null;
    this.#segment = null;
    this.#budget.charge(this, 0);
  }

  #reset(): void {
    this.#length = 0;
    this.#bases = [];
    this.#positions = [];
    this.#first = 0;
  }
}
