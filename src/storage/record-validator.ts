/**
 * Validates the records inside a RecordBatch v2 the way Kafka's LogValidator and
 * DefaultRecordBatch do, so that a batch whose CRC is right but whose contents are not
 * (compression bits over plain records, a corrupted length varint, flags Meridian does not
 * implement) is refused at the door instead of stopping every consumer of the partition.
 * `validateBatch` (record-batch.ts) has already checked magic, length and CRC.
 *
 * Record (Kafka DefaultRecord, magic 2):
 *   length: varint                  -- bytes after this field
 *   attributes: int8                -- unused in v2 (Kafka ignores it too)
 *   timestampDelta: varlong
 *   offsetDelta: varint             -- must equal the record's index
 *   keyLength: varint, key: bytes   -- -1 is a null key
 *   valueLength: varint, value: bytes
 *   headerCount: varint
 *   [headerKeyLength: varint (>= 0), headerKey, headerValueLength: varint (-1 null), value]
 * Varints are zig-zag, at most 5 bytes (varlong: 10), never with bits past 32 (64).
 *
 * Error codes: CORRUPT_BATCH for bytes that do not parse (varints, lengths, decompression,
 * a record count that does not match the records), INVALID_BATCH for well-formed input that
 * breaks a rule (attributes, producer fields, offset deltas), BATCH_TOO_LARGE for a record
 * above `maxRecordBytes`. A decompression bomb is CORRUPT_BATCH, as the config schema's
 * description of log.maxUncompressedBatchBytes promises.
 *
 * This runs on every produced batch: uncompressed records are walked in place with no
 * per-record allocation (no objects, no subarrays, no bigint until the end).
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { decompress } from './compression/decompress.js';
import { Attributes, BATCH_HEADER_BYTES, Codec, type BatchHeader } from './record-batch.js';

/** Why a batch was refused; `recordIndex` says which record, where one is to blame. */
export class RecordValidationError extends MeridianError {
  /** The record's index in the batch (what a Produce v8+ record_errors entry reports). */
  readonly recordIndex: number | null;

  constructor(code: ErrorCode, message: string, recordIndex: number | null, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'RecordValidationError';
    this.recordIndex = recordIndex;
  }
}

export interface RecordLimits {
  /** Largest single record, length prefix included. */
  readonly maxRecordBytes: number;
  /** Largest size a compressed batch's records may decompress to. */
  readonly maxUncompressedBytes: number;
  /** Control batches are the broker's own; only a caller that writes them sets this. */
  readonly allowControl?: boolean;
}

const BASE_TIMESTAMP_OFFSET = 27;
const MAX_TIMESTAMP_OFFSET = 35;

/** Attribute bits 6-15: bit 6 is the log cleaner's delete-horizon flag (KIP-534), the rest unused. */
const UNKNOWN_ATTRIBUTE_BITS = 0xffc0;

/**
 * Walks every record of `batch` and throws a RecordValidationError naming the rule and the
 * record at the first thing wrong. Returns the batch's true max timestamp: the largest record
 * timestamp (Kafka starts from NO_TIMESTAMP, -1), or the header's own with LogAppendTime set.
 * A header maxTimestamp that differs is not refused: the caller decides whether to rewrite it.
 */
