/**
 * The sparse offset index and time index of one segment, held in memory and written as one
 * `.index` file when the segment is sealed.
 *
 * Offset entries map (offset - baseOffset) to the byte position of the batch that starts
 * there; one entry is added every `indexIntervalBytes` of log. Time entries map the largest
 * timestamp seen so far to the relative offset of the batch that carried it; an entry is
 * added only when that maximum grows, so both columns stay sorted and binary-searchable.
 *
 * File layout (all big-endian), one file instead of Kafka's two so that a sealed segment is
 * exactly two objects in tiered storage (data + index):
 *
 *   magic "MIDX" | version u16 | reserved u16 | segmentBytes u64 | baseOffset i64
 *   | nextOffset i64 | maxTimestamp i64 | dataCrc32c u32 | offsetEntries u32 | timeEntries u32
 *   | offsetEntries x (relOffset u32, position u32)
 *   | timeEntries x (timestamp i64, relOffset u32)
 *   | crc32c u32 of everything before it
 *
 * `segmentBytes` ties the index to the exact length of the log it describes: an index whose
 * length disagrees with its log (a crash between append and seal) is stale and rebuilt.
 * `dataCrc32c` is the CRC-32C of the whole .log file, recorded at seal time: tiered storage
 * verifies uploads against it.
 */
import { crc32c } from '@node-rs/crc32';

const MAGIC = 0x4d494458; // "MIDX"
const VERSION = 2;
/** Bytes before the entries: what recovery reads of a sealed segment's index (`decodeSummary`). */
export const INDEX_HEADER_BYTES = 4 + 2 + 2 + 8 + 8 + 8 + 8 + 4 + 4 + 4;
const HEADER_BYTES = INDEX_HEADER_BYTES;

export interface IndexFileSummary {
  segmentBytes: number;
  baseOffset: bigint;
  nextOffset: bigint;
  maxTimestamp: bigint;
  dataCrc32c: number;
}

export class SegmentIndex {
  // Small to start (V8 keeps typed arrays of 64 bytes or less on its heap, with no
  // ArrayBuffer of their own): 10,000 idle partitions each hold one active index; a busy
  // one doubles its way up.
  #offRel = new Uint32Array(8);
  #offPos = new Uint32Array(8);
  #offCount = 0;
  #timeTs = new Float64Array(4);
  #timeRel = new Uint32Array(4);
  #timeCount = 0;
  #maxTimestamp = -1;

  get offsetEntries(): number {
    return this.#offCount;
  }

  get timeEntries(): number {
    return this.#timeCount;
  }

  /** Largest timestamp recorded so far, -1 when none. */
  get maxTimestamp(): number {
    return this.#maxTimestamp;
  }

