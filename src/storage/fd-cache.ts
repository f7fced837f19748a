/**
 * A bound on the segment file descriptors a broker keeps open (config `log.maxOpenFiles`),
 * shared by every partition log of a TopicManager: with 10,000 partitions of several
 * segments each, one descriptor per segment file would exceed `ulimit -n`.
 *
 * Segments open their descriptor lazily, on the first read or write, and tell the cache;
 * the cache keeps them in least-recently-used order and, when more than `limit` are open,
 * closes the least recently used ones that are idle. What "idle" means is the segment's
 * call (`CachedFile.evictable`): no read or write in progress, no reader holding the
 * segment (a deletion may unlink the file under it), and no written bytes that are not yet
 * fdatasync'd (the fdatasync goes through the descriptor the write used, so a write-back
 * error is reported to the log that wrote, not lost with a closed descriptor).
 *
 * The limit is soft: when every open descriptor is busy, a new one still opens (refusing
 * would fail a produce or a fetch) and the cache shrinks back as they go idle. So the
 * count can pass the limit by the descriptors in use at one moment, at most one per
 * partition being written and not yet synced (interval flush mode) plus the reads in flight.
 *
 * Concurrency: single-threaded (event loop); `evict` only starts an asynchronous close.
 */

/** What the cache needs of a segment holding a descriptor. */
export interface CachedFile {
  /** Whether its descriptor may be closed now (no I/O, no readers, nothing unsynced). */
  evictable(): boolean;
  /** Closes its descriptor; the next use reopens it. Called only when `evictable()`. */
  evict(): void;
}

export const DEFAULT_MAX_OPEN_FILES = 4096;

export class FdCache {
  readonly limit: number;
  /** Open descriptors, least recently used first (a Map keeps insertion order). */
  #open = new Map<CachedFile, true>();
  #evictions = 0;

  constructor(limit = DEFAULT_MAX_OPEN_FILES) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`log.maxOpenFiles must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  /** Segment file descriptors open now. */
  get size(): number {
    return this.#open.size;
  }

  /** Descriptors closed to stay under the limit since the cache was made. */
  get evictions(): number {
    return this.#evictions;
  }

  /** A descriptor was opened: it is the most recently used, and the cache trims to its limit. */
  opened(file: CachedFile): void {
    this.#open.delete(file);
    this.#open.set(file, true);
    this.trim();
  }

  /** A descriptor was used: it becomes the most recently used. */
  touched(file: CachedFile): void {
    if (this.#open.delete(file)) this.#open.set(file, true);
  }

  /** A descriptor was closed by its owner (segment closed or deleted). */
  closed(file: CachedFile): void {
    this.#open.delete(file);
  }

  /** Closes idle descriptors, least recently used first, until at most `limit` are open. */
  trim(): void {
    if (this.#open.size <= this.limit) return;
    for (const file of this.#open.keys()) {
      if (this.#open.size <= this.limit) return;
      if (!file.evictable()) continue;
      this.#open.delete(file);
      this.#evictions++;
      file.evict();
    }
  }
}