export function validateRecords(batch: Buffer, h: BatchHeader, limits: RecordLimits): { maxTimestamp: bigint } {
  checkHeader(h, limits.allowControl ?? false);
  const codec = h.attributes & Attributes.codecMask;
  let records = batch;
  let start = BATCH_HEADER_BYTES;
  if (codec !== Codec.none) {
    try {
      records = decompress(codec, batch.subarray(BATCH_HEADER_BYTES), limits.maxUncompressedBytes);
    } catch (err) {
      const e = err as MeridianError;
      throw new RecordValidationError(ErrorCode.CorruptBatch, `compressed records: ${e.message}`, null, { cause: err });
    }
    start = 0;
  }
  // Timestamps are read as 32-bit halves from the batch itself (`h` is its header): bigint
  // arithmetic would cost more than the walk for a small batch.
  const walk = new RecordWalk(records, start, h, batch.readInt32BE(BASE_TIMESTAMP_OFFSET), batch.readUInt32BE(BASE_TIMESTAMP_OFFSET + 4), limits.maxRecordBytes, codec !== Codec.none);
  walk.run();
  if ((h.attributes & Attributes.timestampTypeLogAppend) !== 0) return { maxTimestamp: h.maxTimestamp };
  if (walk.maxTsHi === batch.readInt32BE(MAX_TIMESTAMP_OFFSET) && walk.maxTsLo === batch.readUInt32BE(MAX_TIMESTAMP_OFFSET + 4)) return { maxTimestamp: h.maxTimestamp };
  return { maxTimestamp: (BigInt(walk.maxTsHi) << 32n) + BigInt(walk.maxTsLo) };
}

function invalid(message: string): RecordValidationError {
  return new RecordValidationError(ErrorCode.InvalidBatch, message, null);
}

function checkHeader(h: BatchHeader, allowControl: boolean): void {
  const codec = h.attributes & Attributes.codecMask;
  if (codec > Codec.zstd) throw invalid(`attributes: compression codec ${codec} is not one of 0 (none), 1 (gzip), 2 (snappy), 3 (lz4), 4 (zstd)`);
  if ((h.attributes & Attributes.control) !== 0 && !allowControl) throw invalid('attributes: the control bit (0x20) is set; control batches are written by the broker, never produced');
  if ((h.attributes & Attributes.transactional) !== 0) throw invalid('attributes: the transactional bit (0x10) is set, but transactions are not supported');
  if ((h.attributes & UNKNOWN_ATTRIBUTE_BITS) !== 0) {
    throw invalid(`attributes: bits 0x${((h.attributes & UNKNOWN_ATTRIBUTE_BITS) >>> 0).toString(16)} are set; bit 6 (delete horizon) is the log cleaner's and bits 7-15 are unused`);
  }
  if (h.producerId < -1n) throw invalid(`producerId ${h.producerId} is invalid: it is -1 (no producer id) or >= 0`);
  if (h.producerId >= 0n && h.producerEpoch < 0) throw invalid(`producerEpoch ${h.producerEpoch} is invalid for producerId ${h.producerId}: an idempotent batch has an epoch >= 0`);
  if (h.producerId >= 0n && h.baseSequence < 0) throw invalid(`baseSequence ${h.baseSequence} is invalid for producerId ${h.producerId}: an idempotent batch has a sequence >= 0`);
  if (h.recordCount <= 0) throw invalid(`recordCount ${h.recordCount} is invalid: a batch holds at least one record`);
  if (h.lastOffsetDelta !== h.recordCount - 1) throw invalid(`lastOffsetDelta ${h.lastOffsetDelta} does not match recordCount ${h.recordCount} (expected ${h.recordCount - 1})`);
}

/**
 * One pass over a run of records held in `buf` from `start` to its end. The cursor and the
 * running max timestamp (as signed high / unsigned low 32-bit halves, so a 64-bit timestamp
 * costs no bigint per record) live in fields; nothing is allocated per record.
 */
class RecordWalk {
  readonly #buf: Buffer;
  readonly #end: number;
  readonly #count: number;
  readonly #maxRecordBytes: number;
  readonly #where: string;
  readonly #baseHi: number;
  readonly #baseLo: number;
  #pos: number;
  #index = 0;
  /** The header being read, for messages; -1 outside the headers. */
  #header = -1;
  // The varlong just read, zig-zag decoded, as two halves.
  #hi = 0;
  #lo = 0;
  /** Max record timestamp so far, starting from NO_TIMESTAMP (-1) as Kafka does. */
  maxTsHi = -1;
  maxTsLo = 0xffffffff;

