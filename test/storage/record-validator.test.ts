/**
 * validateRecords: every rule refused with its error code and a message naming the rule
 * (and the record), valid batches of every codec accepted with the right max timestamp,
 * and a property over thousands of mutated batches: each is either refused with a
 * MeridianError or decodes, in record-batch.ts's decoder and in KafkaJS's own, to exactly
 * what the validator walked.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import {
  Attributes,
  BATCH_HEADER_BYTES,
  decodeRecords,
  encodeBatch,
  readBatchHeader,
  setMaxTimestamp,
  validateBatch,
  varintBytes,
  type BatchInput,
  type RecordInput,
} from '../../src/storage/record-batch.js';
import { RecordValidationError, validateRecords, type RecordLimits } from '../../src/storage/record-validator.js';
import { applyEdits, compressBatch, editArb, gzipBatch, kafkaJsHeaders, plainView, recordArb, reseal } from '../helpers/batch-mutations.js';

const require = createRequire(import.meta.url);
const snappyjs = require('snappyjs') as { compress(b: Buffer): Buffer };
const lz4js = require('lz4js') as { compress(b: Buffer): Uint8Array };
const KafkaJSDecoder = require('kafkajs/src/protocol/decoder') as new (b: Buffer) => unknown;
const decodeKafkaJSBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (d: unknown) => Promise<{
  records: Array<{ offset: string; timestamp: string; key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer | null | Array<Buffer | null>> }>;
}>;

const LIMITS: RecordLimits = { maxRecordBytes: 1024 * 1024, maxUncompressedBytes: 8 * 1024 * 1024 };
const BASE_TS = 1_700_000_000_000n;

function zstdCli(input: Buffer): Buffer {
  const r = spawnSync('zstd', ['-c', '-q', '-3'], { input, maxBuffer: 64 << 20 });
  if (r.error) assert.fail(`the zstd command line tool is needed for this test and could not run (${r.error.message}): apt-get install -y zstd`);
  return r.stdout;
}

const COMPRESSORS: Array<[string, number, (b: Buffer) => Buffer]> = [
  ['gzip', 1, (b) => zlib.gzipSync(b)],
  ['snappy', 2, (b) => Buffer.from(snappyjs.compress(b))],
  ['lz4', 3, (b) => Buffer.from(lz4js.compress(b))],
  ['zstd', 4, zstdCli],
];

/** Calls validateRecords after the checks validateBatch makes, as the broker does. */
function validate(batch: Buffer, limits: RecordLimits = LIMITS): { maxTimestamp: bigint } {
  return validateRecords(batch, validateBatch(batch), limits);
}

function refused(batch: Buffer, code: string, pattern: RegExp, recordIndex?: number | null, limits: RecordLimits = LIMITS): RecordValidationError {
  let thrown: unknown;
  try {
    validate(batch, limits);
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown instanceof RecordValidationError, `expected a RecordValidationError, got ${thrown === undefined ? 'acceptance' : String(thrown)}`);
  assert.equal(thrown.code, code, thrown.message);
  assert.match(thrown.message, pattern);
  if (recordIndex !== undefined) assert.equal(thrown.recordIndex, recordIndex, thrown.message);
  return thrown;
}

// --- hand-built records, so that any field can be wrong ------------------------------

const vi = varintBytes;

function field(b: Buffer | null): Buffer {
  return b === null ? vi(-1) : Buffer.concat([vi(b.length), b]);
}

/** One record: its length prefix computed from `body` unless `length` says otherwise. */
function rec(body: Buffer[], length?: Buffer): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([length ?? vi(b.length), b]);
}

/** A well-formed record body with offset delta `i`. */
function body(i: number, o: { key?: Buffer | null; value?: Buffer | null; headers?: Buffer[] } = {}): Buffer[] {
  const headers = o.headers ?? [];
  return [Buffer.from([0]), vi(0), vi(i), field(o.key === undefined ? Buffer.from('k') : o.key), field(o.value === undefined ? Buffer.from('value') : o.value), vi(headers.length), ...headers];
}

/** A batch whose records blob is `records` and whose header declares `count` records. */
function batchOf(records: Buffer[], count = records.length, header: Partial<BatchInput> = {}): Buffer {
  const template = encodeBatch({ records: [{ value: null }], baseTimestamp: BASE_TS, ...header });
  const b = Buffer.concat([template.subarray(0, BATCH_HEADER_BYTES), ...records]);
  b.writeInt32BE(count, 57);
  b.writeInt32BE(count - 1, 23);
  return reseal(b);
}

