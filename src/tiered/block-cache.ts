/**
 * The remote I/O layer of the tiered read path (redpanda's `cloud_io` under `cloud_storage`):
 * remote objects cut into fixed-size blocks, fetched with ranged GETs into a bounded LRU.
 *
 * - Block `n` of an object of `size` bytes is the inclusive range
 *   [n * blockBytes, min((n + 1) * blockBytes, size) - 1]: the last block is short and no
 *   request ever reaches past the end, so every backend answers it the same way.
 * - Single-flight: a block being fetched is a "flight" that every concurrent requester joins;
 *   one GET serves them all. A failed GET is never cached; the next request tries again.
 * - Bounded concurrency: every GET (block or whole object) runs through one p-queue of
 *   `maxConcurrentGets`. Demand GETs have priority over read-ahead. A GET keeps its slot until
 *   the store call settles (the queue is not told about aborts), so the store never sees more
 *   than `maxConcurrentGets` calls at once, even while callers give up.
 * - Read-ahead: a demand miss on block n, or the first demand touch of a block that read-ahead
 *   brought in, prefetches the following blocks (Linux's readahead marker), so a sequential
 *   reader stays ahead of its GETs. Prefetches never fail a caller and are dropped (and
 *   counted) while `maxConcurrentGets` GETs already wait in the queue: the queue stays bounded.
 *
 * Memory: at most `cacheBytes` of blocks are cached (a block larger than the whole cache is
 * handed to its requesters and not cached). On top of that live only the buffers of GETs in
 * flight (<= maxConcurrentGets blocks), whatever readers pin through an `ObjectView`
 * while a read runs (usually the same buffers the cache holds), and up to
 * 2 * maxConcurrentGets spare block buffers kept for reuse.
 *
 * Buffer reuse: a cold reader at disk speed would otherwise have a fresh 1 MiB buffer
 * allocated (and page-faulted in) per GET and collected after eviction, which cost the
 * broker more CPU than the bytes themselves. A block evicted or invalidated gives its buffer
 * back, and the next GET reads into it (`GetOptions.into`; the directory store honours it,
 * the network stores return their own buffers). A block buffer can still be referenced by
 * a read in progress (its `ObjectView` pins blocks and hands out views of them), so an
 * evicted buffer waits ("limbo") until no view is open; only then is it reused. A view that
 * is never closed only stops reuse, never corrupts a read. Reads copy what they serve out of
 * the blocks, and every batch copied is CRC-checked after the copy, so even a reuse bug
 * would surface as a corruption error, not as wrong bytes. A GET that fails or is abandoned
 * keeps its buffer out of reuse (the store may still be writing into it).
 *
 * Abort: a caller's signal ends its own wait at once. A demand GET whose last waiter has
 * gone is aborted; a read-ahead GET runs on (it is for the cache, not for a caller).
 * `close()` aborts everything, waits for the store calls to settle and drops the cache.
 */
import PQueue from 'p-queue';
import { ErrorCode, MeridianError } from '../errors.js';
import { abortedError, type BlobStore } from './blobstore/blob-store.js';
import { ObjectView } from './object-view.js';

export interface BlockCacheOptions {
  store: BlobStore;
  /** Upper bound on the bytes of cached blocks. */
  cacheBytes: number;
  blockBytes?: number;
  maxConcurrentGets?: number;
  /** Blocks to prefetch after a miss; capped at half the blocks the cache can hold. */
  readAheadBlocks?: number;
  /** Told of every block lookup (per-partition hit ratios are kept by the caller). */
  onLookup?: (key: string, hit: boolean) => void;
}

export interface BlockCacheStats {
  /** Block requests served from the cache. */
  hits: number;
  /** Block requests not in the cache (including those that joined a GET in flight). */
  misses: number;
  hitRatio: number;
  /** Misses that joined a GET already in flight instead of issuing one. */
  sharedGets: number;
  bytesCached: number;
  blocksCached: number;
  capacityBytes: number;
  /** Every GET started against the store (blocks, read-ahead and whole objects). */
  getsIssued: number;
  getFailures: number;
  bytesFetched: number;
  evictions: number;
  prefetches: number;
  prefetchesDropped: number;
  invalidations: number;
  /** GETs whose store read into a recycled block buffer instead of a fresh one. */
  buffersReused: number;
  /** GETs currently running against the store. */
  inFlight: number;
  /** GETs waiting for a slot. */
  queued: number;
}

export const DEFAULT_BLOCK_BYTES = 1024 * 1024;
export const DEFAULT_MAX_CONCURRENT_GETS = 8;

const DEMAND = 1;
const PREFETCH = 0;

