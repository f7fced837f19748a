/**
 * The domain layer of the tiered read path (redpanda's `remote_segment`): serves Fetch and
 * ListOffsets-by-time from a segment that lives only in the object store, with exactly the
 * results `PartitionLog.read` / `offsetForTimestamp` give for the same segment bytes on local
 * disk: which batches a read returns is `storage/batch-range.ts`'s `BatchRange` (whole
 * batches from the one that holds `offset`, within `maxBytes`, at least one: KIP-74), and a
 * by-time answer is `timestampHitIn`, the same code the local log runs. Reached through
 * `RemoteTier` and `storage/log-view.ts`, never directly by a handler.
 *
 * How a read goes: the segment's index object (fetched whole, verified against the manifest
 * record, cached decoded) gives the byte position to scan from; batch headers are walked
 * through the block cache (see block-cache.ts) to find the range; the range is copied out of
 * the blocks into a buffer the caller owns (a pooled one with `readPooled`); and every batch
 * in it is checked (magic, length, CRC-32C, offsets inside the segment and continuous)
 * before it is returned, the CRC once per fetched copy of the bytes (`#verify`). Any mismatch
 * drops the object's cached blocks and fails the read with a non-retriable STORAGE_IO error:
 * a consumer gets an error, never wrong bytes. The partition leader epoch is the one
 * field no per-batch check covers (it sits outside the batch CRC by Kafka's design).
 *
 * Errors: a store failure becomes STORAGE_IO naming the object, retriable exactly when the
 * store classified it retriable (the root cause decides); corruption is STORAGE_IO, not
 * retriable; an offset outside the segment is OFFSET_OUT_OF_RANGE (the caller picked the
 * wrong segment).
 *
 * Memory, all bounded by configuration:
 * - `cacheBytes` of cached data blocks;
 * - GETs in flight: at most `maxConcurrentGets` blocks (index objects count here too);
 * - per read in progress: its output (max(maxBytes, first batch)) plus the blocks its header
 *   walk pinned (about as much again, usually the very buffers the cache holds);
 * - `indexCacheEntries` decoded indexes, each about 8 bytes per `indexIntervalBytes` of
 *   segment plus 12 bytes per time entry (a 128 MiB segment at 4 KiB: ~256 KiB).
 *
 * Lifecycle: construct, use concurrently from any number of fetches, `close()` once
 * (idempotent): it aborts GETs in flight and drops the caches. It does not close the store,
 * which belongs to the composition root.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { BatchRange } from '../storage/batch-range.js';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, computeBatchCrc, lastOffsetOf, readBatchHeader, timestampHitIn, type BatchHeader } from '../storage/record-batch.js';
import { SegmentIndex } from '../storage/segment-index.js';
import type { BufferPool } from '../storage/buffer-pool.js';
import { BlobStoreError, type BlobStore } from './blobstore/blob-store.js';
import { BlockCache, type BlockCacheStats } from './block-cache.js';
import type { ObjectView } from './object-view.js';
import type { RemoteSegment } from './manifest.js';

export interface RemoteSegmentReaderOptions {
  store: BlobStore;
  /** Upper bound on cached data blocks, in bytes. */
  cacheBytes: number;
  /** Size of a cached block and of a ranged GET; default 1 MiB. */
  blockBytes?: number;
  /** Store GETs running at once; default 8. */
  maxConcurrentGets?: number;
  /** Blocks prefetched after a miss; default 2, capped at half the blocks the cache holds. */
  readAheadBlocks?: number;
  /** Decoded segment indexes kept (LRU); default 64. */
  indexCacheEntries?: number;
  /** Told of every block lookup: `hit` when the block was cached. */
  onLookup?: (key: string, hit: boolean) => void;
}