const good = (n: number) => Array.from({ length: n }, (_, i) => rec(body(i)));

test('a hand-built batch of well-formed records passes (the builders above are right)', () => {
  const b = batchOf(good(3));
  assert.deepEqual(validate(b), { maxTimestamp: BASE_TS });
  assert.equal(decodeRecords(b).length, 3);
});

test('attributes: unknown codec, control, transactional and bits 6-15 are refused as INVALID_BATCH', () => {
  const b = batchOf(good(1));
  const h = validateBatch(b);
  for (const codec of [5, 6, 7]) {
    assert.throws(() => validateRecords(b, { ...h, attributes: codec }, LIMITS), (e: unknown) => e instanceof RecordValidationError && e.code === ErrorCode.InvalidBatch && /compression codec \d is not one of/.test(e.message));
  }
  const control = batchOf(good(1), 1, { attributes: Attributes.control });
  refused(control, ErrorCode.InvalidBatch, /control bit \(0x20\)/, null);
  assert.doesNotThrow(() => validate(control, { ...LIMITS, allowControl: true }), 'allowControl lets the broker validate its own');
  refused(batchOf(good(1), 1, { attributes: Attributes.transactional }), ErrorCode.InvalidBatch, /transactional bit \(0x10\) is set, but transactions are not supported/, null);
  for (let bit = 6; bit <= 15; bit++) {
    const x = batchOf(good(1));
    x.writeUInt16BE(1 << bit, 21);
    refused(reseal(x), ErrorCode.InvalidBatch, new RegExp(`attributes: bits 0x${(1 << bit).toString(16)} are set`), null);
  }
  assert.doesNotThrow(() => validate(batchOf(good(1), 1, { attributes: Attributes.timestampTypeLogAppend })), 'LogAppendTime is a legal bit');
});

test('producer fields: producerId -1, or >= 0 with epoch and sequence >= 0; anything else is INVALID_BATCH', () => {
  assert.doesNotThrow(() => validate(batchOf(good(1), 1, { producerId: -1n, producerEpoch: -1, baseSequence: -1 })));
  // KafkaJS's non-idempotent producer sends epoch 0 and sequence 0 with producerId -1.
  assert.doesNotThrow(() => validate(batchOf(good(1), 1, { producerId: -1n, producerEpoch: 0, baseSequence: 0 })));
  assert.doesNotThrow(() => validate(batchOf(good(1), 1, { producerId: 7n, producerEpoch: 0, baseSequence: 12 })));
  refused(batchOf(good(1), 1, { producerId: -2n }), ErrorCode.InvalidBatch, /producerId -2 is invalid/);
  refused(batchOf(good(1), 1, { producerId: 7n, producerEpoch: -1, baseSequence: 0 }), ErrorCode.InvalidBatch, /producerEpoch -1 is invalid for producerId 7/);
  refused(batchOf(good(1), 1, { producerId: 7n, producerEpoch: 0, baseSequence: -5 }), ErrorCode.InvalidBatch, /baseSequence -5 is invalid for producerId 7/);
});

test('record count: declared and decoded counts must match; lastOffsetDelta must follow it', () => {
  refused(batchOf(good(2), 3), ErrorCode.CorruptBatch, /declares 3 records but the batch holds 2/, null);
  refused(batchOf(good(3), 2), ErrorCode.CorruptBatch, /bytes are left after the last of the 2 records/, null);
  const h = validateBatch(batchOf(good(2)));
  assert.throws(() => validateRecords(batchOf(good(2)), { ...h, recordCount: 0, lastOffsetDelta: -1 }, LIMITS), /recordCount 0 is invalid/);
  assert.throws(() => validateRecords(batchOf(good(2)), { ...h, lastOffsetDelta: 5 }, LIMITS), /lastOffsetDelta 5 does not match recordCount 2/);
});

test('offset deltas must equal each record\'s index', () => {
  const e = refused(batchOf([rec(body(0)), rec(body(5))]), ErrorCode.InvalidBatch, /record 1: offset delta 5 is not 1: inner offsets must run consecutively/, 1);
  assert.equal(e.recordIndex, 1);
  refused(batchOf([rec(body(1))]), ErrorCode.InvalidBatch, /record 0: offset delta 1 is not 0/, 0);
});