interface Flight {
  readonly id: string;
  /** Unique per flight: an abandoned flight may still sit in the queue under the same id. */
  readonly queueId: string;
  readonly controller: AbortController;
  promise: Promise<Buffer>;
  waiters: number;
  /** Started by read-ahead: never aborted for lack of waiters. */
  readonly prefetch: boolean;
  /** A demand request joined it (so its block is not a readahead marker any more). */
  touched: boolean;
  started: boolean;
  /** Invalidated or aborted while in flight: its result must not enter the cache. */
  stale: boolean;
  /** The block buffer the store may read into. */
  slab?: Buffer;
  /** `slab` came from the spares (stats: buffersReused). */
  recycled?: boolean;
}

interface Entry {
  readonly buf: Buffer;
  /** Brought in by read-ahead and not yet touched by a demand request. */
  marker: boolean;
  /** The whole blockBytes buffer `buf` lies in, when the store read into one of ours. */
  readonly slab?: Buffer;
}

export class BlockCache {
  readonly blockBytes: number;
  readonly cacheBytes: number;
  readonly readAheadBlocks: number;
  readonly #store: BlobStore;
  readonly #queue: PQueue;
  readonly #maxQueued: number;
  /** LRU order: Map iteration order, oldest first; a hit moves the entry to the end. */
  readonly #lru = new Map<string, Entry>();
  readonly #flights = new Map<string, Flight>();
  #bytes = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  #seq = 0;
  /** Block buffers ready for the next GET, and evicted ones a view may still reference. */
  readonly #spare: Buffer[] = [];
  readonly #limbo: Buffer[] = [];
  #openViews = 0;
  #stats = { hits: 0, misses: 0, sharedGets: 0, getsIssued: 0, getFailures: 0, bytesFetched: 0, evictions: 0, prefetches: 0, prefetchesDropped: 0, invalidations: 0, buffersReused: 0, inFlight: 0 };

  constructor(opts: BlockCacheOptions) {
    const blockBytes = opts.blockBytes ?? DEFAULT_BLOCK_BYTES;
    const concurrency = opts.maxConcurrentGets ?? DEFAULT_MAX_CONCURRENT_GETS;
    if (!Number.isSafeInteger(blockBytes) || blockBytes < 1) throw new MeridianError(ErrorCode.BadConfig, `blockBytes must be a positive integer, got ${blockBytes}`);
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new MeridianError(ErrorCode.BadConfig, `maxConcurrentGets must be a positive integer, got ${concurrency}`);
    if (!Number.isSafeInteger(opts.cacheBytes) || opts.cacheBytes < 0) throw new MeridianError(ErrorCode.BadConfig, `cacheBytes must be a non-negative integer, got ${opts.cacheBytes}`);
    this.#store = opts.store;
    this.#onLookup = opts.onLookup;
    this.blockBytes = blockBytes;
    this.cacheBytes = opts.cacheBytes;
    // Read-ahead may fill at most half the cache, so prefetched blocks cannot evict the blocks
    // the reader that triggered them is about to use.
    this.readAheadBlocks = Math.max(0, Math.min(opts.readAheadBlocks ?? 0, Math.floor(opts.cacheBytes / blockBytes / 2)));
    this.#maxQueued = concurrency;
    this.#queue = new PQueue({ concurrency });
  }

  /** Number of blocks of an object of `size` bytes. */
  blockCount(size: number): number {
    return Math.ceil(size / this.blockBytes);
  }

  /**
   * Blocks `first..last` of `key` (an object of `size` bytes), as one promise per block,
   * registered in order before any is awaited. Read-ahead follows the highest missed block.
   */
  readonly #onLookup: ((key: string, hit: boolean) => void) | undefined;