  constructor(buf: Buffer, start: number, h: BatchHeader, baseHi: number, baseLo: number, maxRecordBytes: number, compressed: boolean) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = buf.length;
    this.#count = h.recordCount;
    this.#maxRecordBytes = maxRecordBytes;
    this.#where = compressed ? ' of the decompressed records' : '';
    this.#baseHi = baseHi;
    this.#baseLo = baseLo;
  }

  run(): void {
    while (this.#pos < this.#end) {
      if (this.#index === this.#count) {
        throw new RecordValidationError(ErrorCode.CorruptBatch, `${this.#end - this.#pos} bytes are left after the last of the ${this.#count} records the header declares${this.#where}`, null);
      }
      this.#record();
      this.#index++;
    }
    if (this.#index !== this.#count) {
      throw new RecordValidationError(ErrorCode.CorruptBatch, `the header declares ${this.#count} records but the batch${this.#where} holds ${this.#index}`, null);
    }
  }

  #fail(code: ErrorCode, detail: string): RecordValidationError {
    const field = this.#header >= 0 ? `header ${this.#header} ` : '';
    return new RecordValidationError(code, `record ${this.#index}${this.#where}: ${field}${detail}`, this.#index);
  }

  #record(): void {
    const first = this.#pos;
    const len = this.#varint(this.#end, 'record length');
    const body = this.#pos;
    if (len < 0) throw this.#fail(ErrorCode.CorruptBatch, `record length ${len} is negative`);
    if (body - first + len > this.#maxRecordBytes) {
      throw this.#fail(ErrorCode.BatchTooLarge, `record of ${body - first + len} bytes exceeds the maximum record size of ${this.#maxRecordBytes}`);
    }
    if (len > this.#end - body) throw this.#fail(ErrorCode.CorruptBatch, `record length ${len} runs past the end of the records (${this.#end - body} bytes remain)`);
    const end = body + len;
    if (this.#pos >= end) throw this.#fail(ErrorCode.CorruptBatch, `record length ${len} leaves no room for the attributes byte`);
    this.#pos++;
    this.#varlong(end, 'timestamp delta');
    this.#observeTimestamp();
    const offsetDelta = this.#varint(end, 'offset delta');
    if (offsetDelta !== this.#index) {
      throw this.#fail(ErrorCode.InvalidBatch, `offset delta ${offsetDelta} is not ${this.#index}: inner offsets must run consecutively from 0`);
    }
    this.#bytes(end, 'key', 'key length');
    this.#bytes(end, 'value', 'value length');
    const headers = this.#varint(end, 'header count');
    if (headers < 0) throw this.#fail(ErrorCode.CorruptBatch, `header count ${headers} is negative`);
    for (let j = 0; j < headers; j++) {
      this.#header = j;
      const keyLen = this.#varint(end, 'key length');
      if (keyLen < 0) throw this.#fail(ErrorCode.CorruptBatch, `key length ${keyLen} is negative: header keys are never null`);
      if (keyLen > end - this.#pos) throw this.#fail(ErrorCode.CorruptBatch, `key of ${keyLen} bytes runs past the end of the record`);
      this.#pos += keyLen;
      this.#bytes(end, 'value', 'value length');
    }
    this.#header = -1;
    if (this.#pos !== end) {
      throw this.#fail(ErrorCode.CorruptBatch, `record length ${len} declares ${end - this.#pos} more bytes than its fields use`);
    }
  }

  /**
   * A length-prefixed byte field: -1 (null) or a length that fits in the record. Both names
   * are literals so that no string is built unless something is wrong.
   */
  #bytes(end: number, field: string, lengthField: string): void {
    const n = this.#varint(end, lengthField);
    if (n < -1) throw this.#fail(ErrorCode.CorruptBatch, `${field} length ${n} is neither -1 (null) nor a byte count`);
    if (n > end - this.#pos) throw this.#fail(ErrorCode.CorruptBatch, `${field} of ${n} bytes runs past the end of the record (${end - this.#pos} bytes remain)`);
    if (n > 0) this.#pos += n;
  }

  /**
   * Zig-zag varint of at most 5 bytes and 32 bits, ending before `limit`. One and two bytes
   * (every field of a record up to 8 KiB) stay small enough for the optimizer to inline.
   */
  #varint(limit: number, field: string): number {
    const buf = this.#buf;
    const p = this.#pos;
    if (p + 1 < limit) {
      const b0 = buf[p];
      if (b0 < 0x80) {
        this.#pos = p + 1;
        return (b0 >>> 1) ^ -(b0 & 1);
      }
      const b1 = buf[p + 1];
      if (b1 < 0x80) {
        this.#pos = p + 2;
        const z = (b0 & 0x7f) | (b1 << 7);
        return (z >>> 1) ^ -(z & 1);
      }
    }
    return this.#varintSlow(limit, field);
  }

  #varintSlow(limit: number, field: string): number {
    const buf = this.#buf;
    let p = this.#pos;
    let z = 0;
    for (let shift = 0; ; shift += 7) {
      if (p >= limit) throw this.#fail(ErrorCode.CorruptBatch, `${field} varint is truncated`);
      const b = buf[p++];
      if (shift === 28 && b > 0x0f) throw this.#fail(ErrorCode.CorruptBatch, `${field} varint is longer than 5 bytes or exceeds 32 bits`);
      z |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    this.#pos = p;
    return (z >>> 1) ^ -(z & 1);
  }

  /** Zig-zag varlong of at most 10 bytes and 64 bits, into #hi (signed) and #lo (unsigned). */
  #varlong(limit: number, field: string): void {
    const buf = this.#buf;
    const p = this.#pos;
    if (p + 1 < limit) {
      const b0 = buf[p];
      const b1 = buf[p + 1];
      if (b0 < 0x80 || b1 < 0x80) {
        const z = b0 < 0x80 ? b0 : (b0 & 0x7f) | (b1 << 7);
        const v = (z >>> 1) ^ -(z & 1);
        this.#pos = p + (b0 < 0x80 ? 1 : 2);
        this.#hi = v >> 31;
        this.#lo = v >>> 0;
        return;
      }
    }
    this.#varlongSlow(limit, field);
  }

  #varlongSlow(limit: number, field: string): void {
    const buf = this.#buf;
    let p = this.#pos;
    let lo = 0;
    let hi = 0;
    for (let shift = 0; ; shift += 7) {
      if (p >= limit) throw this.#fail(ErrorCode.CorruptBatch, `${field} varlong is truncated`);
      const b = buf[p++];
      const v = b & 0x7f;
      if (shift < 28) {
        lo |= v << shift;
      } else if (shift === 28) {
        lo |= v << 28;
        hi = v >>> 4;
      } else if (shift < 63) {
        hi |= v << (shift - 32);
      } else if (b > 0x01) {
        throw this.#fail(ErrorCode.CorruptBatch, `${field} varlong is longer than 10 bytes or exceeds 64 bits`);
      } else {
        hi |= v << 31;
      }
      if (b < 0x80) break;
    }
    this.#pos = p;
    const negative = lo & 1;
    lo = (lo >>> 1) | (hi << 31);
    hi = hi >>> 1;
    if (negative) {
      lo = ~lo;
      hi = ~hi;
    }
    this.#hi = hi | 0;
    this.#lo = lo >>> 0;
  }

  /** timestamp = baseTimestamp + delta in 64-bit two's complement (Java long arithmetic). */
  #observeTimestamp(): void {
    const sum = this.#baseLo + this.#lo;
    const lo = sum >>> 0;
    const hi = (this.#baseHi + this.#hi + (sum > 0xffffffff ? 1 : 0)) | 0;
    if (hi > this.maxTsHi || (hi === this.maxTsHi && lo > this.maxTsLo)) {
      this.maxTsHi = hi;
      this.maxTsLo = lo;
    }
  }
}
