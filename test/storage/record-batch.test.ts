import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  computeBatchCrc,
  decodeRecords,
  encodeBatch,
  readBatchHeader,
  setBaseOffset,
  validateBatch,
} from '../../src/storage/record-batch.js';
import { MeridianError } from '../../src/errors.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MeridianError);
    return { code: err.code, message: err.message };
  }
  assert.fail('expected an error');
};

test('encode then decode returns the same records, keys, values and headers', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          key: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null }),
          value: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
          headers: fc.array(fc.record({ key: fc.string({ maxLength: 10 }), value: fc.option(fc.uint8Array({ maxLength: 20 }), { nil: null }) }), { maxLength: 3 }),
          timestampDelta: fc.integer({ min: 0, max: 2 ** 40 }),
        }),
        { minLength: 1, maxLength: 20 },
      ),
      fc.bigInt({ min: 0n, max: 2n ** 60n }),
      (recs, baseOffset) => {
        const input = recs.map((r) => ({
          key: r.key && Buffer.from(r.key),
          value: r.value && Buffer.from(r.value),
          headers: r.headers.map((h) => ({ key: h.key, value: h.value && Buffer.from(h.value) })),
          timestampDelta: r.timestampDelta,
        }));
        const batch = encodeBatch({ records: input, baseTimestamp: 1000n });
        validateBatch(batch);
        setBaseOffset(batch, baseOffset);
        validateBatch(batch); // baseOffset is outside the CRC
        const out = decodeRecords(batch);
        assert.equal(out.length, input.length);
        out.forEach((r, i) => {
          assert.equal(r.offset, baseOffset + BigInt(i));
          assert.equal(r.timestamp, 1000n + BigInt(input[i].timestampDelta));
          assert.deepEqual(r.key, input[i].key);
          assert.deepEqual(r.value, input[i].value);
          assert.deepEqual(r.headers, input[i].headers);
        });
      },
    ),
    { numRuns: 200 },
  );
});

test('a flipped bit anywhere under the CRC is reported as corrupt', () => {
  const batch = encodeBatch({ records: [{ key: Buffer.from('k'), value: Buffer.from('hello world') }] });
  for (let byte = 21; byte < batch.length; byte++) {
    const copy = Buffer.from(batch);
    copy[byte] ^= 0x10;
    const e = code(() => validateBatch(copy));
    assert.ok(e.code === 'CORRUPT_BATCH' || e.code === 'INVALID_BATCH', `byte ${byte}: ${e.code}`);
    if (e.code === 'CORRUPT_BATCH') assert.match(e.message, /CRC-32C mismatch/);
  }
});

test('structural errors name the rule that failed', () => {
  const batch = encodeBatch({ records: [{ value: Buffer.from('v') }] });
  const badMagic = Buffer.from(batch);
  badMagic[16] = 1;
  assert.match(code(() => validateBatch(badMagic)).message, /magic is 1/);
  assert.match(code(() => validateBatch(batch.subarray(0, 40))).message, /shorter than the 61-byte/);
  assert.match(code(() => validateBatch(Buffer.concat([batch, Buffer.alloc(3)]))).message, /length field says/);
  assert.equal(code(() => validateBatch(batch, 10)).code, 'BATCH_TOO_LARGE');
  const badCount = Buffer.from(batch);
  badCount.writeInt32BE(5, 57);
  badCount.writeUInt32BE(computeBatchCrc(badCount), 17);
  assert.match(code(() => validateBatch(badCount)).message, /5 records but lastOffsetDelta 0/);
  const badCodec = Buffer.from(batch);
  badCodec.writeInt16BE(7, 21);
  badCodec.writeUInt32BE(computeBatchCrc(badCodec), 17);
  assert.match(code(() => validateBatch(badCodec)).message, /unknown compression codec 7/);
});

test('header fields read back as written', () => {
  const b = encodeBatch({ records: [{ value: null }, { value: Buffer.from('x'), timestampDelta: 7 }], baseTimestamp: 5n, producerId: 42n, producerEpoch: 3, baseSequence: 9 });
  const h = readBatchHeader(b);
  assert.equal(h.recordCount, 2);
  assert.equal(h.lastOffsetDelta, 1);
  assert.equal(h.maxTimestamp, 12n);
  assert.equal(h.producerId, 42n);
  assert.equal(h.producerEpoch, 3);
  assert.equal(h.baseSequence, 9);
});
