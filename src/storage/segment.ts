/**
 * One segment: a `.log` file of RecordBatch v2 bytes stored verbatim, named by its base
 * offset, plus its SegmentIndex (persisted as `.index` when sealed).
 *
 * Lifecycle: planned active (writable) by PartitionLog, the file created by its first write
 * (off the event loop: open and directory fsync on the libuv threadpool, before any byte of
 * it can be acknowledged); appended to only by the log's single writer; sealed once (data
 * fdatasync'd, index written and fsync'd) after which it is immutable; finally deleted by
 * retention (or after offload).
 *
 * Descriptors (fd-cache.ts): the file is opened on first use, not when the segment is
 * recovered, and the shared FdCache may close it again when it is idle, including the
 * active segment's; the next read or write reopens it. Never closed while: a read or write
 * is in progress (`#pins`), a reader holds the segment (`acquire`/`release`: a deletion
 * unlinks the file under it, and only the open descriptor still reaches the inode), or it
 * is being deleted. Bytes written through it and not yet fdatasync'd are synced through it
 * before it closes; a failure of that fdatasync is kept and thrown by the log's next
 * `sync`, which takes the log offline as any failed fdatasync does.
 *
 * Index memory: a sealed segment recovered from disk loads its index file on first read
 * (`ensureIndex`) and drops it again when its descriptor is evicted, so an idle partition
 * holds only each segment's summary (offsets, size, max timestamp, CRC).
 */
import fs from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, MeridianError } from '../errors.js';
import type { FdCache, CachedFile } from './fd-cache.js';
import { PartitionFiles } from './partition-files.js';
import { SegmentIndex, type IndexFileSummary } from './segment-index.js';
import { closeAsync, fdatasyncAsync, fsyncDir, ftruncateAsync, openAsync, readFully, writeFileAtomic, type LogIo } from './fs-util.js';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, computeBatchCrc, lastOffsetOf, readBatchHeader, type BatchHeader } from './record-batch.js';

// The names live in partition-files.ts; `segmentFileName` stays importable from here.
export { segmentFileName } from './partition-files.js';

/** Read-only view of a segment handed to listeners and retention guards. */
export interface SegmentInfo {
  readonly baseOffset: bigint;
  /** One past the last offset stored. */
  readonly nextOffset: bigint;
  readonly sizeBytes: number;
  readonly maxTimestamp: bigint;
  readonly sealed: boolean;
  readonly logPath: string;
  readonly indexPath: string;
  readonly createdAtMs: number;
  /** CRC-32C of the whole .log file (final once sealed). */
  readonly dataCrc32c: number;
}

/** What every segment of a log shares: the descriptor cache and the index density. */
export interface SegmentContext {
  readonly files: FdCache;
  readonly indexIntervalBytes: number;
}

const SCAN_WINDOW = 256 * 1024;

export class Segment implements SegmentInfo, CachedFile {
  readonly baseOffset: bigint;
  readonly dir: string;
  readonly createdAtMs: number;
  /** Bytes written to the file (readable). */
  sizeBytes: number;
  /** Bytes assigned to appends that are queued but maybe not yet written. */
  assignedBytes: number;
  nextOffset: bigint;
  sealed = false;
  /** Running CRC-32C of the bytes written, in file order. */
  dataCrc32c = 0;
  /**
   * False when `dataCrc32c` was taken from the file as it was found (a truncation's reopen,
   * PartitionLog.#reopenCut) rather than from batches whose own CRCs were checked: a file
   * that matches it then proves nothing about its batches (PartitionLog.trustVerifiedFile).
   */
  dataCrcOfCheckedBatches = true;
  /** Position and stored CRC of the last batch (a recovery checkpoint names it). */
  lastBatchPos = -1;
  lastBatchCrc = 0;
  /**
   * The last batch's header as it was written, when known (undefined after a checkpoint
   * was adopted): disaster recovery asks for the last timestamp of every partition whose
   * end moved, and answering from memory spares a read per partition (issue 15).
   */
  lastBatchHeader: BatchHeader | undefined;
  readonly #ctx: SegmentContext;
  /** Undefined: a sealed segment whose index file is not loaded (ensureIndex loads it). */
  #index: SegmentIndex | undefined;
  #indexLoading: Promise<SegmentIndex> | undefined;
  /** The index lacks the entries of the bytes below this (recovered from a checkpoint). */
  #indexGapEnd = 0;
  #maxTimestamp = -1;
  #bytesSinceIndex = 0;
  #fd = -1;
  #opening: Promise<number> | undefined;
  /** The file does not exist yet: the first use creates it. */
  #mustCreate: boolean;
  /** Reads and writes in progress. */
  #pins = 0;
  #refs = 1; // the log's own reference
  #closed = false;
  #deleting = false;
  /** Writes started, and the count of them the last fdatasync covered. */
  #writes = 0;
  #synced = 0;
  /** An eviction's fdatasync is running. */
  #evictSyncing = false;
  /** An eviction's fdatasync failed: the log's next sync throws it. */
  #syncError: unknown;
  /** The directory fsync recording a newly created file; sync() waits for it. */
  #entryDurable: Promise<void> | undefined;

