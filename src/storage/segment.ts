/**
 * One segment: a `.log` file of RecordBatch v2 bytes stored verbatim, named by its base
 * offset, plus its in-memory SegmentIndex (persisted as `.index` when sealed).
 *
 * Lifecycle: created active (writable) by PartitionLog; appended to only by the log's single
 * flusher; sealed once (data fdatasync'd, index written and fsync'd) after which it is
 * immutable; finally deleted by retention (or, later, after offload). Readers take a
 * reference (`acquire`/`release`) so that deletion never closes a descriptor under a read.
 */
import fs from 'node:fs';
import { PartitionFiles } from './partition-files.js';
import { SegmentIndex } from './segment-index.js';
import { closeAsync, fdatasyncAsync, fsyncDirSync, readFully, writeFileAtomicSync } from './fs-util.js';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, readBatchHeader, type BatchHeader } from './record-batch.js';

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

const SCAN_WINDOW = 256 * 1024;

export class Segment implements SegmentInfo {
  readonly baseOffset: bigint;
  readonly logPath: string;
  readonly indexPath: string;
  readonly createdAtMs: number;
  index: SegmentIndex;
  /** Bytes written to the file (readable). */
  sizeBytes: number;
  /** Bytes assigned to appends that are queued but maybe not yet written. */
  assignedBytes: number;
  nextOffset: bigint;
  sealed = false;
  /** Running CRC-32C of the bytes written, in file order. */
  dataCrc32c = 0;
  #fd: number;
  #bytesSinceIndex = 0;
  #refs = 1; // the log's own reference
  #closed = false;

  private constructor(dir: string, baseOffset: bigint, fd: number, sizeBytes: number, createdAtMs: number) {
    this.baseOffset = baseOffset;
    this.logPath = PartitionFiles.segmentLog(dir, baseOffset);
    this.indexPath = PartitionFiles.segmentIndex(dir, baseOffset);
    this.#fd = fd;
    this.sizeBytes = sizeBytes;
    this.assignedBytes = sizeBytes;
    this.nextOffset = baseOffset;
    this.createdAtMs = createdAtMs;
    this.index = new SegmentIndex();
  }

  /** Creates a new, empty active segment; the directory entry is made durable at once. */
  static create(dir: string, baseOffset: bigint): Segment {
    const file = PartitionFiles.segmentLog(dir, baseOffset);
    const fd = fs.openSync(file, 'wx+');
    fsyncDirSync(dir);
    return new Segment(dir, baseOffset, fd, 0, Date.now());
  }

  /** Opens an existing segment file; the caller loads or rebuilds its index. */
  static openExisting(dir: string, baseOffset: bigint): Segment {
    const file = PartitionFiles.segmentLog(dir, baseOffset);
    const fd = fs.openSync(file, 'r+');
    const st = fs.fstatSync(fd);
    const created = st.birthtimeMs > 0 ? st.birthtimeMs : st.mtimeMs;
    return new Segment(dir, baseOffset, fd, st.size, created);
  }

  get fd(): number {
    return this.#fd;
  }

  get maxTimestamp(): bigint {
    return BigInt(this.index.maxTimestamp);
  }

  get isEmpty(): boolean {
    return this.nextOffset === this.baseOffset;
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

  /** Updates index and counters after a batch landed at `position` (called in log order). */
  recordBatch(position: number, baseOffset: bigint, lastOffset: bigint, maxTimestamp: bigint, size: number, indexIntervalBytes: number): void {
    const rel = Number(baseOffset - this.baseOffset);
    if (this.index.offsetEntries === 0 || this.#bytesSinceIndex >= indexIntervalBytes) {
      this.index.addOffset(rel, position);
      this.#bytesSinceIndex = 0;
    }
    this.#bytesSinceIndex += size;
    this.index.addTimestamp(Number(maxTimestamp), rel);
    this.nextOffset = lastOffset + 1n;
  }

  acquire(): boolean {
    if (this.#closed) return false;
    this.#refs++;
    return true;
  }

  release(): void {
    if (--this.#refs === 0) {
      this.#closed = true;
      fs.close(this.#fd, () => {});
    }
  }

  async read(position: number, length: number, into?: Buffer): Promise<Buffer> {
    return readFully(this.#fd, length, position, into);
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

  /** Makes the data and then the index durable; after this the segment never changes. */
  async seal(): Promise<void> {
    if (this.sealed) return;
    await fdatasyncAsync(this.#fd);
    this.writeIndexFile();
    this.sealed = true;
  }

  writeIndexFile(): void {
    const data = this.index.encode({
      segmentBytes: this.sizeBytes,
      baseOffset: this.baseOffset,
      nextOffset: this.nextOffset,
      maxTimestamp: this.maxTimestamp,
      dataCrc32c: this.dataCrc32c,
    });
    writeFileAtomicSync(this.indexPath, data);
  }

  /** Cuts the file at `position` (recovery of a torn or corrupt tail). */
  truncate(position: number): void {
    fs.ftruncateSync(this.#fd, position);
    fs.fdatasyncSync(this.#fd);
    this.sizeBytes = position;
    this.assignedBytes = position;
    this.index.truncateToPosition(position);
  }

  /** Drops the log's reference; the descriptor closes once the last reader is done. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#refs === 1) {
      this.#closed = true;
      this.#refs = 0;
      await closeAsync(this.#fd);
    } else {
      this.release();
    }
  }

  /** Removes the files; open readers keep working on the unlinked inode until they release. */
  async delete(): Promise<void> {
    await fs.promises.rm(this.indexPath, { force: true });
    await fs.promises.rm(this.logPath, { force: true });
    await this.close();
  }
}
