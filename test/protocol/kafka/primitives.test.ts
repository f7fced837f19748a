import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KafkaDecodeError } from '../../../src/protocol/kafka/codec-errors.js';
import { Reader } from '../../../src/protocol/kafka/reader.js';
import { Writer } from '../../../src/protocol/kafka/writer.js';

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const UINT32_MAX = 2 ** 32 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function encode(write: (w: Writer) => unknown): Buffer {
  const w = new Writer(1);
  write(w);
  return w.toBuffer();
}

/** Zig-zag and LEB128 straight from their definitions, as an oracle independent of the codec. */
function referenceZigZag(value: bigint): Buffer {
  let u = value >= 0n ? 2n * value : -2n * value - 1n;
  const out: number[] = [];
  do {
    const group = Number(u & 0x7fn);
    u >>= 7n;
    out.push(u > 0n ? group | 0x80 : group);
  } while (u > 0n);
  return Buffer.from(out);
}

function referenceUnsigned(value: number): Buffer {
  const out: number[] = [];
  let u = value;
  do {
    const group = u % 128;
    u = Math.floor(u / 128);
    out.push(u > 0 ? group | 0x80 : group);
  } while (u > 0);
  return Buffer.from(out);
}

describe('known byte vectors', () => {
  const varints: [number, string][] = [
    [0, '00'],
    [-1, '01'],
    [1, '02'],
    [-2, '03'],
    [2, '04'],
    [63, '7e'],
    [-64, '7f'],
    [64, '8001'],
    [300, 'd804'],
    [-300, 'd704'],
    [INT32_MAX, 'feffffff0f'],
    [INT32_MIN, 'ffffffff0f'],
  ];
  for (const [value, bytes] of varints) {
    it(`VARINT ${value} is ${bytes}`, () => {
      assert.deepEqual(encode((w) => w.varint(value)), hex(bytes));
      assert.equal(new Reader(hex(bytes)).varint(), value);
    });
  }

  const uvarints: [number, string][] = [
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [16384, '808001'],
    [UINT32_MAX, 'ffffffff0f'],
  ];
  for (const [value, bytes] of uvarints) {
    it(`UNSIGNED_VARINT ${value} is ${bytes}`, () => {
      assert.deepEqual(encode((w) => w.uvarint(value)), hex(bytes));
      assert.equal(new Reader(hex(bytes)).uvarint(), value);
    });
  }

  const varlongs: [bigint, string][] = [
    [0n, '00'],
    [-1n, '01'],
    [1n, '02'],
    [300n, 'd804'],
    [2n ** 31n, '8080808010'],
    [INT64_MAX, 'feffffffffffffffff01'],
    [INT64_MIN, 'ffffffffffffffffff01'],
  ];
  for (const [value, bytes] of varlongs) {
    it(`VARLONG ${value} is ${bytes}`, () => {
      assert.deepEqual(encode((w) => w.varlong(value)), hex(bytes));
      assert.equal(new Reader(hex(bytes)).varlong(), value);
    });
  }

  it('reads the same bytes differently as zig-zag and as unsigned', () => {
    assert.equal(new Reader(hex('01')).varint(), -1);
    assert.equal(new Reader(hex('01')).uvarint(), 1);
    assert.equal(new Reader(hex('ac02')).uvarint(), 300);
    assert.equal(new Reader(hex('ac02')).varint(), 150);
    assert.equal(new Reader(hex('d804')).varint(), 300);
    assert.equal(new Reader(hex('d804')).uvarint(), 600);
    assert.notDeepEqual(encode((w) => w.varint(300)), encode((w) => w.uvarint(300)));
  });

  it('encodes the fixed-width and length-prefixed types as Kafka does', () => {
    const cases: [string, (w: Writer) => unknown, string][] = [
      ['INT8 -1', (w) => w.int8(-1), 'ff'],
      ['INT16 -2', (w) => w.int16(-2), 'fffe'],
      ['INT32 1', (w) => w.int32(1), '00000001'],
      ['UINT32 max', (w) => w.uint32(UINT32_MAX), 'ffffffff'],
      ['INT64 -1', (w) => w.int64(-1n), 'ffffffffffffffff'],
      ['FLOAT64 1.5', (w) => w.float64(1.5), '3ff8000000000000'],
      ['BOOLEAN true', (w) => w.boolean(true), '01'],
      ['STRING abc', (w) => w.string('abc'), '0003616263'],
      ['NULLABLE_STRING null', (w) => w.nullableString(null), 'ffff'],
      ['STRING é (UTF-8, 2 bytes)', (w) => w.string('é'), '0002c3a9'],
      ['COMPACT_STRING librdkafka', (w) => w.compactString('librdkafka'), '0b6c696272646b61666b61'],
      ['COMPACT_STRING empty', (w) => w.compactString(''), '01'],
      ['COMPACT_NULLABLE_STRING null', (w) => w.compactNullableString(null), '00'],
      ['BYTES 0xaabb', (w) => w.bytes(hex('aabb')), '00000002aabb'],
      ['NULLABLE_BYTES null', (w) => w.nullableBytes(null), 'ffffffff'],
      ['COMPACT_BYTES 0xaa', (w) => w.compactBytes(hex('aa')), '02aa'],
      ['COMPACT_NULLABLE_BYTES null', (w) => w.compactNullableBytes(null), '00'],
      ['ARRAY [1,2] of INT32', (w) => w.array([1, 2], (w, x) => w.int32(x)), '000000020000000100000002'],
      ['NULLABLE ARRAY null', (w) => w.nullableArray(null, (w, x: number) => w.int32(x)), 'ffffffff'],
      ['COMPACT_ARRAY [7] of INT16', (w) => w.compactArray([7], (w, x) => w.int16(x)), '020007'],
      ['COMPACT_NULLABLE_ARRAY null', (w) => w.compactNullableArray(null, (w, x: number) => w.int16(x)), '00'],
      ['UUID', (w) => w.uuid('00112233-4455-6677-8899-aabbccddeeff'), '00112233445566778899aabbccddeeff'],
      ['empty TAG_BUFFER', (w) => w.taggedFields(), '00'],
      [
        'TAG_BUFFER sorted by tag',
        (w) => w.taggedFields(new Map([[5, hex('0102')], [0, hex('aa')]])),
        '02 00 01 aa 05 02 0102',
      ],
    ];
    for (const [name, write, bytes] of cases) assert.deepEqual(encode(write), hex(bytes), name);
  });
});

