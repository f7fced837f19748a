/**
 * Reads the RecordBatch v2 headers a broker stored for one partition, straight from its
 * segment files (`<dataDir>/logs/<topic>-<partition>/*.log`), with its own tiny parser so a
 * test checks what is on disk independently of the broker's codec. Batch layout (Kafka
 * "Message Format"): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
 * magic i8 @16, crc u32 @17, attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp
 * i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
 * baseSequence i32 @53, recordsCount i32 @57, records @61.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

export interface StoredBatch {
  baseOffset: bigint;
  magic: number;
  attributes: number;
  /** attributes bits 0-2: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd. */
  codec: number;
  lastOffsetDelta: number;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  recordsCount: number;
}

export async function readStoredBatches(dataDir: string, topic: string, partition: number): Promise<StoredBatch[]> {
  const dir = path.join(dataDir, 'logs', `${topic}-${partition}`);
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.log')).sort();
  const batches: StoredBatch[] = [];
  for (const f of files) {
    const buf = await fs.readFile(path.join(dir, f));
    let pos = 0;
    while (pos + 61 <= buf.length) {
      const batchLength = buf.readInt32BE(pos + 8);
      if (batchLength <= 0 || pos + 12 + batchLength > buf.length) break; // preallocated or torn tail
      const attributes = buf.readInt16BE(pos + 21);
      batches.push({
        baseOffset: buf.readBigInt64BE(pos),
        magic: buf.readInt8(pos + 16),
        attributes,
        codec: attributes & 0x07,
        lastOffsetDelta: buf.readInt32BE(pos + 23),
        producerId: buf.readBigInt64BE(pos + 43),
        producerEpoch: buf.readInt16BE(pos + 51),
        baseSequence: buf.readInt32BE(pos + 53),
        recordsCount: buf.readInt32BE(pos + 57),
      });
      pos += 12 + batchLength;
    }
  }
  return batches;
}