  blocks(key: string, size: number, first: number, last: number, signal?: AbortSignal): Array<Promise<Buffer>> {
    this.#checkOpen();
    const out: Array<Promise<Buffer>> = [];
    let aheadFrom = -1;
    for (let n = first; n <= last; n++) {
      const id = blockId(key, n);
      const entry = this.#lru.get(id);
      this.#onLookup?.(key, entry !== undefined);
      if (entry !== undefined) {
        this.#stats.hits++;
        this.#lru.delete(id);
        this.#lru.set(id, entry);
        if (entry.marker) {
          entry.marker = false;
          aheadFrom = n + 1;
        }
        out.push(Promise.resolve(entry.buf));
        continue;
      }
      this.#stats.misses++;
      let flight = this.#flights.get(id);
      if (flight !== undefined) {
        this.#stats.sharedGets++;
        if (flight.prefetch && !flight.touched) {
          flight.touched = true;
          if (!flight.started) this.#bump(flight);
        }
      } else {
        flight = this.#startBlock(key, size, n, false);
      }
      aheadFrom = n + 1;
      out.push(this.#wait(flight, key, signal));
    }
    if (aheadFrom >= 0) this.#readAhead(key, size, aheadFrom);
    return out;
  }

  /** A whole object through the same bounded queue, shared by concurrent callers, not cached. */
  fetchWhole(key: string, signal?: AbortSignal): Promise<Buffer> {
    this.#checkOpen();
    const id = `whole:${key}`;
    const flight = this.#flights.get(id) ?? this.#start(id, key, undefined, undefined, false, () => {});
    return this.#wait(flight, key, signal);
  }

  /** Drops every cached block of `key` and keeps GETs in flight for it out of the cache. */
  invalidate(key: string): void {
    this.#stats.invalidations++;
    for (const [id, entry] of this.#lru) {
      if (keyOf(id) !== key) continue;
      this.#lru.delete(id);
      this.#bytes -= entry.buf.length;
      this.#retire(entry);
    }
    for (const [id, flight] of this.#flights) {
      if (keyOf(id) !== key) continue;
      flight.stale = true;
      this.#flights.delete(id);
    }
  }

  /** A per-read view of one object that pins the blocks the read has touched. */
  view(key: string, size: number, signal?: AbortSignal): ObjectView {
    this.#openViews++;
    return new ObjectView(this, key, size, signal);
  }

  /** Called by `ObjectView.close()`: with no view open, evicted buffers may be reused. */
  viewClosed(): void {
    if (--this.#openViews > 0) return;
    this.#openViews = 0;
    while (this.#limbo.length > 0) this.#keepSpare(this.#limbo.pop()!);
  }

  /** Resolves when no GET runs or waits (read-ahead included). */
  idle(): Promise<void> {
    return this.#queue.onIdle();
  }

  stats(): BlockCacheStats {
    const s = this.#stats;
    const lookups = s.hits + s.misses;
    return {
      ...s,
      hitRatio: lookups === 0 ? 0 : s.hits / lookups,
      bytesCached: this.#bytes,
      blocksCached: this.#lru.size,
      capacityBytes: this.cacheBytes,
      queued: this.#queue.size,
    };
  }

  /** Aborts every GET, waits for the store calls to settle and drops the cache. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      for (const flight of this.#flights.values()) {
        flight.stale = true;
        flight.controller.abort(new MeridianError(ErrorCode.StorageIo, 'the block cache is closed'));
      }
      this.#flights.clear();
      await this.#queue.onIdle();
      this.#lru.clear();
      this.#bytes = 0;
      this.#spare.length = 0;
      this.#limbo.length = 0;
    })();
    return this.#closing;
  }

  // -- internals --------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw new MeridianError(ErrorCode.StorageIo, `the remote block cache over ${this.#store.name} is closed`);
  }

  #startBlock(key: string, size: number, n: number, prefetch: boolean): Flight {
    const start = n * this.blockBytes;
    const end = Math.min(start + this.blockBytes, size) - 1;
    const spare = this.#spare.pop();
    const flight = this.#start(
      blockId(key, n),
      key,
      { start, end },
      end - start + 1,
      prefetch,
      (f, buf) => {
        // The store read into our buffer (a view of it), or ignored it (then it is untouched).
        const slab = f.slab !== undefined && buf.buffer === f.slab.buffer ? f.slab : undefined;
        if (f.slab !== undefined && slab === undefined) this.#keepSpare(f.slab);
        if (slab !== undefined && f.recycled) this.#stats.buffersReused++;
        if (!f.stale && !this.#closed) this.#insert(blockId(key, n), buf, f.prefetch && !f.touched, slab);
      },
      // A fresh buffer when none is spare: it joins the spares when its block leaves the
      // cache (or at once, when the store returns its own bytes instead).
      spare ?? Buffer.allocUnsafeSlow(this.blockBytes),
    );
    flight.recycled = spare !== undefined;
    return flight;
  }

  #start(id: string, key: string, range: { start: number; end: number } | undefined, expected: number | undefined, prefetch: boolean, onOk: (f: Flight, buf: Buffer) => void, slab?: Buffer): Flight {
    const controller = new AbortController();
    const flight: Flight = { id, queueId: `${++this.#seq}/${id}`, controller, promise: Promise.resolve(Buffer.alloc(0)), waiters: 0, prefetch, touched: false, started: false, stale: false, slab };
    const task = async (): Promise<Buffer> => {
      flight.started = true;
      if (controller.signal.aborted) throw abortedError({ store: this.#store.name, op: 'get', key }, controller.signal);
      this.#stats.getsIssued++;
      this.#stats.inFlight++;
      try {
        return await this.#store.get(key, slab === undefined ? { signal: controller.signal, range } : { signal: controller.signal, range, into: slab });
      } finally {
        this.#stats.inFlight--;
      }
    };
    flight.promise = this.#queue.add(task, { priority: prefetch ? PREFETCH : DEMAND, id: flight.queueId }).then(
      (buf) => {
        if (this.#flights.get(id) === flight) this.#flights.delete(id);
        this.#stats.bytesFetched += buf.length;
        if (expected !== undefined && buf.length !== expected) {
          this.#stats.getFailures++;
          throw new MeridianError(
            ErrorCode.StorageIo,
            `object ${key} on ${this.#store.name} returned ${buf.length} bytes for range ${range?.start}-${range?.end} instead of ${expected}: it is shorter than its manifest says (corrupt or replaced)`,
          );
        }
        // A fresh view object per fill, even over a recycled slab (a store may hand `into`
        // itself back): readers key what they know of a block's bytes by the Buffer object
        // (remote-reader.ts, the batches whose CRC passed), which must never outlive the fill.
        const owned = slab !== undefined && buf.buffer === slab.buffer ? buf.subarray(0) : ownBuffer(buf);
        onOk(flight, owned);
        return owned;
      },
      (err: unknown) => {
        if (this.#flights.get(id) === flight) this.#flights.delete(id);
        if (!controller.signal.aborted) this.#stats.getFailures++;
        throw err;
      },
    );
    // Read-ahead and abandoned flights have nobody awaiting them; their failure is reported
    // to whoever waits, if anyone, and is otherwise of no interest.
    flight.promise.catch(() => {});
    this.#flights.set(id, flight);
    return flight;
  }

  /** A demand request joined a queued read-ahead: it must not wait behind other prefetches. */
  #bump(flight: Flight): void {
    try {
      this.#queue.setPriority(flight.queueId, DEMAND);
    } catch {
      // Dequeued between the check and now: it is running already.
    }
  }

  #wait(flight: Flight, key: string, signal: AbortSignal | undefined): Promise<Buffer> {
    flight.waiters++;
    if (signal === undefined) return flight.promise;
    if (signal.aborted) {
      this.#leave(flight);
      return Promise.reject(abortedError({ store: this.#store.name, op: 'get', key }, signal));
    }
    return new Promise<Buffer>((resolve, reject) => {
      const onAbort = (): void => {
        this.#leave(flight);
        reject(abortedError({ store: this.#store.name, op: 'get', key }, signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (buf) => {
          signal.removeEventListener('abort', onAbort);
          resolve(buf);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  #leave(flight: Flight): void {
    if (--flight.waiters > 0 || flight.prefetch) return;
    flight.stale = true;
    if (this.#flights.get(flight.id) === flight) this.#flights.delete(flight.id);
    flight.controller.abort();
  }

  #readAhead(key: string, size: number, from: number): void {
    const last = Math.min(from + this.readAheadBlocks, this.blockCount(size)) - 1;
    for (let n = from; n <= last; n++) {
      const id = blockId(key, n);
      if (this.#lru.has(id) || this.#flights.has(id)) continue;
      if (this.#queue.size >= this.#maxQueued) {
        this.#stats.prefetchesDropped += last - n + 1;
        return;
      }
      this.#stats.prefetches++;
      this.#startBlock(key, size, n, true);
    }
  }

  #insert(id: string, buf: Buffer, marker: boolean, slab: Buffer | undefined): void {
    if (buf.length > this.cacheBytes) return;
    const old = this.#lru.get(id);
    if (old !== undefined) {
      this.#lru.delete(id);
      this.#bytes -= old.buf.length;
      this.#retire(old);
    }
    for (const [victim, entry] of this.#lru) {
      if (this.#bytes + buf.length <= this.cacheBytes) break;
      this.#lru.delete(victim);
      this.#bytes -= entry.buf.length;
      this.#stats.evictions++;
      this.#retire(entry);
    }
    this.#lru.set(id, slab === undefined ? { buf, marker } : { buf, marker, slab });
    this.#bytes += buf.length;
  }

  /** An entry left the cache: its buffer is reused once no view can still be reading it. */
  #retire(entry: Entry): void {
    if (entry.slab === undefined || this.#closed) return;
    if (this.#openViews === 0) this.#keepSpare(entry.slab);
    else if (this.#limbo.length < 2 * this.#maxQueued) this.#limbo.push(entry.slab);
  }

  #keepSpare(slab: Buffer): void {
    if (this.#spare.length < 2 * this.#maxQueued && slab.length === this.blockBytes) this.#spare.push(slab);
  }
}

function blockId(key: string, n: number): string {
  return `${n}:${key}`;
}

function keyOf(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}

/**
 * A store may hand back a slice of a larger allocation (a pooled or concatenated buffer);
 * caching the slice would keep the whole allocation alive outside the cache's accounting.
 */
function ownBuffer(buf: Buffer): Buffer {
  if (buf.length > Buffer.poolSize >>> 1 && buf.buffer.byteLength > buf.length) return Buffer.from(buf);
  return buf;
}
