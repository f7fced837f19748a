/**
 * Encoding side of Kafka's primitive types (https://kafka.apache.org/protocol#protocol_types),
 * each method the mirror image of the Reader method of the same name (reader.ts has the
 * field-by-field grammar):
 *
 *   fixed width   INT8 INT16 INT32 UINT32 INT64 FLOAT64 BOOLEAN UUID, big-endian
 *   varints       UNSIGNED_VARINT (LEB128), VARINT / VARLONG (zig-zag, then LEB128)
 *   classic       STRING INT16 N | BYTES INT32 N | ARRAY INT32 N; -1 is null
 *   compact       UNSIGNED_VARINT N+1 then N bytes or items; 0 is null
 *   TAGGED_FIELDS UNSIGNED_VARINT count, then (UNSIGNED_VARINT tag, UNSIGNED_VARINT size, bytes)
 *
 * Values that cannot be represented (an int16 out of range, a 40 000-byte STRING, a
 * malformed UUID) throw RangeError/TypeError: they are bugs in the broker, not bad input from
 * a client, and must not be silently truncated onto the wire.
 */
const MAX_STRING_BYTES = 0x7fff;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * An append-only byte builder. The buffer starts small and doubles when full, so building a
 * response costs amortized O(n) copies whatever its final size. Single-owner, synchronous:
 * build one message, call toBuffer() (or toBuffers()), drop the writer.
 *
 * With `zeroCopyFrom`, a rawBytes/bytes value at least that large is not copied: the bytes
 * written so far and the value itself become chunks of the output (toBuffers()), which is
 * how a Fetch response carries megabytes of stored record batches to the socket without
 * copying them. Bytes handed out as chunks can no longer be patched with setInt32().
 */
export class Writer {
  #buf: Buffer;
  /** A view of #buf for 64-bit writes, made on first use and dropped when #buf is replaced. */
  #int64View: DataView | undefined;
  #pos = 0;
  readonly #zeroCopyFrom: number;
  #chunks: Buffer[] = [];
  /** Bytes already moved into #chunks. */
  #chunked = 0;

  constructor(initialCapacity = 64, options: { zeroCopyFrom?: number } = {}) {
    this.#buf = Buffer.allocUnsafe(Math.max(1, initialCapacity));
    this.#zeroCopyFrom = options.zeroCopyFrom ?? Infinity;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#chunked + this.#pos;
  }