describe('varint property round trips', () => {
  const int32 = fc.oneof(
    fc.integer({ min: INT32_MIN, max: INT32_MAX }),
    fc.constantFrom(0, -1, 1, INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1, 63, -64, 64, -65),
  );
  const int64 = fc.oneof(
    fc.bigInt({ min: INT64_MIN, max: INT64_MAX }),
    fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }),
    fc.constantFrom(0n, -1n, 1n, INT64_MIN, INT64_MAX, INT64_MIN + 1n, INT64_MAX - 1n, 2n ** 48n, -(2n ** 48n) - 1n),
  );
  const uint32 = fc.oneof(fc.integer({ min: 0, max: UINT32_MAX }), fc.constantFrom(0, 127, 128, 2 ** 28, UINT32_MAX));

  it('VARINT matches the reference encoding and round-trips', () => {
    fc.assert(
      fc.property(int32, (value) => {
        const bytes = encode((w) => w.varint(value));
        assert.deepEqual(bytes, referenceZigZag(BigInt(value)));
        assert.ok(bytes.length <= 5);
        const r = new Reader(bytes);
        assert.equal(r.varint(), value);
        assert.equal(r.remaining, 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('VARLONG matches the reference encoding and round-trips', () => {
    fc.assert(
      fc.property(int64, (value) => {
        const bytes = encode((w) => w.varlong(value));
        assert.deepEqual(bytes, referenceZigZag(value));
        assert.ok(bytes.length <= 10);
        const r = new Reader(bytes);
        assert.equal(r.varlong(), value);
        assert.equal(r.remaining, 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('VARLONG and VARINT agree on every 32-bit value, as Kafka relies on', () => {
    fc.assert(
      fc.property(int32, (value) => {
        assert.deepEqual(encode((w) => w.varlong(BigInt(value))), encode((w) => w.varint(value)));
      }),
    );
  });

  it('UNSIGNED_VARINT matches the reference encoding and round-trips', () => {
    fc.assert(
      fc.property(uint32, (value) => {
        const bytes = encode((w) => w.uvarint(value));
        assert.deepEqual(bytes, referenceUnsigned(value));
        assert.equal(new Reader(bytes).uvarint(), value);
      }),
      { numRuns: 2000 },
    );
  });
});

/** One primitive: how to generate a value, write it, read it back. */
interface Codec<T> {
  readonly name: string;
  readonly arb: fc.Arbitrary<T>;
  write(w: Writer, value: T): void;
  read(r: Reader): T;
}

interface Op {
  readonly name: string;
  readonly expected: unknown;
  write(w: Writer): void;
  read(r: Reader): unknown;
}

function op<T>(codec: Codec<T>): fc.Arbitrary<Op> {
  return codec.arb.map((value) => ({
    name: codec.name,
    expected: value,
    write: (w: Writer) => codec.write(w, value),
    read: (r: Reader) => codec.read(r),
  }));
}

const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 10 }));
const bytes: fc.Arbitrary<Buffer> = fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u));
const int32Arb = fc.integer({ min: INT32_MIN, max: INT32_MAX });
const tags = fc
  .uniqueArray(fc.tuple(fc.integer({ min: 0, max: UINT32_MAX }), bytes), { selector: ([tag]) => tag, maxLength: 4 })
  .map((entries): ReadonlyMap<number, Buffer> => new Map(entries));

interface TopicStruct {
  name: string;
  partitions: number[];
}

/** Every primitive plus a flexible struct array, the shape most request bodies take. */
const ops: fc.Arbitrary<Op>[] = [
  op({ name: 'int8', arb: fc.integer({ min: -128, max: 127 }), write: (w, v) => w.int8(v), read: (r) => r.int8() }),
  op({ name: 'int16', arb: fc.integer({ min: -32768, max: 32767 }), write: (w, v) => w.int16(v), read: (r) => r.int16() }),
  op({ name: 'int32', arb: int32Arb, write: (w, v) => w.int32(v), read: (r) => r.int32() }),
  op({ name: 'uint32', arb: fc.integer({ min: 0, max: UINT32_MAX }), write: (w, v) => w.uint32(v), read: (r) => r.uint32() }),
  op({ name: 'int64', arb: fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), write: (w, v) => w.int64(v), read: (r) => r.int64() }),
  op({ name: 'float64', arb: fc.double(), write: (w, v) => w.float64(v), read: (r) => r.float64() }),
  op({ name: 'boolean', arb: fc.boolean(), write: (w, v) => w.boolean(v), read: (r) => r.boolean() }),
  op({ name: 'varint', arb: int32Arb, write: (w, v) => w.varint(v), read: (r) => r.varint() }),
  op({ name: 'varlong', arb: fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), write: (w, v) => w.varlong(v), read: (r) => r.varlong() }),
  op({ name: 'uvarint', arb: fc.integer({ min: 0, max: UINT32_MAX }), write: (w, v) => w.uvarint(v), read: (r) => r.uvarint() }),
  op({ name: 'uuid', arb: fc.uuid(), write: (w, v) => w.uuid(v), read: (r) => r.uuid() }),
  op({ name: 'string', arb: text, write: (w, v) => w.string(v), read: (r) => r.string() }),
  op({ name: 'nullableString', arb: fc.option(text), write: (w, v) => w.nullableString(v), read: (r) => r.nullableString() }),
  op({ name: 'compactString', arb: text, write: (w, v) => w.compactString(v), read: (r) => r.compactString() }),
  op({
    name: 'compactNullableString',
    arb: fc.option(text),
    write: (w, v) => w.compactNullableString(v),
    read: (r) => r.compactNullableString(),
  }),
  op({ name: 'bytes', arb: bytes, write: (w, v) => w.bytes(v), read: (r) => r.bytes() }),
  op({ name: 'nullableBytes', arb: fc.option(bytes), write: (w, v) => w.nullableBytes(v), read: (r) => r.nullableBytes() }),
  op({ name: 'compactBytes', arb: bytes, write: (w, v) => w.compactBytes(v), read: (r) => r.compactBytes() }),
  op({
    name: 'compactNullableBytes',
    arb: fc.option(bytes),
    write: (w, v) => w.compactNullableBytes(v),
    read: (r) => r.compactNullableBytes(),
  }),
  op({
    name: 'array<int32>',
    arb: fc.array(int32Arb, { maxLength: 10 }),
    write: (w, v) => w.array(v, (w, x) => w.int32(x)),
    read: (r) => r.array((r) => r.int32()),
  }),
  op({
    name: 'nullableArray<string>',
    arb: fc.option(fc.array(text, { maxLength: 5 })),
    write: (w, v) => w.nullableArray(v, (w, x) => w.string(x)),
    read: (r) => r.nullableArray((r) => r.string()),
  }),
  op({
    name: 'compactArray<varint>',
    arb: fc.array(int32Arb, { maxLength: 10 }),
    write: (w, v) => w.compactArray(v, (w, x) => w.varint(x)),
    read: (r) => r.compactArray((r) => r.varint()),
  }),
  op({
    name: 'compactNullableArray<compactString>',
    arb: fc.option(fc.array(text, { maxLength: 5 })),
    write: (w, v) => w.compactNullableArray(v, (w, x) => w.compactString(x)),
    read: (r) => r.compactNullableArray((r) => r.compactString()),
  }),
  op<TopicStruct[]>({
    name: 'compactArray<{name, [partition], tags}>',
    arb: fc.array(fc.record({ name: text, partitions: fc.array(int32Arb, { maxLength: 4 }) }, { noNullPrototype: true }), { maxLength: 4 }),
    write: (w, v) =>
      w.compactArray(v, (w, t) => {
        w.compactString(t.name).compactArray(t.partitions, (w, p) => w.int32(p)).taggedFields();
      }),
    read: (r) =>
      r.compactArray((r) => {
        const topic = { name: r.compactString(), partitions: r.compactArray((r) => r.int32()) };
        r.skipTaggedFields();
        return topic;
      }),
  }),
  op({ name: 'taggedFields', arb: tags, write: (w, v) => w.taggedFields(v), read: (r) => r.taggedFields() }),
];

const message = fc.array(fc.oneof(...ops), { minLength: 1, maxLength: 12 });

function writeAll(sequence: readonly Op[]): Buffer {
  const w = new Writer(1);
  for (const o of sequence) o.write(w);
  return w.toBuffer();
}

describe('primitive round trips (property)', () => {
  it('reads back every sequence of primitives it wrote, consuming exactly the bytes written', () => {
    fc.assert(
      fc.property(message, (sequence) => {
        const buf = writeAll(sequence);
        const r = new Reader(buf);
        for (const o of sequence) assert.deepStrictEqual(o.read(r), o.expected, o.name);
        assert.equal(r.remaining, 0);
        assert.equal(r.offset, buf.length);
      }),
      { numRuns: 500 },
    );
  });

  it('throws KafkaDecodeError, never RangeError, on every truncation of a valid message', () => {
    fc.assert(
      fc.property(message, (sequence) => {
        const buf = writeAll(sequence);
        for (let cut = 0; cut < buf.length; cut++) {
          const r = new Reader(buf.subarray(0, cut));
          assert.throws(
            () => {
              for (const o of sequence) o.read(r);
            },
            (error: unknown) => error instanceof KafkaDecodeError && error.code === 'KAFKA_DECODE',
            `cut at ${cut} of ${buf.length}`,
          );
        }
      }),
      { numRuns: 200 },
    );
  });

  it('either decodes random bytes or throws KafkaDecodeError', () => {
    // Only each op's read() matters here; the sampled value is ignored.
    const readers = ops.map((arb) => fc.sample(arb, 1)[0]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: readers.length - 1 }), (random, which) => {
        const r = new Reader(Buffer.from(random));
        try {
          readers[which].read(r);
        } catch (error) {
          assert.ok(error instanceof KafkaDecodeError, `${readers[which].name}: ${String(error)}`);
        }
        assert.ok(r.offset <= random.length);
      }),
      { numRuns: 5000 },
    );
  });
});
