/**
 * Decoding side of Kafka's primitive types (https://kafka.apache.org/protocol#protocol_types):
 *
 *   INT8 INT16 INT32 INT64   big-endian two's complement (INT64 as bigint)
 *   UINT32                   big-endian unsigned
 *   FLOAT64                  IEEE 754 binary64, big-endian
 *   BOOLEAN                  INT8; 0 is false, anything else true
 *   UNSIGNED_VARINT          unsigned LEB128, at most 5 bytes (32 bits)
 *   VARINT / VARLONG         zig-zag, then LEB128; at most 5 / 10 bytes
 *   UUID                     16 bytes
 *   STRING                   INT16 N, then N bytes UTF-8 (N = -1 is null when nullable)
 *   COMPACT_STRING           UNSIGNED_VARINT N+1, then N bytes (0 is null when nullable)
 *   BYTES                    INT32 N, then N bytes (N = -1 is null when nullable)
 *   COMPACT_BYTES            UNSIGNED_VARINT N+1, then N bytes (0 is null when nullable)
 *   ARRAY                    INT32 N, then N items (N = -1 is null when nullable)
 *   COMPACT_ARRAY            UNSIGNED_VARINT N+1, then N items (0 is null when nullable)
 *   TAGGED_FIELDS            UNSIGNED_VARINT count, then count × (UNSIGNED_VARINT tag,
 *                            UNSIGNED_VARINT size, size bytes)
 *
 * Every read checks its bounds first and throws KafkaDecodeError, so a malformed frame from
 * one client fails that request instead of throwing Node's RangeError out of a Buffer
 * accessor or allocating whatever length the client claimed.
 */
import { KafkaDecodeError } from './codec-errors.js';

/** Raw tagged fields by tag. Values are views into the frame, not copies. */
export type TaggedFields = ReadonlyMap<number, Buffer>;

/** Shared by every empty tag buffer, so the common case allocates nothing. */
export const NO_TAGGED_FIELDS: TaggedFields = new Map();

/** Kafka's generated code rejects longer strings, compact or not (MessageDataGenerator). */
const MAX_STRING_BYTES = 0x7fff;

/**
 * A cursor over one buffer, normally one frame without its size prefix. Not reusable after
 * it has thrown: the cursor is left wherever the failing read stopped.
 *
 * BYTES values and tagged fields are returned as views into the underlying buffer (zero
 * copy); a caller that keeps them beyond the life of the frame should copy them.
 *
 * Each read takes an optional `field` label that only appears in error messages.
 */
export class Reader {
  readonly #buf: Buffer;
  /** A view of #buf for 64-bit reads, made on first use. */
  #int64View: DataView | undefined;
  #pos: number;

  constructor(buffer: Buffer, offset = 0) {
    if (!Number.isInteger(offset) || offset < 0 || offset > buffer.length) {
      throw new RangeError(`Reader offset ${offset} is outside a buffer of ${buffer.length} bytes`);
    }
    this.#buf = buffer;
    this.#pos = offset;
  }

  /** Position of the next byte to read, from the start of the buffer. */
  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  int8(field?: string): number {
    return this.#buf.readInt8(this.#take(1, 'INT8', field));
  }

  int16(field?: string): number {
    return this.#buf.readInt16BE(this.#take(2, 'INT16', field));
  }

  int32(field?: string): number {
    return this.#buf.readInt32BE(this.#take(4, 'INT32', field));
  }

  uint32(field?: string): number {
    return this.#buf.readUInt32BE(this.#take(4, 'UINT32', field));
  }

  int64(field?: string): bigint {
    // Through a DataView: Buffer#readBigInt64BE assembles the value from BigInt shifts,
    // allocating several per call (twice as slow).
    const at = this.#take(8, 'INT64', field);
    return (this.#int64View ??= new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.length)).getBigInt64(at);
  }

  float64(field?: string): number {
    return this.#buf.readDoubleBE(this.#take(8, 'FLOAT64', field));
  }

  boolean(field?: string): boolean {
    return this.#buf[this.#take(1, 'BOOLEAN', field)] !== 0;
  }

  /** UNSIGNED_VARINT: 0 ..= 2^32-1, not zig-zag. Used for compact lengths and tags. */
  uvarint(field?: string): number {
    return this.#unsigned32('UNSIGNED_VARINT', field);
  }

  /** VARINT: zig-zag signed 32-bit, as in record headers and record fields. */
  varint(field?: string): number {
    const u = this.#unsigned32('VARINT', field);
    return (u >>> 1) ^ -(u & 1);
  }

  /** VARLONG: zig-zag signed 64-bit. */
  varlong(field?: string): bigint {
    const buf = this.#buf;
    const start = this.#pos;
    // The first 7 groups (49 bits) stay exact in a double, so the bigint path is only taken
    // for values that really need it (timestamp deltas are usually small).
    let low = 0;
    let high = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= buf.length) throw truncated('VARLONG', field, start, i + 1, buf.length - start);
      const b = buf[this.#pos++];
      if (i === 9 && b > 0x01) {
        throw new KafkaDecodeError(`${label('VARLONG', field)} at offset ${start} is longer than 64 bits`, start);
      }
      if (i < 7) low += (b & 0x7f) * 2 ** (7 * i);
      else high |= BigInt(b & 0x7f) << BigInt(7 * (i - 7));
      if ((b & 0x80) === 0) {
        if (i < 7) return BigInt(low % 2 === 0 ? low / 2 : -(low + 1) / 2);
        const u = (high << 49n) | BigInt(low);
        return (u >> 1n) ^ -(u & 1n);
      }
    }
    // Unreachable: the 10th byte either ends the varlong or fails the 64-bit check above.
    throw new KafkaDecodeError(`${label('VARLONG', field)} at offset ${start} is malformed`, start);
  }