  private constructor(ctx: SegmentContext, dir: string, baseOffset: bigint, sizeBytes: number, createdAtMs: number, mustCreate: boolean) {
    this.#ctx = ctx;
    this.dir = dir;
    this.baseOffset = baseOffset;
    this.sizeBytes = sizeBytes;
    this.assignedBytes = sizeBytes;
    this.nextOffset = baseOffset;
    this.createdAtMs = createdAtMs;
    this.#mustCreate = mustCreate;
    this.#index = new SegmentIndex();
  }

  /**
   * A new, empty active segment whose file does not exist yet: the roll that plans it stays
   * synchronous (offsets are assigned in call order) and does no I/O; the log's writer
   * creates the file (and makes its directory entry durable) before its first write.
   */
  static plan(ctx: SegmentContext, dir: string, baseOffset: bigint): Segment {
    return new Segment(ctx, dir, baseOffset, 0, Date.now(), true);
  }

  /** A new, empty active segment, its file created and its directory entry durable now. */
  static async create(ctx: SegmentContext, dir: string, baseOffset: bigint): Promise<Segment> {
    const seg = Segment.plan(ctx, dir, baseOffset);
    await seg.withFd(async () => {});
    return seg;
  }

  /** An existing segment file, not opened: recovery loads or rebuilds its index. */
  static existing(ctx: SegmentContext, dir: string, baseOffset: bigint): Segment {
    const st = fs.statSync(PartitionFiles.segmentLog(dir, baseOffset));
    const created = st.birthtimeMs > 0 ? st.birthtimeMs : st.mtimeMs;
    return new Segment(ctx, dir, baseOffset, st.size, created, false);
  }

  // Paths are built when asked, not held: 30,000 segments' two paths each are megabytes.
  get logPath(): string {
    return PartitionFiles.segmentLog(this.dir, this.baseOffset);
  }

  get indexPath(): string {
    return PartitionFiles.segmentIndex(this.dir, this.baseOffset);
  }

