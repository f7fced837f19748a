/**
 * The int64 helpers (src/storage/int64.ts) against Buffer's own BigInt methods: the same
 * bytes written, the same value read, for every int64 (edges, and random values of every
 * magnitude), at any position, and the same refusal of what is out of range.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { readInt64BE, writeInt64BE } from '../../src/storage/int64.js';

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const edges = [0n, 1n, -1n, 2n ** 32n - 1n, 2n ** 32n, -(2n ** 32n), -(2n ** 32n) - 1n, SAFE, SAFE + 1n, -SAFE, -SAFE - 1n, -SAFE - 2n, 2n ** 53n, -(2n ** 53n), MIN, MAX, MIN + 1n, MAX - 1n];
// Values of every magnitude: a random bit length, then a random value of it, either sign.
const anyInt64 = fc.oneof(fc.constantFrom(...edges), fc.bigInt({ min: MIN, max: MAX }), fc.integer({ min: 0, max: 63 }).chain((bits) => fc.bigInt({ min: -(2n ** BigInt(bits)), max: 2n ** BigInt(bits) - 1n })));

test('writes the bytes Buffer#writeBigInt64BE writes, and reads back what Buffer#readBigInt64BE reads', () => {
  fc.assert(
    fc.property(anyInt64, fc.integer({ min: 0, max: 16 }), (value, pos) => {
      const ours = Buffer.alloc(24, 0xa5);
      const theirs = Buffer.alloc(24, 0xa5);
      writeInt64BE(ours, value, pos);
      theirs.writeBigInt64BE(value, pos);
      assert.deepEqual(ours, theirs, `bytes of ${value} at ${pos}`);
      assert.equal(readInt64BE(theirs, pos), value);
      assert.equal(readInt64BE(theirs, pos), theirs.readBigInt64BE(pos));
    }),
    { numRuns: 20_000 },
  );
});

test('every 8 random bytes read as Buffer reads them', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (bytes) => {
      const b = Buffer.from(bytes);
      assert.equal(readInt64BE(b, 0), b.readBigInt64BE(0));
    }),
    { numRuns: 20_000 },
  );
});

test('out of range: refused as Buffer refuses, nothing written', () => {
  for (const [value, pos] of [[MAX + 1n, 0], [MIN - 1n, 0], [0n, 17], [0n, -1]] as const) {
    const b = Buffer.alloc(24, 0xa5);
    assert.throws(() => writeInt64BE(b, value, pos), RangeError, `${value} at ${pos}`);
    assert.deepEqual(b, Buffer.alloc(24, 0xa5), `nothing written for ${value} at ${pos}`);
    assert.throws(() => Buffer.alloc(24).writeBigInt64BE(value, pos), RangeError);
  }
  assert.throws(() => readInt64BE(Buffer.alloc(24), 17), RangeError);
});