  addOffset(relOffset: number, position: number): void {
    if (this.#offCount > 0 && relOffset <= this.#offRel[this.#offCount - 1]) return;
    if (this.#offCount === this.#offRel.length) {
      this.#offRel = grow(this.#offRel);
      this.#offPos = grow(this.#offPos);
    }
    this.#offRel[this.#offCount] = relOffset;
    this.#offPos[this.#offCount] = position;
    this.#offCount++;
  }

  /** Records a batch's max timestamp; only a new maximum adds an entry. */
  addTimestamp(timestamp: number, relOffset: number): void {
    if (timestamp <= this.#maxTimestamp) return;
    this.#maxTimestamp = timestamp;
    if (this.#timeCount === this.#timeTs.length) {
      this.#timeTs = grow(this.#timeTs);
      this.#timeRel = grow(this.#timeRel);
    }
    this.#timeTs[this.#timeCount] = timestamp;
    this.#timeRel[this.#timeCount] = relOffset;
    this.#timeCount++;
  }

  /** Byte position from which a scan for `relOffset` must start (the floor entry, or 0). */
  lookupPosition(relOffset: number): number {
    let lo = 0;
    let hi = this.#offCount - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#offRel[mid] <= relOffset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? 0 : this.#offPos[found];
  }

  /**
   * Relative offset from which a scan for the first batch with maxTimestamp >= `timestamp`
   * must start: the batch of the last entry whose running maximum is still below the target
   * (every batch before it is older than the target), or 0.
   */
  lookupTimestamp(timestamp: number): number {
    let lo = 0;
    let hi = this.#timeCount - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#timeTs[mid] < timestamp) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? 0 : this.#timeRel[found];
  }

  /**
   * Sets the running maximum without an entry: the active segment recovered from a
   * checkpoint knows its prefix's largest timestamp but not where it was (a lookup below it
   * then starts at 0, which is correct, only slower, until `prepend` fills the prefix in).
   */
  seedMaxTimestamp(timestamp: number): void {
    if (timestamp > this.#maxTimestamp) this.#maxTimestamp = timestamp;
  }

  /**
   * A new index: `prefix` (the entries of the bytes before this index's first entry) followed
   * by this one's entries. Entries that would break the order are skipped, as `add*` do.
   */
  prependedWith(prefix: SegmentIndex): SegmentIndex {
    const out = new SegmentIndex();
    for (const src of [prefix, this as SegmentIndex]) {
      for (let i = 0; i < src.#offCount; i++) out.addOffset(src.#offRel[i], src.#offPos[i]);
      for (let i = 0; i < src.#timeCount; i++) out.addTimestamp(src.#timeTs[i], src.#timeRel[i]);
      out.seedMaxTimestamp(src.#maxTimestamp);
    }
    return out;
  }

  /** Approximate bytes of memory the entries take (the arrays' capacity). */
  get memoryBytes(): number {
    return this.#offRel.byteLength + this.#offPos.byteLength + this.#timeTs.byteLength + this.#timeRel.byteLength;
  }

  /** Drops entries at or past `position` (used when recovery truncates a tail). */
  truncateToPosition(position: number): void {
    while (this.#offCount > 0 && this.#offPos[this.#offCount - 1] >= position) this.#offCount--;
  }

  encode(summary: IndexFileSummary): Buffer {
    const size = HEADER_BYTES + this.#offCount * 8 + this.#timeCount * 12 + 4;
    const buf = Buffer.alloc(size);
    let p = 0;
    p = buf.writeUInt32BE(MAGIC, p);
    p = buf.writeUInt16BE(VERSION, p);
    p = buf.writeUInt16BE(0, p);
    p = buf.writeBigUInt64BE(BigInt(summary.segmentBytes), p);
    p = buf.writeBigInt64BE(summary.baseOffset, p);
    p = buf.writeBigInt64BE(summary.nextOffset, p);
    p = buf.writeBigInt64BE(summary.maxTimestamp, p);
    p = buf.writeUInt32BE(summary.dataCrc32c >>> 0, p);
    p = buf.writeUInt32BE(this.#offCount, p);
    p = buf.writeUInt32BE(this.#timeCount, p);
    for (let i = 0; i < this.#offCount; i++) {
      p = buf.writeUInt32BE(this.#offRel[i], p);
      p = buf.writeUInt32BE(this.#offPos[i], p);
    }
    for (let i = 0; i < this.#timeCount; i++) {
      p = buf.writeBigInt64BE(BigInt(this.#timeTs[i]), p);
      p = buf.writeUInt32BE(this.#timeRel[i], p);
    }
    buf.writeUInt32BE(crc32c(buf.subarray(0, p)), p);
    return buf;
  }

  /**
   * Parses the header of an index file (its first INDEX_HEADER_BYTES): what recovery needs
   * to trust a sealed segment without reading its entries. The entries' CRC is checked when
   * the whole file is loaded (`decode`), on the segment's first read. Null when the header
   * is not one of this version.
   */
  static decodeSummary(buf: Buffer): IndexFileSummary | null {
    if (buf.length < HEADER_BYTES) return null;
    if (buf.readUInt32BE(0) !== MAGIC || buf.readUInt16BE(4) !== VERSION) return null;
    return {
      segmentBytes: Number(buf.readBigUInt64BE(8)),
      baseOffset: buf.readBigInt64BE(16),
      nextOffset: buf.readBigInt64BE(24),
      maxTimestamp: buf.readBigInt64BE(32),
      dataCrc32c: buf.readUInt32BE(40),
    };
  }

  /** Parses an index file; returns null if it is truncated, corrupt or of another version. */
  static decode(buf: Buffer): { index: SegmentIndex; summary: IndexFileSummary } | null {
    if (buf.length < HEADER_BYTES + 4) return null;
    if (buf.readUInt32BE(0) !== MAGIC || buf.readUInt16BE(4) !== VERSION) return null;
    const offCount = buf.readUInt32BE(44);
    const timeCount = buf.readUInt32BE(48);
    const end = HEADER_BYTES + offCount * 8 + timeCount * 12;
    if (buf.length !== end + 4) return null;
    if (crc32c(buf.subarray(0, end)) !== buf.readUInt32BE(end)) return null;
    const summary: IndexFileSummary = {
      segmentBytes: Number(buf.readBigUInt64BE(8)),
      baseOffset: buf.readBigInt64BE(16),
      nextOffset: buf.readBigInt64BE(24),
      maxTimestamp: buf.readBigInt64BE(32),
      dataCrc32c: buf.readUInt32BE(40),
    };
    const index = new SegmentIndex();
    let p = HEADER_BYTES;
    for (let i = 0; i < offCount; i++, p += 8) index.addOffset(buf.readUInt32BE(p), buf.readUInt32BE(p + 4));
    for (let i = 0; i < timeCount; i++, p += 12) index.addTimestamp(Number(buf.readBigInt64BE(p)), buf.readUInt32BE(p + 8));
    return { index, summary };
  }
}

function grow<T extends Uint32Array | Float64Array>(a: T): T {
  const next = new (a.constructor as new (n: number) => T)(a.length * 2);
  next.set(a);
  return next;
}