export interface RemoteReaderStats extends BlockCacheStats {
  indexHits: number;
  indexMisses: number;
  indexesCached: number;
  reads: number;
  bytesReturned: number;
  corruptions: number;
  /** Bytes whose batch CRC-32C was computed (each fetched copy of a batch once). */
  crcBytes: number;
}

export const DEFAULT_READ_AHEAD_BLOCKS = 2;
export const DEFAULT_INDEX_CACHE_ENTRIES = 64;

interface Header {
  h: BatchHeader;
  size: number;
}

export class RemoteSegmentReader {
  readonly #store: BlobStore;
  readonly #cache: BlockCache;
  readonly #indexEntries: number;
  /** LRU by insertion order, like the block cache. */
  readonly #indexes = new Map<string, SegmentIndex>();
  /**
   * Per block buffer (one GET's bytes), the object positions of the batches whose CRC-32C
   * passed over those bytes. Weak: it goes with the buffer when the cache drops it. The
   * cache hands out a new Buffer object for every fill, recycled memory included
   * (block-cache.ts), so a key never stands for bytes other than the ones checked. At most
   * `#maxCheckedPerBlock` positions per block (one per KiB of block, at least 256: a few percent
   * of the cache's bytes): a block of smaller batches has the rest checked again on a re-read.
   */
  readonly #crcChecked = new WeakMap<Buffer, Set<number>>();
  readonly #maxCheckedPerBlock: number;
  #closed = false;
  #stats = { indexHits: 0, indexMisses: 0, reads: 0, bytesReturned: 0, corruptions: 0, crcBytes: 0 };