  get maxTimestamp(): bigint {
    return BigInt(this.#maxTimestamp);
  }

  get isEmpty(): boolean {
    return this.nextOffset === this.baseOffset;
  }

  /** Whether its descriptor is open now (fd-cache accounting, tests). */
  get hasOpenFd(): boolean {
    return this.#fd >= 0;
  }

  /** Whether its index entries are in memory. */
  get indexLoaded(): boolean {
    return this.#index !== undefined;
  }

  /**
   * The index of an active (or just recovered) segment, which is always in memory. Read
   * paths that may reach a sealed segment use `ensureIndex`.
   */
  get index(): SegmentIndex {
    if (this.#index === undefined) throw new Error(`the index of ${this.logPath} is not loaded (use ensureIndex)`);
    return this.#index;
  }

  set index(index: SegmentIndex) {
    this.#index = index;
    this.#maxTimestamp = index.maxTimestamp;
  }

  info(): SegmentInfo {
    return {
      baseOffset: this.baseOffset,
      nextOffset: this.nextOffset,
      sizeBytes: this.sizeBytes,
      maxTimestamp: this.maxTimestamp,
      sealed: this.sealed,
      logPath: this.logPath,
      indexPath: this.indexPath,
      createdAtMs: this.createdAtMs,
      dataCrc32c: this.dataCrc32c,
    };
  }

  /** Takes a sealed segment's summary from its index file header (recovery). */
  adoptSummary(summary: IndexFileSummary): void {
    this.nextOffset = summary.nextOffset;
    this.dataCrc32c = summary.dataCrc32c;
    this.#maxTimestamp = Number(summary.maxTimestamp);
    this.sealed = true;
    this.#index = undefined;
  }

  /**
   * Trusts the first `position` bytes as a recovery checkpoint describes them (fdatasync'd
   * whole batches ending at `nextOffset`); their index entries are rebuilt on first use.
   */
  adoptCheckpoint(position: number, nextOffset: bigint, dataCrc32c: number, maxTimestamp: number, lastBatchPos: number, lastBatchCrc: number): void {
    this.sizeBytes = position;
    this.assignedBytes = position;
    this.nextOffset = nextOffset;
    this.dataCrc32c = dataCrc32c;
    this.lastBatchPos = lastBatchPos;
    this.lastBatchCrc = lastBatchCrc;
    this.lastBatchHeader = undefined;
    this.#index = new SegmentIndex();
    this.#index.seedMaxTimestamp(maxTimestamp);
    this.#maxTimestamp = Math.max(this.#maxTimestamp, maxTimestamp);
    this.#indexGapEnd = position;
    // Nothing is in the index yet: the first batch past the checkpoint gets an entry.
    this.#bytesSinceIndex = Number.MAX_SAFE_INTEGER;
  }

  /** Updates index and counters after a batch landed at `position` (called in log order). */
  recordBatch(position: number, baseOffset: bigint, lastOffset: bigint, maxTimestamp: bigint, size: number, indexIntervalBytes: number, batchCrc = 0, header?: BatchHeader): void {
    const index = this.index;
    const rel = Number(baseOffset - this.baseOffset);
    if (index.offsetEntries === 0 || this.#bytesSinceIndex >= indexIntervalBytes) {
      index.addOffset(rel, position);
      this.#bytesSinceIndex = 0;
    }
    this.#bytesSinceIndex += size;
    index.addTimestamp(Number(maxTimestamp), rel);
    if (index.maxTimestamp > this.#maxTimestamp) this.#maxTimestamp = index.maxTimestamp;
    this.nextOffset = lastOffset + 1n;
    this.lastBatchPos = position;
    this.lastBatchCrc = batchCrc;
    this.lastBatchHeader = header;
  }

  /**
   * The index, loading it first if needed: a sealed segment's from its file (checked
   * against its CRC and the summary recovery trusted), or, for one recovered from a
   * checkpoint, the missing entries of its prefix rebuilt from the batch headers.
   */
  ensureIndex(): Promise<SegmentIndex> {
    if (this.#index !== undefined && this.#indexGapEnd === 0) return Promise.resolve(this.#index);
    this.#indexLoading ??= (this.#index === undefined ? this.#loadIndexFile() : this.#fillIndexGap()).finally(() => {
      this.#indexLoading = undefined;
    });
    return this.#indexLoading;
  }

  async #loadIndexFile(): Promise<SegmentIndex> {
    let parsed: ReturnType<typeof SegmentIndex.decode> = null;
    try {
      parsed = SegmentIndex.decode(await fs.promises.readFile(this.indexPath));
    } catch {
      parsed = null;
    }
    let index: SegmentIndex;
    if (parsed && parsed.summary.segmentBytes === this.sizeBytes && parsed.summary.baseOffset === this.baseOffset && parsed.summary.nextOffset === this.nextOffset) {
      index = parsed.index;
    } else {
      // The header recovery trusted is fine but the entries are not (bit rot): rebuild
      // them from the data, which must end where the summary says.
      const rebuilt = await this.#indexOf(0, this.sizeBytes, true);
      if (rebuilt.next !== this.nextOffset || rebuilt.end !== this.sizeBytes) {
        throw new MeridianError(ErrorCode.CorruptLog, `the index ${this.indexPath} is corrupt and ${this.logPath} does not hold what its header says (batches end at offset ${rebuilt.next}, byte ${rebuilt.end}); the segment needs repair or restore from a replica or the object store`);
      }
      index = rebuilt.index;
    }
    if (this.sealed && !this.#closed) this.#index = index;
    return index;
  }

  async #fillIndexGap(): Promise<SegmentIndex> {
    const gapEnd = this.#indexGapEnd;
    const { index: prefix } = await this.#indexOf(0, gapEnd, false);
    const merged = (this.#index ?? new SegmentIndex()).prependedWith(prefix);
    this.#index = merged;
    this.#indexGapEnd = 0;
    return merged;
  }

  /** An index of the batches in [from, to), checking CRCs when `verify`. */
  async #indexOf(from: number, to: number, verify: boolean): Promise<{ index: SegmentIndex; next: bigint; end: number }> {
    const index = new SegmentIndex();
    let since = Number.MAX_SAFE_INTEGER;
    let next = this.baseOffset;
    let end = from;
    let bad = false;
    await this.scanHeaders(from, to, (h, pos, size) => {
      const rel = Number(h.baseOffset - this.baseOffset);
      if (since >= this.#ctx.indexIntervalBytes) {
        index.addOffset(rel, pos);
        since = 0;
      }
      since += size;
      index.addTimestamp(Number(h.maxTimestamp), rel);
      next = lastOffsetOf(h) + 1n;
      end = pos + size;
      return true;
    });
    if (verify && end > from) {
      for (let p = from; p < end && !bad; ) {
        const win = await this.read(p, Math.min(4 * SCAN_WINDOW, end - p));
        let q = 0;
        while (q + BATCH_HEADER_BYTES <= win.length) {
          const size = win.readInt32BE(q + 8) + LOG_OVERHEAD;
          if (q + size > win.length) break;
          if (computeBatchCrc(win.subarray(q, q + size)) !== win.readUInt32BE(q + 17)) {
            bad = true;
            break;
          }
          q += size;
        }
        if (q === 0) break;
        p += q;
      }
      if (bad) end = -1;
    }
    return { index, next, end };
  }

  // -- descriptors -------------------------------------------------------------------------

  idleState(): 'closable' | 'syncable' | 'busy' {
    if (this.#fd < 0 || this.#pins > 0 || this.#refs !== 1 || this.#deleting || this.#closed || this.#evictSyncing || this.#syncError !== undefined) return 'busy';
    return this.#writes === this.#synced ? 'closable' : 'syncable';
  }

  syncThenEvict(done: () => void): void {
    const fd = this.#fd;
    const upTo = this.#writes;
    this.#evictSyncing = true;
    fs.fdatasync(fd, (err) => {
      this.#evictSyncing = false;
      if (err) this.#syncError = err;
      else if (upTo > this.#synced) this.#synced = upTo;
      if (this.#fd === fd && this.idleState() === 'closable') {
        this.#ctx.files.closed(this);
        this.evict();
      }
      done();
    });
  }

  evict(): void {
    const fd = this.#fd;
    this.#fd = -1;
    fs.close(fd, () => {});
    // A sealed segment's index is on disk: an idle one needs only its summary in memory.
    if (this.sealed && this.#indexLoading === undefined) this.#index = undefined;
  }

  /** Runs `fn` with the open descriptor (opening or creating the file first); never closed under it. */
  async withFd<T>(fn: (fd: number) => Promise<T>): Promise<T> {
    this.#pins++;
    try {
      const fd = this.#fd >= 0 ? this.#fd : await this.#openFd();
      this.#ctx.files.touched(this);
      return await fn(fd);
    } finally {
      // Idle again: close something if over the limit or an open waits for room.
      if (--this.#pins === 0 && this.#ctx.files.wantsRoom) this.#ctx.files.trim();
    }
  }

  /** Creates the file of a planned segment now (a no-op once it exists). */
  async ensureCreated(): Promise<void> {
    if (this.#mustCreate) await this.withFd(async () => {});
  }

  #openFd(): Promise<number> {
    this.#opening ??= (async () => {
      if (this.#closed) throw new MeridianError(ErrorCode.LogClosed, `segment ${this.logPath} is closed`, { retriable: true });
      // Room under log.maxOpenFiles first (waits while every descriptor is busy).
      await this.#ctx.files.admit();
      let fd: number;
      try {
        if (this.#mustCreate) {
          fd = await openAsync(this.logPath, 'wx+');
          this.#mustCreate = false;
          // The directory entry must be durable before any byte of the file is acknowledged:
          // sync() waits for this fsync. It runs beside the first writes rather than in front
          // of them, so a roll does not stall the partition's appends for a directory fsync.
          const entry = this.#ctx.files.transient(() => fsyncDir(this.dir));
          entry.catch(() => {}); // reported by sync(), which every acknowledgement waits for
          this.#entryDurable = entry;
        } else {
          fd = await openAsync(this.logPath, 'r+');
        }
        if (this.#closed) {
          await closeAsync(fd);
          throw new MeridianError(ErrorCode.LogClosed, `segment ${this.logPath} is closed`, { retriable: true });
        }
      } catch (err) {
        this.#ctx.files.openFailed();
        throw err;
      }
      this.#fd = fd;
      this.#ctx.files.opened(this);
      return fd;
    })().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  #closeFd(): Promise<void> {
    this.#closed = true;
    const fd = this.#fd;
    this.#fd = -1;
    this.#index = undefined;
    this.#ctx.files.closed(this);
    return fd >= 0 ? closeAsync(fd) : Promise.resolve();
  }

  acquire(): boolean {
    if (this.#closed || this.#deleting) return false;
    this.#refs++;
    return true;
  }

  release(): void {
    if (--this.#refs === 0) void this.#closeFd().catch(() => {});
    else if (this.#refs === 1 && this.#ctx.files.wantsRoom) this.#ctx.files.trim();
  }

  // -- I/O ---------------------------------------------------------------------------------

  async read(position: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.withFd((fd) => readFully(fd, length, position, into));
  }

  /** Writes `buffers` at `position` through `io`; the descriptor stays open until an fdatasync covers it. */
  async write(io: LogIo, buffers: Buffer[], position: number): Promise<number> {
    this.#writes++;
    return this.withFd((fd) => io.writev(fd, buffers, position));
  }

  /**
   * `write` on the calling thread when the descriptor is open and `io` can (LogIo.writevSync);
   * undefined, having written nothing, when not.
   */
  writeNow(io: LogIo, buffers: Buffer[], position: number): number | undefined {
    if (this.#fd < 0 || io.writevSync === undefined) return undefined;
    this.#writes++;
    this.#ctx.files.touched(this);
    return io.writevSync(this.#fd, buffers, position);
  }

  /**
   * Fdatasyncs what was written through this segment (`force`: even if nothing was, e.g.
   * what recovery found after a kill -9 may sit in the page cache only).
   */
  async sync(io: LogIo, force = false): Promise<void> {
    const upTo = this.#writes;
    if (this.#syncError !== undefined) throw this.#syncError;
    if (this.#mustCreate) return; // no file yet: nothing written
    if (upTo === this.#synced && !force) return this.#awaitEntry();
    // The file's data and its directory entry (a new file's) are made durable side by side.
    await Promise.all([this.withFd((fd) => io.fdatasync(fd)), this.#awaitEntry()]);
    if (upTo > this.#synced) this.#synced = upTo;
  }

  /**
   * Visits whole batch headers from `startPos` up to `endPos`. The visitor returns false to
   * stop. Reads in windows so a scan costs a few large reads, not one per batch.
   */
  async scanHeaders(startPos: number, endPos: number, visit: (h: BatchHeader, pos: number, size: number) => boolean): Promise<void> {
    let pos = startPos;
    while (pos + BATCH_HEADER_BYTES <= endPos) {
      const win = await this.read(pos, Math.min(SCAN_WINDOW, endPos - pos));
      let p = 0;
      while (p + BATCH_HEADER_BYTES <= win.length) {
        const size = win.readInt32BE(p + 8) + LOG_OVERHEAD;
        if (size < BATCH_HEADER_BYTES || pos + p + size > endPos) return;
        if (!visit(readBatchHeader(win, p), pos + p, size)) return;
        p += size;
      }
      if (p === 0) return;
      pos += p;
    }
  }

  /**
   * Makes the data and then the index durable; after this the segment never changes. All
   * of it on the threadpool (the log's writer runs it, between two write rounds).
   */
  async seal(io: LogIo): Promise<void> {
    if (this.sealed) return;
    await this.sync(io, true);
    await this.writeIndexFile();
    this.sealed = true;
  }

  async writeIndexFile(): Promise<void> {
    const index = await this.ensureIndex();
    const data = index.encode({
      segmentBytes: this.sizeBytes,
      baseOffset: this.baseOffset,
      nextOffset: this.nextOffset,
      maxTimestamp: this.maxTimestamp,
      dataCrc32c: this.dataCrc32c,
    });
    await this.#ctx.files.transient(() => writeFileAtomic(this.indexPath, data));
  }

  /** Whether this segment's new file may still wait for its directory entry's fsync (entryDurable). */
  get entryPending(): boolean {
    return this.#entryDurable !== undefined;
  }

  /** Resolves once the file's directory entry is durable (at once for a file that was not just created). */
  entryDurable(): Promise<void> {
    return this.#awaitEntry();
  }

  async #awaitEntry(): Promise<void> {
    const entry = this.#entryDurable;
    if (entry === undefined) return;
    await entry;
    if (this.#entryDurable === entry) this.#entryDurable = undefined;
  }

  /** Cuts the file at `position` (a torn or corrupt tail, a partial write), durably. */
  async truncate(position: number): Promise<void> {
    const upTo = ++this.#writes;
    await this.#awaitEntry();
    await this.withFd(async (fd) => {
      await ftruncateAsync(fd, position);
      // fdatasync covers the whole file, so every earlier write too.
      await fdatasyncAsync(fd);
    });
    if (upTo > this.#synced) this.#synced = upTo;
    this.sizeBytes = position;
    this.assignedBytes = position;
    this.#index?.truncateToPosition(position);
  }

  /** Drops the in-memory index entries at or past `position` (a truncation; a no-op when not loaded). */
  dropIndexPast(position: number): void {
    this.#index?.truncateToPosition(position);
  }

  /** Drops the log's reference; the descriptor closes once the last reader is done. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#refs === 1) {
      this.#refs = 0;
      await this.#closeFd();
    } else {
      this.release();
    }
  }

  /** Removes the files; open readers keep working on the unlinked inode until they release. */
  async delete(): Promise<void> {
    this.#deleting = true;
    // A reader holding the segment reads through a descriptor; open it before the unlink
    // if the cache had closed it (it is not evicted again: #deleting).
    if (this.#refs > 1 && this.#fd < 0 && !this.#closed) await this.withFd(async () => {}).catch(() => {});
    await fs.promises.rm(this.indexPath, { force: true });
    await fs.promises.rm(this.logPath, { force: true });
    await this.close();
  }
}

/** The CRC-32C of `length` bytes of a segment from its start (a truncation's rebuild). */
export async function segmentCrc(seg: Segment, length: number, window = 1024 * 1024): Promise<number> {
  let crc = 0;
  for (let p = 0; p < length; ) {
    const chunk = await seg.read(p, Math.min(window, length - p));
    if (chunk.length === 0) throw new Error(`${seg.logPath} is shorter than ${length} bytes`);
    crc = crc32c(chunk, crc);
    p += chunk.length;
  }
  return crc;
}
