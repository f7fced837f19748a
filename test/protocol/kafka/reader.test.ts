import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MeridianError } from '../../../src/errors.js';
import { KafkaDecodeError } from '../../../src/protocol/kafka/codec-errors.js';
import { Reader } from '../../../src/protocol/kafka/reader.js';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

function decodeError(pattern: RegExp, offset?: number) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof KafkaDecodeError, `expected KafkaDecodeError, got ${String(error)}`);
    assert.ok(error instanceof MeridianError);
    assert.equal(error.code, 'KAFKA_DECODE');
    assert.equal(error.retriable, false);
    assert.match(error.message, pattern);
    if (offset !== undefined) assert.equal(error.offset, offset);
    return true;
  };
}

describe('Reader errors', () => {
  it('names the type, the field and the offset of a truncated read', () => {
    const r = new Reader(hex('0012 0003 0000'));
    r.int16();
    r.int16();
    assert.throws(() => r.int32('correlation_id'), decodeError(/INT32 \(correlation_id\) at offset 4: needs 4 bytes but only 2 remain/, 4));
  });

  it('rejects every fixed-width read past the end', () => {
    const empty = new Reader(Buffer.alloc(0));
    for (const read of [
      () => empty.int8(),
      () => empty.int16(),
      () => empty.int32(),
      () => empty.uint32(),
      () => empty.int64(),
      () => empty.float64(),
      () => empty.boolean(),
      () => empty.uuid(),
      () => empty.uvarint(),
      () => empty.varint(),
      () => empty.varlong(),
      () => empty.taggedFields(),
      () => empty.skipTaggedFields(),
      () => empty.rawBytes(1),
      () => empty.skip(1),
    ]) {
      assert.throws(read, decodeError(/offset 0/, 0));
    }
  });

  it('rejects a string or bytes length beyond the frame without allocating it', () => {
    assert.throws(() => new Reader(hex('7fff 61')).string('topic'), decodeError(/STRING \(topic\) at offset 2: needs 32767 bytes but only 1 remain/));
    assert.throws(() => new Reader(hex('7fffffff 00')).bytes(), decodeError(/BYTES at offset 4: needs 2147483647 bytes/));
    assert.throws(() => new Reader(hex('ffffffff0f')).compactBytes(), decodeError(/COMPACT_BYTES/));
  });

  it('rejects null where the field is not nullable, and negative lengths other than -1', () => {
    assert.throws(() => new Reader(hex('ffff')).string('group_id'), decodeError(/Null STRING \(group_id\) at offset 0, but the field is not nullable/));
    assert.throws(() => new Reader(hex('fffe')).nullableString(), decodeError(/Invalid length -2 for NULLABLE_STRING/));
    assert.throws(() => new Reader(hex('00')).compactString(), decodeError(/Null COMPACT_STRING/));
    assert.throws(() => new Reader(hex('ffffffff')).bytes(), decodeError(/Null BYTES/));
    assert.throws(() => new Reader(hex('fffffffe')).nullableBytes(), decodeError(/Invalid length -2 for NULLABLE_BYTES/));
    assert.throws(() => new Reader(hex('00')).compactBytes(), decodeError(/Null COMPACT_BYTES/));
    assert.throws(() => new Reader(hex('ffffffff')).array((r) => r.int8()), decodeError(/Null ARRAY/));
    assert.throws(() => new Reader(hex('80000000')).nullableArray((r) => r.int8()), decodeError(/Invalid length -2147483648/));
    assert.throws(() => new Reader(hex('00')).compactArray((r) => r.int8()), decodeError(/Null COMPACT_ARRAY/));
  });

  it('rejects compact strings longer than Kafka allows (32767 bytes) even when the bytes are there', () => {
    const frame = Buffer.concat([hex('818002'), Buffer.alloc(32768, 0x61)]);
    assert.throws(() => new Reader(frame).compactString(), decodeError(/Invalid length 32768 for COMPACT_STRING/));
    const ok = Buffer.concat([hex('808002'), Buffer.alloc(32767, 0x61)]);
    assert.equal(new Reader(ok).compactString().length, 32767);
  });

  it('rejects absurd array counts before reading or allocating a single item', () => {
    let calls = 0;
    const readItem = (r: Reader): number => {
      calls++;
      return r.int8();
    };
    assert.throws(
      () => new Reader(hex('7fffffff 01020304')).array(readItem, 'topics'),
      decodeError(/ARRAY \(topics\) at offset 0 claims 2147483647 items but only 4 bytes remain/, 0),
    );
    assert.throws(() => new Reader(hex('00000005 01020304')).nullableArray(readItem), decodeError(/claims 5 items/));
    assert.throws(() => new Reader(hex('ffffffff0f 0102')).compactArray(readItem), decodeError(/claims 4294967294 items/));
    assert.throws(() => new Reader(hex('06 0102')).compactNullableArray(readItem), decodeError(/claims 5 items/));
    assert.equal(calls, 0);
  });

  it('rejects absurd tagged-field counts and sizes', () => {
    assert.throws(() => new Reader(hex('ffffffff0f 0000')).taggedFields(), decodeError(/TAGGED_FIELDS at offset 0 claims 4294967295 fields/));
    assert.throws(() => new Reader(hex('02 0000')).skipTaggedFields(), decodeError(/claims 2 fields but only 2 bytes remain/));
    assert.throws(() => new Reader(hex('01 00 7f 00')).taggedFields(), decodeError(/TAGGED_FIELDS value/));
  });

  it('rejects varints that are overlong or wider than their type', () => {
    assert.throws(() => new Reader(hex('ffffffffff01')).uvarint(), decodeError(/UNSIGNED_VARINT at offset 0 is longer than 32 bits/));
    assert.throws(() => new Reader(hex('ffffffff10')).varint(), decodeError(/VARINT at offset 0 is longer than 32 bits/));
    assert.throws(() => new Reader(hex('ffffffffffffffffff02')).varlong(), decodeError(/VARLONG at offset 0 is longer than 64 bits/));
    assert.throws(() => new Reader(hex('ffffffffffffffffffff01')).varlong(), decodeError(/longer than 64 bits/));
    assert.throws(() => new Reader(hex('8080')).varint('delta'), decodeError(/Truncated VARINT \(delta\) at offset 0/));
    assert.throws(() => new Reader(hex('80808080808080')).varlong(), decodeError(/Truncated VARLONG/));
  });

  it('accepts non-minimal varints, as Kafka does', () => {
    assert.equal(new Reader(hex('8100')).uvarint(), 1);
    assert.equal(new Reader(hex('8280808000')).varint(), 1);
    assert.equal(new Reader(hex('82808080808080808000')).varlong(), 1n);
  });

  it('treats any non-zero BOOLEAN byte as true', () => {
    assert.equal(new Reader(hex('02')).boolean(), true);
    assert.equal(new Reader(hex('00')).boolean(), false);
  });

  it('returns BYTES and tagged fields as views of the frame', () => {
    const frame = hex('00000002 aabb 01 03 01 cc');
    const r = new Reader(frame);
    const value = r.bytes();
    const tags = r.taggedFields();
    assert.equal(value.buffer, frame.buffer);
    assert.deepEqual(value, hex('aabb'));
    assert.deepEqual([...tags], [[3, hex('cc')]]);
    assert.equal(tags.get(3)?.buffer, frame.buffer);
    assert.equal(r.remaining, 0);
  });

  it('reads relative to a start offset and never past the view it was given', () => {
    const backing = hex('ffff 0003 616263 ffffffff');
    const r = new Reader(backing.subarray(0, 7), 2);
    assert.equal(r.offset, 2);
    assert.equal(r.string(), 'abc');
    assert.equal(r.remaining, 0);
    assert.throws(() => r.int32(), decodeError(/offset 7: needs 4 bytes but only 0 remain/));
    assert.throws(() => new Reader(backing, backing.length + 1), RangeError);
  });

  it('reads a UUID as lowercase 8-4-4-4-12 hex', () => {
    assert.equal(new Reader(hex('00112233445566778899AABBCCDDEEFF')).uuid(), '00112233-4455-6677-8899-aabbccddeeff');
  });
});