  constructor(opts: RemoteSegmentReaderOptions) {
    this.#store = opts.store;
    this.#cache = new BlockCache({
      store: opts.store,
      cacheBytes: opts.cacheBytes,
      blockBytes: opts.blockBytes,
      maxConcurrentGets: opts.maxConcurrentGets,
      readAheadBlocks: opts.readAheadBlocks ?? DEFAULT_READ_AHEAD_BLOCKS,
      onLookup: opts.onLookup,
    });
    this.#indexEntries = opts.indexCacheEntries ?? DEFAULT_INDEX_CACHE_ENTRIES;
    this.#maxCheckedPerBlock = Math.max(256, Math.floor(this.#cache.blockBytes / 1024));
  }

  /**
   * Whole batches of `seg` starting with the one that holds `offset`, up to `maxBytes` (at
   * least one batch), verified, in a buffer the caller owns. `offset` must lie in the segment.
   */
  async read(seg: RemoteSegment, offset: bigint, maxBytes: number, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    return (await this.readPooled(seg, offset, maxBytes, opts)).records;
  }

  /**
   * As `read`, but with `pool` the bytes land in one of its buffers (`pooled`, to be released
   * once the socket has taken them, as the local log's reads do): a consumer reading at disk
   * speed would otherwise have a fresh megabyte allocated, page-faulted in and collected per
   * Fetch per partition.
   */
  async readPooled(seg: RemoteSegment, offset: bigint, maxBytes: number, opts: { signal?: AbortSignal; pool?: BufferPool } = {}): Promise<{ records: Buffer; pooled?: Buffer }> {
    this.#checkOpen();
    if (offset < seg.baseOffset || offset >= seg.nextOffset) {
      throw new MeridianError(ErrorCode.OffsetOutOfRange, `offset ${offset} is outside remote segment ${seg.dataKey} [${seg.baseOffset}, ${seg.nextOffset})`);
    }
    const view = this.#cache.view(seg.dataKey, seg.sizeBytes, opts.signal);
    try {
      const index = await this.#index(seg, opts.signal);
      const range = new BatchRange(offset, maxBytes, undefined);
      let pos = index.lookupPosition(Number(offset - seg.baseOffset));
      for (;;) {
        // Synchronous while the header's block is pinned (most batches): an await per batch
        // header cost more than the header's decoding.
        const { h, size } = this.#pinnedHeader(view, seg, pos) ?? (await this.#header(view, seg, pos));
        if (!range.offer(pos, size, h.baseOffset, lastOffsetOf(h))) break;
        pos += size;
        if (!range.found) {
          view.unpinBefore(pos);
          continue;
        }
        // Once no batch fits the budget or the object any more, the next header need not be
        // fetched: the range is the same.
        if (range.full || pos + BATCH_HEADER_BYTES > seg.sizeBytes) break;
      }
      const slab = opts.pool?.acquire(range.length);
      let out: Buffer;
      try {
        const used: Buffer[] = [];
        out = await view.copy(range.start, range.length, slab, used);
        this.#verify(seg, out, range.start, offset, used);
      } catch (err) {
        if (slab !== undefined) opts.pool!.release(slab);
        throw err;
      }
      this.#stats.reads++;
      this.#stats.bytesReturned += out.length;
      return slab === undefined ? { records: out } : { records: out, pooled: slab };
    } catch (err) {
      throw this.#fail(err);
    } finally {
      view.close();
    }
  }

  /**
   * First offset in `seg` whose record timestamp is >= `timestamp`, as
   * `PartitionLog.offsetForTimestamp` answers it for this segment (compressed batches
   * opened; the base offset and max timestamp of a control or LogAppendTime batch); null
   * when the segment has no such record.
   */
  async offsetForTimestamp(seg: RemoteSegment, timestamp: bigint, opts: { signal?: AbortSignal } = {}): Promise<{ offset: bigint; timestamp: bigint } | null> {
    this.#checkOpen();
    if (seg.nextOffset === seg.baseOffset || seg.maxTimestamp < timestamp) return null;
    const view = this.#cache.view(seg.dataKey, seg.sizeBytes, opts.signal);
    try {
      const index = await this.#index(seg, opts.signal);
      let pos = index.lookupPosition(index.lookupTimestamp(Number(timestamp)));
      let hit: Header | undefined;
      while (pos + BATCH_HEADER_BYTES <= seg.sizeBytes) {
        const hdr = await this.#header(view, seg, pos);
        if (hdr.h.maxTimestamp >= timestamp) {
          hit = hdr;
          break;
        }
        pos += hdr.size;
        view.unpinBefore(pos);
      }
      if (hit === undefined) return null;
      const { h, size } = hit;
      const used: Buffer[] = [];
      const batch = await view.copy(pos, size, undefined, used);
      // Verified even when only header fields are returned: the answer must not come from
      // bytes a read of the same batch would reject.
      this.#verify(seg, batch, pos, undefined, used);
      return timestampHitIn(h, batch, timestamp);
    } catch (err) {
      throw this.#fail(err);
    } finally {
      view.close();
    }
  }

  stats(): RemoteReaderStats {
    return { ...this.#cache.stats(), ...this.#stats, indexesCached: this.#indexes.size };
  }

  /** Resolves when no GET runs or waits, read-ahead included (tests, orderly shutdown). */
  idle(): Promise<void> {
    return this.#cache.idle();
  }

  /** Aborts GETs in flight and drops the caches. Idempotent; later calls fail retriably. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#indexes.clear();
    await this.#cache.close();
  }

  // -- internals --------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(): MeridianError {
    return new MeridianError(ErrorCode.StorageIo, `the remote segment reader over ${this.#store.name} is closed`, { retriable: true });
  }

  /** The decoded index of `seg`, verified against the manifest's record of the segment. */
  async #index(seg: RemoteSegment, signal: AbortSignal | undefined): Promise<SegmentIndex> {
    const cached = this.#indexes.get(seg.indexKey);
    if (cached !== undefined) {
      this.#stats.indexHits++;
      this.#indexes.delete(seg.indexKey);
      this.#indexes.set(seg.indexKey, cached);
      return cached;
    }
    this.#stats.indexMisses++;
    const buf = await this.#cache.fetchWhole(seg.indexKey, signal);
    const bad = (why: string): MeridianError => {
      this.#stats.corruptions++;
      return new MeridianError(ErrorCode.StorageIo, `remote segment index ${seg.indexKey} on ${this.#store.name} is corrupt: ${why}`, { retriable: false });
    };
    if (buf.length !== seg.indexSizeBytes) throw bad(`it has ${buf.length} bytes, the manifest says ${seg.indexSizeBytes}`);
    const decoded = SegmentIndex.decode(buf);
    if (decoded === null) throw bad('it does not decode (bad magic, version, length or CRC-32C)');
    const s = decoded.summary;
    if (s.baseOffset !== seg.baseOffset || s.nextOffset !== seg.nextOffset || s.segmentBytes !== seg.sizeBytes || s.dataCrc32c >>> 0 !== seg.dataCrc32c >>> 0) {
      throw bad(`it describes offsets [${s.baseOffset}, ${s.nextOffset}) in ${s.segmentBytes} bytes (CRC-32C ${s.dataCrc32c >>> 0}), the manifest [${seg.baseOffset}, ${seg.nextOffset}) in ${seg.sizeBytes} (CRC-32C ${seg.dataCrc32c >>> 0})`);
    }
    if (this.#indexEntries > 0 && !this.#closed) {
      this.#indexes.set(seg.indexKey, decoded.index);
      for (const k of this.#indexes.keys()) {
        if (this.#indexes.size <= this.#indexEntries) break;
        this.#indexes.delete(k);
      }
    }
    return decoded.index;
  }

  /** `#header` without waiting, when the view already pins the header's bytes; else undefined. */
  #pinnedHeader(view: ObjectView, seg: RemoteSegment, pos: number): Header | undefined {
    if (pos + BATCH_HEADER_BYTES > seg.sizeBytes) return undefined; // #header reports it
    const bytes = view.pinnedBytes(pos, BATCH_HEADER_BYTES);
    return bytes === undefined ? undefined : this.#checkHeader(seg, pos, bytes);
  }

  /** The header of the batch at `pos`, checked enough to step to the next one safely. */
  async #header(view: ObjectView, seg: RemoteSegment, pos: number): Promise<Header> {
    if (pos + BATCH_HEADER_BYTES > seg.sizeBytes) {
      throw this.#corrupt(seg, `the batch at byte ${pos} would run past the end of the ${seg.sizeBytes}-byte object`);
    }
    return this.#checkHeader(seg, pos, await view.bytes(pos, BATCH_HEADER_BYTES));
  }

  #checkHeader(seg: RemoteSegment, pos: number, bytes: Buffer): Header {
    const h = readBatchHeader(bytes);
    const size = h.batchLength + LOG_OVERHEAD;
    if (h.magic !== 2) throw this.#corrupt(seg, `the batch at byte ${pos} has magic ${h.magic}, not 2`);
    if (size < BATCH_HEADER_BYTES || pos + size > seg.sizeBytes) {
      throw this.#corrupt(seg, `the batch at byte ${pos} claims ${size} bytes, which does not fit the ${seg.sizeBytes}-byte object`);
    }
    return { h, size };
  }

  /**
   * Checks every batch in `buf` (read from byte `at`): whole, magic 2, CRC-32C, offsets inside
   * the segment and continuous, the first one holding `offset` when given.
   *
   * The CRC-32C of a batch is computed once per fetched copy of its bytes: `blocks` are the
   * block buffers `buf` was copied from (block `floor(at / blockBytes)` first), and a batch
   * whose every block buffer already records it as checked skips the CRC. A block buffer
   * is one GET's bytes (a new GET, after eviction or invalidation, is a new buffer with no
   * record), so bytes fetched again are checked again, and two consumers of the same cached
   * bytes check them once. The structural checks run on every read: they cost nothing.
   */
  #verify(seg: RemoteSegment, buf: Buffer, at: number, offset: bigint | undefined, blocks?: Buffer[]): void {
    const B = this.#cache.blockBytes;
    const firstBlock = Math.floor(at / B);
    let expected: bigint | undefined;
    for (let p = 0; p < buf.length; ) {
      if (buf.length - p < BATCH_HEADER_BYTES) throw this.#corrupt(seg, `a truncated batch at byte ${at + p}`);
      const h = readBatchHeader(buf, p);
      const size = h.batchLength + LOG_OVERHEAD;
      if (h.magic !== 2 || size < BATCH_HEADER_BYTES || p + size > buf.length) {
        throw this.#corrupt(seg, `the batch at byte ${at + p} has magic ${h.magic} and length ${size}`);
      }
      const from = Math.floor((at + p) / B) - firstBlock;
      const to = Math.floor((at + p + size - 1) / B) - firstBlock;
      if (!this.#checked(blocks, from, to, at + p)) {
        const crc = computeBatchCrc(buf.subarray(p, p + size));
        if (crc !== h.crc) {
          throw this.#corrupt(seg, `the batch at byte ${at + p} (offset ${h.baseOffset}) fails its CRC-32C check: stored ${h.crc.toString(16)}, computed ${crc.toString(16)}`);
        }
        this.#stats.crcBytes += size;
        this.#markChecked(blocks, from, to, at + p);
      }
      const last = lastOffsetOf(h);
      const misplaced = expected === undefined ? offset !== undefined && (h.baseOffset > offset || last < offset) : h.baseOffset !== expected;
      if (h.lastOffsetDelta < 0 || h.baseOffset < seg.baseOffset || last >= seg.nextOffset || misplaced) {
        throw this.#corrupt(seg, `the batch at byte ${at + p} holds offsets ${h.baseOffset}..${last}, which do not belong there in [${seg.baseOffset}, ${seg.nextOffset})`);
      }
      expected = last + 1n;
      p += size;
    }
  }

  /** Whether every block buffer batch `pos` was copied from records its CRC as checked. */
  #checked(blocks: Buffer[] | undefined, from: number, to: number, pos: number): boolean {
    if (blocks === undefined) return false;
    for (let i = from; i <= to; i++) {
      const b = blocks[i];
      if (b === undefined || this.#crcChecked.get(b)?.has(pos) !== true) return false;
    }
    return true;
  }

  #markChecked(blocks: Buffer[] | undefined, from: number, to: number, pos: number): void {
    if (blocks === undefined) return;
    for (let i = from; i <= to; i++) {
      const b = blocks[i];
      if (b === undefined) continue;
      let set = this.#crcChecked.get(b);
      if (set === undefined) this.#crcChecked.set(b, (set = new Set()));
      if (set.size < this.#maxCheckedPerBlock) set.add(pos);
    }
  }

  /** Cached blocks of a corrupt object must not serve the next read (it may be repaired). */
  #corrupt(seg: RemoteSegment, why: string): MeridianError {
    this.#stats.corruptions++;
    this.#cache.invalidate(seg.dataKey);
    return new MeridianError(ErrorCode.StorageIo, `remote segment data ${seg.dataKey} on ${this.#store.name} is corrupt: ${why}`, { retriable: false });
  }

  /** Store failures become STORAGE_IO naming the object; retriability comes from the store. */
  #fail(err: unknown): unknown {
    if (err instanceof BlobStoreError) {
      if (this.#closed) return this.#closedError();
      return new MeridianError(ErrorCode.StorageIo, `reading remote object ${err.key} from ${err.store} failed (${err.kind}): ${err.message}`, { retriable: err.kind === 'retriable', cause: err });
    }
    if (err instanceof MeridianError) return err;
    if (this.#closed) return this.#closedError();
    return new MeridianError(ErrorCode.StorageIo, `remote read failed: ${(err as Error)?.message ?? String(err)}`, { retriable: false, cause: err });
  }
}