  /** 16 raw bytes as a lowercase 8-4-4-4-12 hex string, so UUIDs compare with === and key maps. */
  uuid(field?: string): string {
    const start = this.#take(16, 'UUID', field);
    const hex = this.#buf.toString('hex', start, start + 16);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  string(field?: string): string {
    const start = this.#pos;
    const length = this.#buf.readInt16BE(this.#take(2, 'STRING length', field));
    if (length < 0) throw badLength('STRING', field, start, length);
    return this.#utf8(length, 'STRING', field);
  }

  nullableString(field?: string): string | null {
    const start = this.#pos;
    const length = this.#buf.readInt16BE(this.#take(2, 'NULLABLE_STRING length', field));
    if (length === -1) return null;
    if (length < 0) throw badLength('NULLABLE_STRING', field, start, length);
    return this.#utf8(length, 'NULLABLE_STRING', field);
  }

  compactString(field?: string): string {
    const start = this.#pos;
    const n = this.#unsigned32('COMPACT_STRING length', field);
    if (n === 0 || n - 1 > MAX_STRING_BYTES) throw badLength('COMPACT_STRING', field, start, n - 1);
    return this.#utf8(n - 1, 'COMPACT_STRING', field);
  }

  compactNullableString(field?: string): string | null {
    const start = this.#pos;
    const n = this.#unsigned32('COMPACT_NULLABLE_STRING length', field);
    if (n === 0) return null;
    if (n - 1 > MAX_STRING_BYTES) throw badLength('COMPACT_NULLABLE_STRING', field, start, n - 1);
    return this.#utf8(n - 1, 'COMPACT_NULLABLE_STRING', field);
  }

  bytes(field?: string): Buffer {
    const start = this.#pos;
    const length = this.#buf.readInt32BE(this.#take(4, 'BYTES length', field));
    if (length < 0) throw badLength('BYTES', field, start, length);
    return this.#view(length, 'BYTES', field);
  }

  nullableBytes(field?: string): Buffer | null {
    const start = this.#pos;
    const length = this.#buf.readInt32BE(this.#take(4, 'NULLABLE_BYTES length', field));
    if (length === -1) return null;
    if (length < 0) throw badLength('NULLABLE_BYTES', field, start, length);
    return this.#view(length, 'NULLABLE_BYTES', field);
  }

  compactBytes(field?: string): Buffer {
    const start = this.#pos;
    const n = this.#unsigned32('COMPACT_BYTES length', field);
    if (n === 0) throw badLength('COMPACT_BYTES', field, start, -1);
    return this.#view(n - 1, 'COMPACT_BYTES', field);
  }

  compactNullableBytes(field?: string): Buffer | null {
    const n = this.#unsigned32('COMPACT_NULLABLE_BYTES length', field);
    if (n === 0) return null;
    return this.#view(n - 1, 'COMPACT_NULLABLE_BYTES', field);
  }

  /** Exactly `length` bytes with no length prefix (e.g. a record batch body), as a view. */
  rawBytes(length: number, field?: string): Buffer {
    return this.#view(length, 'RAW_BYTES', field);
  }

  skip(length: number, field?: string): void {
    this.#take(length, 'SKIP', field);
  }

  array<T>(readItem: (reader: Reader) => T, field?: string): T[] {
    const start = this.#pos;
    const count = this.#buf.readInt32BE(this.#take(4, 'ARRAY count', field));
    if (count < 0) throw badLength('ARRAY', field, start, count);
    return this.#items(count, start, 'ARRAY', readItem, field);
  }

  nullableArray<T>(readItem: (reader: Reader) => T, field?: string): T[] | null {
    const start = this.#pos;
    const count = this.#buf.readInt32BE(this.#take(4, 'NULLABLE_ARRAY count', field));
    if (count === -1) return null;
    if (count < 0) throw badLength('NULLABLE_ARRAY', field, start, count);
    return this.#items(count, start, 'NULLABLE_ARRAY', readItem, field);
  }

