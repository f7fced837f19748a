/**
 * A bound on the segment file descriptors a broker keeps open (config `log.maxOpenFiles`),
 * shared by every partition log of a TopicManager: with 10,000 partitions of several
 * segments each, one descriptor per segment file would exceed `ulimit -n`.
 *
 * Segments open their descriptor lazily, on the first read or write, and tell the cache;
 * the cache keeps them in least-recently-used order and, when more than `limit` are open,
 * closes the least recently used ones that are idle. What "idle" means is the segment's
 * call (`CachedFile.idleState`): no read or write in progress, no reader holding the
 * segment (a deletion may unlink the file under it). An idle descriptor with written bytes
 * not yet fdatasync'd is synced first, through that descriptor, and closed after
 * (`syncThenEvict`): a write-back error is then kept by the segment and reported to its log
 * at the log's next fdatasync, never lost with a closed descriptor (fsyncgate). So in
 * interval flush mode, with more dirty partitions than the limit, the cache syncs the
 * least recently written ones early: more fdatasyncs, but descriptors stay bounded (10,000
 * partitions each with a dirty active segment and a segment being sealed would otherwise
 * pass `ulimit -n`).
 *
 * Admission: a segment asks `admit` before it opens a descriptor. With room (open plus
 * opening below the limit, or an idle one to close) it opens at once; otherwise it waits,
 * in order, until a descriptor closes or goes idle (its holder's read, write or fdatasync
 * ended). Without this, 2,000 partitions appended to at once each opened their active
 * segment (every one busy while its write and fdatasync queued on the 4-thread I/O pool),
 * and 10,000 partitions under produce held 9,172 descriptors against a limit of 4,096.
 * Waiting costs nothing there: the I/O pool runs only a few calls at a time anyway.
 *
 * The limit stays soft, never a deadlock: a waiter that gets no room within
 * ADMIT_WAIT_MS while the cache made no progress meanwhile (no descriptor closed, none
 * being synced to close: say every descriptor is held by readers of segments for a long
 * time) opens anyway and is counted (`overLimitOpens`); the cache shrinks back as they go
 * idle. A waiter behind a slow disk, where descriptors do close but each only after its
 * fdatasync, keeps waiting, up to ADMIT_MAX_WAIT_MS: it gets nothing by opening early (its
 * write queues behind the same fdatasyncs), and opening anyway there took 2,000 busy
 * partitions to 471 descriptors against a limit of 256 on this VM's noisy disk.
 *
 * Concurrency: single-threaded (event loop); `evict` only starts an asynchronous close.
 */
import fs from 'node:fs';

/** What the cache needs of a segment holding a descriptor. */
export interface CachedFile {
  /**
   * `closable`: idle and fully synced; `syncable`: idle but holding unsynced writes;
   * `busy`: in use (or already being synced to close).
   */
  idleState(): 'closable' | 'syncable' | 'busy';
  /** Closes its descriptor; the next use reopens it. Called only when `closable`. */
  evict(): void;
  /**
   * Fdatasyncs its descriptor and closes it if still idle after; calls `done` either way
   * (having told the cache `closed` if it closed). Called only when `syncable`.
   */
  syncThenEvict(done: () => void): void;
}

/** The bound when none is configured and the process's open-file limit is unknown. */
export const DEFAULT_MAX_OPEN_FILES = 4096;
/** Share of the process's open-file limit that segment files may take by default. */
const SHARE_OF_PROCESS_LIMIT = 0.6;
const MIN_DERIVED = 256;
const MAX_DERIVED = 1_000_000;

/**
 * The default `log.maxOpenFiles`: 60% of the process's soft open-file limit (`ulimit -n`,
 * from /proc/self/limits on Linux), at least 256 and at most 1,000,000, leaving the rest for
 * connections and short-lived files; DEFAULT_MAX_OPEN_FILES where the limit cannot be read.
 * A fixed 4096 was both too many for a process held to 1024 (EMFILE) and far too few for one
 * given 20,000 for 10,000 partitions: a consumer following them all reopened a segment file
 * for nearly every read (bench:scale's lag: p50 3.1 s with 4096, 0.6 s with 12,000).
 */
export function derivedMaxOpenFiles(limitsText?: string): number {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return DEFAULT_MAX_OPEN_FILES;
    }
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined) return DEFAULT_MAX_OPEN_FILES;
  if (soft === 'unlimited') return MAX_DERIVED;
  const n = Number(soft);
  if (!Number.isInteger(n) || n <= 0) return DEFAULT_MAX_OPEN_FILES;
  return Math.min(MAX_DERIVED, Math.max(MIN_DERIVED, Math.floor(n * SHARE_OF_PROCESS_LIMIT)));
}
/**
 * Short-lived descriptors (a directory to fsync, an index file being written) held at once
 * across all logs: 10,000 partitions rolling together would otherwise open 20,000 of them,
 * each waiting its turn on the 4 threads of the libuv pool anyway.
 */
export const MAX_TRANSIENT_FILES = 32;
/** How long an open waits for room under the limit before it opens anyway (soft limit). */
export const ADMIT_WAIT_MS = 1000;
/** The longest an open waits while the cache is making room (closing descriptors) before it opens anyway. */
export const ADMIT_MAX_WAIT_MS = 10_000;

