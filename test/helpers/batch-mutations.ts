/**
 * Builds compressed record batches and mutated ("poison") batches for the record-validation
 * tests: a batch's records blob compressed with a codec, and random edits of a valid batch
 * (byte flips, inserted and deleted bytes, broken varints, attribute bits, header fields)
 * with batchLength and the CRC fixed up, so that only the record checks stand between the
 * batch and the log.
 */
import zlib from 'node:zlib';
import fc from 'fast-check';
import { decompress } from '../../src/storage/compression/decompress.js';
import { Attributes, BATCH_HEADER_BYTES, computeBatchCrc, LOG_OVERHEAD, readBatchHeader, type RecordInput } from '../../src/storage/record-batch.js';

export const CODEC_GZIP = 1;

/** Fixes batchLength and the CRC after an edit. */
export function reseal(batch: Buffer): Buffer {
  batch.writeInt32BE(batch.length - LOG_OVERHEAD, 8);
  batch.writeUInt32BE(computeBatchCrc(batch), 17);
  return batch;
}

/** The batch with its records blob replaced by `compress(records)` and the codec bits set. */
export function compressBatch(batch: Buffer, codec: number, compress: (records: Buffer) => Buffer): Buffer {
  const out = Buffer.concat([batch.subarray(0, BATCH_HEADER_BYTES), compress(batch.subarray(BATCH_HEADER_BYTES))]);
  out.writeUInt16BE((out.readUInt16BE(21) & ~0x07) | codec, 21);
  return reseal(out);
}

export const gzipBatch = (batch: Buffer): Buffer => compressBatch(batch, CODEC_GZIP, (r) => zlib.gzipSync(r));

/** Records with keys, null keys and values, empty ones, headers (null values too), deltas. */
export const recordArb: fc.Arbitrary<RecordInput> = fc.record({
  key: fc.option(fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), { freq: 4 }),
  value: fc.option(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), { freq: 6 }),
  headers: fc.array(fc.record({ key: fc.string({ maxLength: 12 }), value: fc.option(fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)), { freq: 3 }) }), { maxLength: 3 }),
  timestampDelta: fc.integer({ min: -100_000, max: 10_000_000 }),
});

export type Edit =
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'varint'; at: number; byte: number }
  | { kind: 'attribute'; bit: number }
  | { kind: 'recordCount'; delta: number; keepLastOffsetDelta: boolean }
  | { kind: 'timestamps'; base: bigint; max: bigint };

export const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }) },
  // A continuation bit or a run of 0xff where a varint may start: length fields go wrong.
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('varint' as const), at: fc.nat(), byte: fc.constantFrom(0x80, 0x81, 0xff, 0x7f, 0x01, 0x00) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('attribute' as const), bit: fc.integer({ min: 0, max: 15 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('recordCount' as const), delta: fc.constantFrom(-1, 1, 2), keepLastOffsetDelta: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('timestamps' as const), base: fc.bigInt({ min: -1n, max: 2n ** 42n }), max: fc.bigInt({ min: -1n, max: 2n ** 42n }) }) },
);

/**
 * Applies `edits` to a copy of `batch`: byte edits land in the records area (from byte 61),
 * header edits on their fields. Returns the edited batch, resealed.
 */
export function applyEdits(batch: Buffer, edits: readonly Edit[]): Buffer {
  let b = Buffer.from(batch);
  for (const e of edits) {
    const span = b.length - BATCH_HEADER_BYTES;
    const at = span > 0 && 'at' in e ? BATCH_HEADER_BYTES + (e.at % span) : BATCH_HEADER_BYTES;
    switch (e.kind) {
      case 'set':
      case 'varint':
        if (span > 0) b[at] = e.byte;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from([e.byte]), b.subarray(at)]);
        break;
      case 'delete':
        if (span > 0) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
        break;
      case 'attribute':
        b.writeUInt16BE(b.readUInt16BE(21) ^ (1 << e.bit), 21);
        break;
      case 'recordCount': {
        const n = b.readInt32BE(57) + e.delta;
        b.writeInt32BE(n, 57);
        if (!e.keepLastOffsetDelta) b.writeInt32BE(n - 1, 23);
        break;
      }
      case 'timestamps':
        b.writeBigInt64BE(e.base, 27);
        b.writeBigInt64BE(e.max, 35);
        break;
    }
  }
  return reseal(b);
}

/** The batch with its records decompressed and the codec bits cleared (for decodeRecords). */
export function plainView(batch: Buffer): Buffer {
  const codec = readBatchHeader(batch).attributes & Attributes.codecMask;
  if (codec === 0) return batch;
  const out = Buffer.concat([batch.subarray(0, BATCH_HEADER_BYTES), decompress(codec, batch.subarray(BATCH_HEADER_BYTES), 64 << 20)]);
  out.writeUInt16BE(out.readUInt16BE(21) & ~Attributes.codecMask, 21);
  return reseal(out);
}

/** Headers in KafkaJS's shape: an object by key, repeated keys gathering their values in order. */
export function kafkaJsHeaders(headers: ReadonlyArray<{ key: string; value: Buffer | null }>): Record<string, Buffer | null | Array<Buffer | null>> {
  const out: Record<string, Buffer | null | Array<Buffer | null>> = {};
  for (const { key, value } of headers) {
    const had = out[key];
    out[key] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return out;
}