  compactArray<T>(readItem: (reader: Reader) => T, field?: string): T[] {
    const start = this.#pos;
    const n = this.#unsigned32('COMPACT_ARRAY count', field);
    if (n === 0) throw badLength('COMPACT_ARRAY', field, start, -1);
    return this.#items(n - 1, start, 'COMPACT_ARRAY', readItem, field);
  }

  compactNullableArray<T>(readItem: (reader: Reader) => T, field?: string): T[] | null {
    const start = this.#pos;
    const n = this.#unsigned32('COMPACT_NULLABLE_ARRAY count', field);
    if (n === 0) return null;
    return this.#items(n - 1, start, 'COMPACT_NULLABLE_ARRAY', readItem, field);
  }

  /**
   * Reads a tag buffer and returns its fields. Brokers must accept tags they do not know
   * (KIP-482), so nothing here rejects a tag; callers pick out the ones they understand.
   */
  taggedFields(field?: string): TaggedFields {
    const count = this.#tagCount(field);
    if (count === 0) return NO_TAGGED_FIELDS;
    const fields = new Map<number, Buffer>();
    for (let i = 0; i < count; i++) {
      const tag = this.#unsigned32('TAGGED_FIELDS tag', field);
      const size = this.#unsigned32('TAGGED_FIELDS size', field);
      fields.set(tag, this.#view(size, 'TAGGED_FIELDS value', field));
    }
    return fields;
  }

  /** Reads a tag buffer and drops it, for the many structs whose tags Meridian ignores. */
  skipTaggedFields(field?: string): void {
    const count = this.#tagCount(field);
    for (let i = 0; i < count; i++) {
      this.#unsigned32('TAGGED_FIELDS tag', field);
      const size = this.#unsigned32('TAGGED_FIELDS size', field);
      this.#take(size, 'TAGGED_FIELDS value', field);
    }
  }

  #tagCount(field: string | undefined): number {
    const start = this.#pos;
    const count = this.#unsigned32('TAGGED_FIELDS count', field);
    // Each field needs at least a tag byte and a size byte.
    if (count > this.remaining / 2) {
      throw new KafkaDecodeError(
        `${label('TAGGED_FIELDS', field)} at offset ${start} claims ${count} fields but only ${this.remaining} bytes remain`,
        start,
      );
    }
    return count;
  }

  #items<T>(count: number, start: number, type: string, readItem: (reader: Reader) => T, field?: string): T[] {
    // Every item of every Kafka array takes at least one byte, so a count beyond the bytes
    // left is a lie; rejecting it here keeps a 4-byte frame from allocating a 2^31 array.
    if (count > this.remaining) {
      throw new KafkaDecodeError(
        `${label(type, field)} at offset ${start} claims ${count} items but only ${this.remaining} bytes remain`,
        start,
      );
    }
    const items: T[] = [];
    for (let i = 0; i < count; i++) items.push(readItem(this));
    return items;
  }

  #unsigned32(type: string, field: string | undefined): number {
    const buf = this.#buf;
    const start = this.#pos;
    let result = 0;
    for (let i = 0; i < 5; i++) {
      if (this.#pos >= buf.length) throw truncated(type, field, start, i + 1, buf.length - start);
      const b = buf[this.#pos++];
      // The 5th byte carries bits 28..31 only; more means an overlong or >32-bit value.
      if (i === 4 && b > 0x0f) {
        throw new KafkaDecodeError(`${label(type, field)} at offset ${start} is longer than 32 bits`, start);
      }
      result |= (b & 0x7f) << (7 * i);
      if ((b & 0x80) === 0) break;
    }
    return result >>> 0;
  }

  #utf8(length: number, type: string, field: string | undefined): string {
    const start = this.#take(length, type, field);
    return this.#buf.toString('utf8', start, start + length);
  }

  #view(length: number, type: string, field: string | undefined): Buffer {
    const start = this.#take(length, type, field);
    return this.#buf.subarray(start, start + length);
  }

  /** Claims `length` bytes and returns where they start; the one bounds check of the class. */
  #take(length: number, type: string, field: string | undefined): number {
    const start = this.#pos;
    const left = this.#buf.length - start;
    if (!(length <= left)) throw truncated(type, field, start, length, left);
    if (!Number.isInteger(length) || length < 0) throw badLength(type, field, start, length);
    this.#pos = start + length;
    return start;
  }
}

function label(type: string, field: string | undefined): string {
  return field === undefined ? type : `${type} (${field})`;
}

function truncated(type: string, field: string | undefined, offset: number, need: number, left: number): KafkaDecodeError {
  return new KafkaDecodeError(
    `Truncated ${label(type, field)} at offset ${offset}: needs ${need} bytes but only ${left} remain`,
    offset,
  );
}

function badLength(type: string, field: string | undefined, offset: number, length: number): KafkaDecodeError {
  const message =
    length === -1
      ? `Null ${label(type, field)} at offset ${offset}, but the field is not nullable`
      : `Invalid length ${length} for ${label(type, field)} at offset ${offset}`;
  return new KafkaDecodeError(message, offset);
}