export class FdCache {
  readonly limit: number;
  /** Open descriptors, least recently used first (a Map keeps insertion order). */
  #open = new Map<CachedFile, true>();
  #evictions = 0;
  /** Descriptors being synced before they close (counted as going away). */
  #closing = 0;
  #transient = 0;
  #transientWaiters: Array<() => void> = [];
  /** Descriptors admitted and being opened (not yet `opened`). */
  #opening = 0;
  /** Opens waiting for room, first come first served. */
  #admitWaiters: Array<() => void> = [];
  #overLimitOpens = 0;
  /** Descriptors closed or synced to close so far: what a waiting open counts as progress. */
  #freed = 0;

  constructor(limit = DEFAULT_MAX_OPEN_FILES) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`log.maxOpenFiles must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  /** Segment file descriptors open now. */
  get size(): number {
    return this.#open.size;
  }

  /** Opens that waited ADMIT_WAIT_MS without room and went over the limit. */
  get overLimitOpens(): number {
    return this.#overLimitOpens;
  }

  /** Opens waiting for room under the limit now. */
  get waiting(): number {
    return this.#admitWaiters.length;
  }

  /** Descriptors counted against the limit, and opens waiting: what `trim` brings down to `limit`. */
  #demand(): number {
    return this.#open.size - this.#closing + this.#opening + this.#admitWaiters.length;
  }

  /** True when an idle descriptor should be closed now (over the limit, or an open waits). */
  get wantsRoom(): boolean {
    return this.#open.size - this.#closing > this.limit || this.#admitWaiters.length > 0;
  }

  /**
   * Resolves when a descriptor may be opened; the caller then opens it and calls `opened`
   * (or `openFailed`). Waits, in order, while open and opening descriptors fill the limit.
   */
  admit(): Promise<void> {
    if (this.#admitWaiters.length === 0 && !this.#hasRoom()) this.#trimTo(this.limit - 1);
    if (this.#admitWaiters.length === 0 && this.#hasRoom()) {
      this.#opening++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const started = Date.now();
      let seen = this.#freed;
      const go = (): void => {
        clearTimeout(timer);
        this.#opening++;
        resolve();
      };
      const check = (): void => {
        const i = this.#admitWaiters.indexOf(go);
        if (i < 0) return;
        // Room is being made (descriptors closed since the last look, or syncing to close):
        // keep the place in line rather than pass the limit, up to ADMIT_MAX_WAIT_MS.
        if ((this.#freed !== seen || this.#closing > 0) && Date.now() - started < ADMIT_MAX_WAIT_MS) {
          seen = this.#freed;
          timer = setTimeout(check, ADMIT_WAIT_MS);
          return;
        }
        this.#admitWaiters.splice(i, 1);
        this.#overLimitOpens++;
        go();
      };
      let timer = setTimeout(check, ADMIT_WAIT_MS);
      this.#admitWaiters.push(go);
    });
  }

  /** An admitted open failed: its room goes to the next waiter. */
  openFailed(): void {
    this.#opening--;
    this.#wake();
  }

  /**
   * Room for one more descriptor: counted are those open (a descriptor being synced to close
   * still holds its file) and those being opened.
   */
  #hasRoom(): boolean {
    return this.#open.size + this.#opening < this.limit;
  }

  /** Gives free room to waiting opens, in order. */
  #wake(): void {
    while (this.#admitWaiters.length > 0 && this.#hasRoom()) this.#admitWaiters.shift()!();
  }

  /** Descriptors closed to stay under the limit since the cache was made. */
  get evictions(): number {
    return this.#evictions;
  }

  /**
   * Runs `fn`, which opens and closes descriptors of its own (directory fsync, index file
   * write), with at most MAX_TRANSIENT_FILES such calls at once; the rest wait in order.
   */
  async transient<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#transient >= MAX_TRANSIENT_FILES) await new Promise<void>((resolve) => this.#transientWaiters.push(resolve));
    else this.#transient++;
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, if any.
      const next = this.#transientWaiters.shift();
      if (next) next();
      else this.#transient--;
    }
  }

  /** An admitted descriptor was opened: it is the most recently used, and the cache trims to its limit. */
  opened(file: CachedFile): void {
    this.#opening--;
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
    if (this.#open.delete(file)) this.#freed++;
    this.#wake();
  }

  /**
   * Closes idle descriptors, least recently used first, until at most `limit` are open,
   * counting opens in progress and waiting; freed room goes to waiting opens.
   */
  trim(): void {
    this.#trimTo(this.limit);
    this.#wake();
  }

  #trimTo(target: number): void {
    if (this.#demand() <= target) return;
    for (const file of this.#open.keys()) {
      if (this.#demand() <= target) return;
      const state = file.idleState();
      if (state === 'closable') {
        this.#open.delete(file);
        this.#evictions++;
        this.#freed++;
        file.evict();
      } else if (state === 'syncable') {
        this.#closing++;
        this.#evictions++;
        file.syncThenEvict(() => {
          this.#closing--;
          // It may have stayed open (used meanwhile): the next idle one goes instead.
          this.trim();
        });
      }
    }
  }
}