test('record length: negative, past the end, shorter than the fields, longer than the fields', () => {
  refused(batchOf([rec(body(0), vi(-3))]), ErrorCode.CorruptBatch, /record 0: record length -3 is negative/, 0);
  refused(batchOf([rec(body(0), vi(500))]), ErrorCode.CorruptBatch, /record 0: record length 500 runs past the end of the records/, 0);
  const b = Buffer.concat(body(0));
  // Declared 2 bytes short: the value no longer fits in the record.
  refused(batchOf([Buffer.concat([vi(b.length - 2), b]).subarray(0, b.length - 1), Buffer.alloc(0)]), ErrorCode.CorruptBatch, /record 0: value of 5 bytes runs past the end of the record/, 0);
  // Declared one byte long, with a stray byte after the headers count.
  refused(batchOf([rec([...body(0), Buffer.from([0x00])])]), ErrorCode.CorruptBatch, /record 0: record length \d+ declares 1 more bytes than its fields use/, 0);
  // No room for the attributes byte.
  refused(batchOf([rec([], vi(0))]), ErrorCode.CorruptBatch, /leaves no room for the attributes byte/, 0);
});

test('key and value lengths: -1 or a byte count that fits in the record', () => {
  const withKeyLen = (len: number) => [Buffer.from([0]), vi(0), vi(0), vi(len), Buffer.from('kk'), field(Buffer.from('v')), vi(0)];
  refused(batchOf([rec(withKeyLen(-2))]), ErrorCode.CorruptBatch, /record 0: key length -2 is neither -1 \(null\) nor a byte count/, 0);
  refused(batchOf([rec(withKeyLen(40))]), ErrorCode.CorruptBatch, /record 0: key of 40 bytes runs past the end of the record/, 0);
  const withValueLen = (len: number, i = 0) => [Buffer.from([0]), vi(0), vi(i), field(null), vi(len), Buffer.from('vv'), vi(0)];
  refused(batchOf([rec(body(0)), rec(withValueLen(-7, 1))]), ErrorCode.CorruptBatch, /record 1: value length -7 is neither/, 1);
  refused(batchOf([rec(withValueLen(9))]), ErrorCode.CorruptBatch, /record 0: value of 9 bytes runs past/, 0);
  assert.doesNotThrow(() => validate(batchOf([rec(body(0, { key: null, value: null })), rec(body(1, { key: Buffer.alloc(0), value: Buffer.alloc(0) }))])));
});

test('headers: count >= 0, keys never null, values -1 or a byte count', () => {
  const header = (k: Buffer | null, v: Buffer | null) => Buffer.concat([field(k), field(v)]);
  assert.doesNotThrow(() => validate(batchOf([rec(body(0, { headers: [header(Buffer.from('a'), null), header(Buffer.alloc(0), Buffer.from('x'))] }))])));
  const negCount = [Buffer.from([0]), vi(0), vi(0), field(null), field(null), vi(-1)];
  refused(batchOf([rec(negCount)]), ErrorCode.CorruptBatch, /record 0: header count -1 is negative/, 0);
  refused(batchOf([rec(body(0, { headers: [header(null, Buffer.from('x'))] }))]), ErrorCode.CorruptBatch, /record 0: header 0 key length -1 is negative: header keys are never null/, 0);
  const badValue = Buffer.concat([field(Buffer.from('a')), vi(-4)]);
  refused(batchOf([rec(body(0, { headers: [header(Buffer.from('ok'), null), badValue] }))]), ErrorCode.CorruptBatch, /record 0: header 1 value length -4 is neither/, 0);
  const longKey = Buffer.concat([vi(30), Buffer.from('a'), field(null)]);
  refused(batchOf([rec(body(0, { headers: [longKey] }))]), ErrorCode.CorruptBatch, /header 0 key of 30 bytes runs past/, 0);
  // More headers declared than the record holds.
  const many = [Buffer.from([0]), vi(0), vi(0), field(null), field(null), vi(5), header(Buffer.from('a'), null)];
  refused(batchOf([rec(many)]), ErrorCode.CorruptBatch, /record 0: header 1 key length varint is truncated/, 0);
});