  /**
   * The bytes written so far as one buffer: a view of the internal buffer (no copy) unless
   * zero-copy chunks were taken, in which case they are concatenated. Writing more
   * afterwards leaves the result intact, but patching a reserved int32 would show through.
   */
  toBuffer(): Buffer {
    if (this.#chunks.length === 0) return this.#buf.subarray(0, this.#pos);
    return Buffer.concat([...this.#chunks, this.#buf.subarray(0, this.#pos)]);
  }

  /** The bytes written so far as a list of buffers, without copying zero-copy values. */
  toBuffers(): Buffer[] {
    return this.#pos === 0 ? [...this.#chunks] : [...this.#chunks, this.#buf.subarray(0, this.#pos)];
  }

  int8(value: number): this {
    this.#ensure(1);
    this.#pos = this.#buf.writeInt8(value, this.#pos);
    return this;
  }

  int16(value: number): this {
    this.#ensure(2);
    this.#pos = this.#buf.writeInt16BE(value, this.#pos);
    return this;
  }

  int32(value: number): this {
    this.#ensure(4);
    this.#pos = this.#buf.writeInt32BE(value, this.#pos);
    return this;
  }

  uint32(value: number): this {
    this.#ensure(4);
    this.#pos = this.#buf.writeUInt32BE(value, this.#pos);
    return this;
  }

  int64(value: bigint): this {
    // DataView wraps out-of-range values silently; Buffer threw, and so does this.
    if (value < INT64_MIN || value > INT64_MAX) throw new RangeError(`INT64 out of range: ${value}`);
    this.#ensure(8);
    // Through a DataView: Buffer#writeBigInt64BE splits the value with BigInt shifts and
    // masks, allocating on every call (7 times slower; a Fetch answer for 10,000 partitions
    // writes 30,000 of them).
    (this.#int64View ??= new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.length)).setBigInt64(this.#pos, value);
    this.#pos += 8;
    return this;
  }

  float64(value: number): this {
    this.#ensure(8);
    this.#pos = this.#buf.writeDoubleBE(value, this.#pos);
    return this;
  }

  boolean(value: boolean): this {
    return this.int8(value ? 1 : 0);
  }

  /** UNSIGNED_VARINT, 0 ..= 2^32-1. */
  uvarint(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
      throw new RangeError(`UNSIGNED_VARINT out of range: ${value}`);
    }
    this.#ensure(5);
    const buf = this.#buf;
    let v = value;
    while (v >= 0x80) {
      buf[this.#pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.#pos++] = v;
    return this;
  }

  /** VARINT: zig-zag signed 32-bit. */
  varint(value: number): this {
    if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
      throw new RangeError(`VARINT out of range: ${value}`);
    }
    return this.uvarint(((value << 1) ^ (value >> 31)) >>> 0);
  }

  /** VARLONG: zig-zag signed 64-bit. */
  varlong(value: bigint): this {
    if (value < INT64_MIN || value > INT64_MAX) throw new RangeError(`VARLONG out of range: ${value}`);
    let u = BigInt.asUintN(64, (value << 1n) ^ (value >> 63n));
    if (u <= BigInt(UINT32_MAX)) return this.uvarint(Number(u));
    this.#ensure(10);
    const buf = this.#buf;
    while (u >= 0x80n) {
      buf[this.#pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    buf[this.#pos++] = Number(u);
    return this;
  }

  uuid(value: string): this {
    if (!UUID_PATTERN.test(value)) throw new TypeError(`Not a UUID: ${JSON.stringify(value)}`);
    this.#ensure(16);
    this.#pos += this.#buf.write(value.replaceAll('-', ''), this.#pos, 16, 'hex');
    return this;
  }

  string(value: string): this {
    const length = stringByteLength(value, 'STRING');
    this.int16(length);
    return this.#utf8(value, length);
  }

  nullableString(value: string | null): this {
    if (value === null) return this.int16(-1);
    return this.string(value);
  }

  compactString(value: string): this {
    const length = stringByteLength(value, 'COMPACT_STRING');
    this.uvarint(length + 1);
    return this.#utf8(value, length);
  }

  compactNullableString(value: string | null): this {
    if (value === null) return this.uvarint(0);
    return this.compactString(value);
  }

  bytes(value: Uint8Array): this {
    this.int32(value.length);
    return this.rawBytes(value);
  }

  nullableBytes(value: Uint8Array | null): this {
    if (value === null) return this.int32(-1);
    return this.bytes(value);
  }

  compactBytes(value: Uint8Array): this {
    this.uvarint(value.length + 1);
    return this.rawBytes(value);
  }

  compactNullableBytes(value: Uint8Array | null): this {
    if (value === null) return this.uvarint(0);
    return this.compactBytes(value);
  }

  /** Bytes with no length prefix (e.g. a record batch that already carries its own). */
  rawBytes(value: Uint8Array): this {
    if (value.length >= this.#zeroCopyFrom) {
      if (this.#pos > 0) this.#chunks.push(this.#buf.subarray(0, this.#pos));
      this.#chunks.push(Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.length));
      this.#chunked += this.#pos + value.length;
      // Later writes go to a fresh buffer, so the chunks handed out never change.
      this.#buf = Buffer.allocUnsafe(Math.max(256, this.#buf.length - this.#pos));
      this.#int64View = undefined;
      this.#pos = 0;
      return this;
    }
    this.#ensure(value.length);
    this.#buf.set(value, this.#pos);
    this.#pos += value.length;
    return this;
  }

  array<T>(items: readonly T[], writeItem: (writer: Writer, item: T) => void): this {
    this.int32(items.length);
    for (const item of items) writeItem(this, item);
    return this;
  }

  nullableArray<T>(items: readonly T[] | null, writeItem: (writer: Writer, item: T) => void): this {
    if (items === null) return this.int32(-1);
    return this.array(items, writeItem);
  }

  compactArray<T>(items: readonly T[], writeItem: (writer: Writer, item: T) => void): this {
    this.uvarint(items.length + 1);
    for (const item of items) writeItem(this, item);
    return this;
  }

  compactNullableArray<T>(items: readonly T[] | null, writeItem: (writer: Writer, item: T) => void): this {
    if (items === null) return this.uvarint(0);
    return this.compactArray(items, writeItem);
  }

  /**
   * Writes a tag buffer; with no argument, the empty one (a single 0 byte) that nearly every
   * flexible struct ends with. Tags go out in ascending order, as KIP-482 requires.
   */
  taggedFields(fields?: ReadonlyMap<number, Uint8Array>): this {
    if (fields === undefined || fields.size === 0) return this.uvarint(0);
    const tags = [...fields.keys()].sort((a, b) => a - b);
    this.uvarint(tags.length);
    for (const tag of tags) {
      const value = fields.get(tag) as Uint8Array;
      this.uvarint(tag).uvarint(value.length).rawBytes(value);
    }
    return this;
  }

  /** Writes a zero INT32 placeholder and returns its offset, for setInt32() to fill later. */
  reserveInt32(): number {
    const offset = this.length;
    this.int32(0);
    return offset;
  }

  setInt32(offset: number, value: number): this {
    const local = offset - this.#chunked;
    if (!Number.isInteger(offset) || local < 0 || local + 4 > this.#pos) {
      throw new RangeError(`No reserved INT32 at offset ${offset} (${this.length} bytes written, ${this.#chunked} handed out as chunks)`);
    }
    this.#buf.writeInt32BE(value, local);
    return this;
  }

  /**
   * Starts a size-prefixed section (a frame, a record batch): reserves the INT32 and returns
   * a mark for endLengthPrefix(), which fills in the number of bytes written after it.
   */
  beginLengthPrefix(): number {
    return this.reserveInt32();
  }

  endLengthPrefix(mark: number): this {
    return this.setInt32(mark, this.length - mark - 4);
  }

  #utf8(value: string, length: number): this {
    this.#ensure(length);
    this.#pos += this.#buf.write(value, this.#pos, length, 'utf8');
    return this;
  }

  #ensure(extra: number): void {
    const needed = this.#pos + extra;
    if (needed <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.#buf.length * 2));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
    this.#int64View = undefined;
  }
}

function stringByteLength(value: string, type: string): number {
  const length = Buffer.byteLength(value, 'utf8');
  if (length > MAX_STRING_BYTES) throw new RangeError(`${type} of ${length} bytes exceeds ${MAX_STRING_BYTES}`);
  return length;
}
