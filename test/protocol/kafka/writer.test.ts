import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Reader } from '../../../src/protocol/kafka/reader.js';
import { Writer } from '../../../src/protocol/kafka/writer.js';

describe('Writer', () => {
  it('grows from a tiny buffer without losing bytes', () => {
    const w = new Writer(1);
    for (let i = 0; i < 10_000; i++) w.int32(i);
    const buf = w.toBuffer();
    assert.equal(buf.length, 40_000);
    assert.equal(w.length, 40_000);
    const r = new Reader(buf);
    for (let i = 0; i < 10_000; i++) assert.equal(r.int32(), i);
  });

  it('fills a reserved length prefix with the size of what follows it', () => {
    const w = new Writer(2);
    const mark = w.beginLengthPrefix();
    w.int32(7).compactString('librdkafka').taggedFields();
    w.endLengthPrefix(mark);
    const buf = w.toBuffer();
    assert.equal(buf.readInt32BE(0), buf.length - 4);
    assert.equal(buf.length - 4, 4 + 11 + 1);
  });

  it('patches a reserved INT32 anywhere, and only where something was written', () => {
    const w = new Writer();
    w.int8(1);
    const at = w.reserveInt32();
    w.int8(2);
    w.setInt32(at, -5);
    assert.deepEqual(w.toBuffer(), Buffer.from([1, 0xff, 0xff, 0xff, 0xfb, 2]));
    assert.throws(() => w.setInt32(3, 0), RangeError);
  });

  it('refuses values the wire type cannot carry instead of truncating them', () => {
    const w = new Writer();
    assert.throws(() => w.int8(128), RangeError);
    assert.throws(() => w.int16(40_000), RangeError);
    assert.throws(() => w.int32(2 ** 31), RangeError);
    assert.throws(() => w.uint32(-1), RangeError);
    assert.throws(() => w.int64(2n ** 63n), RangeError);
    assert.throws(() => w.uvarint(-1), RangeError);
    assert.throws(() => w.uvarint(2 ** 32), RangeError);
    assert.throws(() => w.uvarint(1.5), RangeError);
    assert.throws(() => w.varint(2 ** 31), RangeError);
    assert.throws(() => w.varlong(-(2n ** 63n) - 1n), RangeError);
    assert.throws(() => w.string('x'.repeat(32_768)), RangeError);
    assert.throws(() => w.compactString('é'.repeat(16_384)), RangeError);
    assert.throws(() => w.uuid('not-a-uuid'), TypeError);
    assert.equal(w.length, 0);
  });

  it('writes the longest STRING Kafka allows', () => {
    const value = 'x'.repeat(32_767);
    assert.equal(new Reader(new Writer().string(value).toBuffer()).string(), value);
  });
});