test('varints and varlongs: no truncation, no more than 5 (10) bytes, no bits past 32 (64)', () => {
  const withOffset = (raw: number[]) => [Buffer.from([0]), vi(0), Buffer.from(raw), field(null), field(null), vi(0)];
  refused(batchOf([rec(withOffset([0x80, 0x80, 0x80, 0x80, 0x80, 0x00]))]), ErrorCode.CorruptBatch, /offset delta varint is longer than 5 bytes or exceeds 32 bits/, 0);
  refused(batchOf([rec(withOffset([0x80, 0x80, 0x80, 0x80, 0x10]))]), ErrorCode.CorruptBatch, /offset delta varint is longer than 5 bytes or exceeds 32 bits/, 0);
  // A non-minimal but in-range varint for 0 decodes as 0, as in Kafka and every client.
  assert.doesNotThrow(() => validate(batchOf([rec(withOffset([0x80, 0x00]))])));
  const withTs = (raw: number[]) => [Buffer.from([0]), Buffer.from(raw), vi(0), field(null), field(null), vi(0)];
  refused(batchOf([rec(withTs([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))]), ErrorCode.CorruptBatch, /timestamp delta varlong is longer than 10 bytes or exceeds 64 bits/, 0);
  refused(batchOf([rec(withTs([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]))]), ErrorCode.CorruptBatch, /timestamp delta varlong is longer than 10 bytes/, 0);
  // The largest varlong: 2^64 - 1 zig-zag is -2^63.
  const min = validate(batchOf([rec(withTs([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))], 1, { baseTimestamp: 0n }));
  assert.equal(min.maxTimestamp, -1n, 'Kafka starts the max from NO_TIMESTAMP (-1)');
  // A record cut inside a varint, at the end of the batch.
  const cut = batchOf([rec(body(0)), Buffer.from([0x83])], 2);
  refused(cut, ErrorCode.CorruptBatch, /record 1: record length varint is truncated/, 1);
  const cutInRecord = [Buffer.from([0]), Buffer.from([0x80])];
  refused(batchOf([rec(cutInRecord)]), ErrorCode.CorruptBatch, /record 0: timestamp delta varlong is truncated/, 0);
});

test('a record above maxRecordBytes is BATCH_TOO_LARGE, naming its size and the limit', () => {
  const big = batchOf([rec(body(0)), rec(body(1, { value: Buffer.alloc(5000, 1) }))]);
  refused(big, ErrorCode.BatchTooLarge, /record 1: record of 50\d\d bytes exceeds the maximum record size of 4096/, 1, { ...LIMITS, maxRecordBytes: 4096 });
});

test('the poison batches of issue 9 are refused', () => {
  const plain = encodeBatch({ records: [{ key: Buffer.from('k'), value: Buffer.from('a value') }, { value: Buffer.from('another') }], baseTimestamp: BASE_TS });
  for (const codec of [1, 2, 3, 4]) {
    const x = Buffer.from(plain);
    x.writeInt16BE(codec, 21);
    refused(reseal(x), ErrorCode.CorruptBatch, /compressed records: (gzip|snappy|lz4|zstd): /, null);
  }
  const lengthVarint = Buffer.from(plain);
  lengthVarint[BATCH_HEADER_BYTES] = 0xff;
  refused(reseal(lengthVarint), ErrorCode.CorruptBatch, /record 0: /, 0);
  const keyVarint = Buffer.from(plain);
  keyVarint[BATCH_HEADER_BYTES + 4] = 0x7f; // key length: -64
  refused(reseal(keyVarint), ErrorCode.CorruptBatch, /record 0: key length -64 is neither/, 0);
  const transactional = Buffer.from(plain);
  transactional.writeInt16BE(Attributes.transactional, 21);
  refused(reseal(transactional), ErrorCode.InvalidBatch, /transactions are not supported/);
});

test('compressed batches: garbage, trailing bytes in the stream, and bombs are CORRUPT_BATCH', () => {
  const plain = batchOf(good(3));
  refused(compressBatch(plain, 1, () => Buffer.from('not gzip at all')), ErrorCode.CorruptBatch, /compressed records: gzip: not a valid gzip stream/, null);
  const trailing = compressBatch(plain, 1, (r) => zlib.gzipSync(Buffer.concat([r, Buffer.from([0, 0])])));
  refused(trailing, ErrorCode.CorruptBatch, /2 bytes are left after the last of the 3 records the header declares of the decompressed records/, null);
  const short = compressBatch(batchOf(good(3), 4), 1, (r) => zlib.gzipSync(r));
  refused(short, ErrorCode.CorruptBatch, /declares 4 records but the batch of the decompressed records holds 3/, null);
  const bomb = batchOf([rec(body(0, { value: Buffer.alloc(3_000_000) }))]);
  for (const [name, codec, compress] of COMPRESSORS) {
    refused(compressBatch(bomb, codec, compress), ErrorCode.CorruptBatch, new RegExp(`compressed records: ${name}: .*past the 1048576-byte decompression budget`), null, { maxRecordBytes: 8 << 20, maxUncompressedBytes: 1 << 20 });
  }
  const oneBadRecord = compressBatch(batchOf([rec(body(0)), rec(body(2))]), 1, (r) => zlib.gzipSync(r));
  refused(oneBadRecord, ErrorCode.InvalidBatch, /record 1 of the decompressed records: offset delta 2 is not 1/, 1);
});

/** The largest record timestamp, from NO_TIMESTAMP (-1) as Kafka computes it. */
function expectedMax(baseTs: bigint, records: readonly RecordInput[]): bigint {
  return records.reduce((m, r) => {
    const ts = baseTs + BigInt(r.timestampDelta ?? 0);
    return ts > m ? ts : m;
  }, -1n);
}

test('valid batches of every codec pass and report the true max timestamp', () => {
  fc.assert(
    fc.property(fc.array(recordArb, { minLength: 1, maxLength: 20 }), fc.bigInt({ min: -1n, max: 2n ** 45n }), fc.integer({ min: 0, max: 4 }), (records, baseTimestamp, c) => {
      const plain = encodeBatch({ records, baseTimestamp });
      const batch = c === 0 ? plain : compressBatch(plain, COMPRESSORS[c - 1][1], COMPRESSORS[c - 1][2]);
      assert.equal(validate(batch).maxTimestamp, expectedMax(baseTimestamp, records));
    }),
    { numRuns: 300, seed: 99 },
  );
});

test('LogAppendTime keeps the header\'s maxTimestamp; setMaxTimestamp rewrites it and the CRC', () => {
  const b = encodeBatch({ records: [{ value: Buffer.from('a'), timestampDelta: 50 }], baseTimestamp: BASE_TS, attributes: Attributes.timestampTypeLogAppend });
  b.writeBigInt64BE(123n, 35);
  reseal(b);
  assert.equal(validate(b).maxTimestamp, 123n);
  const c = encodeBatch({ records: [{ value: Buffer.from('a'), timestampDelta: 50 }, { value: null, timestampDelta: 7 }], baseTimestamp: BASE_TS });
  c.writeBigInt64BE(-1n, 35);
  reseal(c);
  const { maxTimestamp } = validate(c);
  assert.equal(maxTimestamp, BASE_TS + 50n, 'a header maxTimestamp of -1 is not refused; the true one is reported');
  setMaxTimestamp(c, maxTimestamp);
  assert.equal(validateBatch(c).maxTimestamp, BASE_TS + 50n, 'the CRC was recomputed');
});

test('property: a mutated batch is refused with a MeridianError, or both decoders read exactly what the validator walked', { timeout: 300_000 }, async () => {
  const kinds = { refused: 0, accepted: 0 };
  await fc.assert(
    fc.asyncProperty(
      fc.array(recordArb, { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      fc.boolean(),
      fc.array(editArb, { minLength: 1, maxLength: 3 }),
      async (records, gzip, editStream, edits) => {
        const plain = encodeBatch({ records, baseTimestamp: BASE_TS });
        // Edits land in the records before compression (a well-formed stream of bad records)
        // or in the compressed stream itself.
        const batch = !gzip ? applyEdits(plain, edits) : editStream ? applyEdits(gzipBatch(plain), edits) : gzipBatch(applyEdits(plain, edits));
        let walked: { maxTimestamp: bigint };
        try {
          walked = validate(batch);
        } catch (err) {
          assert.ok(err instanceof MeridianError, `only MeridianErrors escape; got ${String(err)}`);
          kinds.refused++;
          return;
        }
        kinds.accepted++;
        const h = readBatchHeader(batch);
        const ours = decodeRecords(plainView(batch));
        assert.equal(ours.length, h.recordCount);
        ours.forEach((r, i) => assert.equal(r.offset, h.baseOffset + BigInt(i)));
        const theirs = (await decodeKafkaJSBatch(new KafkaJSDecoder(batch))).records;
        assert.equal(theirs.length, h.recordCount, 'KafkaJS reads the declared count');
        const logAppend = (h.attributes & Attributes.timestampTypeLogAppend) !== 0;
        let max = -1n;
        theirs.forEach((r, i) => {
          assert.equal(BigInt(r.offset), h.baseOffset + BigInt(i));
          assert.deepEqual(r.key, ours[i].key);
          assert.deepEqual(r.value, ours[i].value);
          assert.deepEqual(r.headers, kafkaJsHeaders(ours[i].headers));
          if (BigInt(r.timestamp) > max) max = BigInt(r.timestamp);
        });
        assert.equal(walked.maxTimestamp, logAppend ? h.maxTimestamp : max);
      },
    ),
    { numRuns: 4000, seed: 424242 },
  );
  assert.ok(kinds.refused > 500 && kinds.accepted > 500, `both outcomes are exercised: ${JSON.stringify(kinds)}`);
});
