/**
 * Dedup markers: the control batch written in front of every run of replicated batches.
 *
 * A marker is a RecordBatch v2 with the control attribute (bit 5) and one record whose key is
 * the control-record key `version INT16 = 0, type INT16 = MARKER_CONTROL_TYPE`. Kafka clients
 * never hand control records to applications: librdkafka ignores unknown control types,
 * KafkaJS drops control records, the Java consumer skips control batches. Types 0 (ABORT) and
 * 1 (COMMIT) are Kafka's transaction markers and KafkaJS treats a key of [0,0,0,0] as an
 * abort, so the type is a value Kafka does not use.
 *
 * The value (big-endian, Kafka primitive encodings):
 *
 *   version INT16 (0)
 *   originRegion STRING, originTopicId STRING, originPartition INT32
 *   senderRegion STRING, senderTopicId STRING
 *   hops ARRAY<STRING>          the regions the data passed through, origin first, sender last
 *   batches ARRAY<[originBaseOffset INT64, senderBaseOffset INT64, crc UINT32]>
 *   senderEndOffset INT64       the sender's log offset this request covered (>= last batch's)
 *
 * One entry per batch that follows the marker in the log, in order. The batch CRC (it covers
 * neither the base offset, which every hop restamps, nor anything a hop changes) ties each
 * entry to its batch, so a reader recognises exactly the batches a marker describes even
 * after a torn write cut the run short.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { Reader } from '../protocol/kafka/reader.js';
import { Writer } from '../protocol/kafka/writer.js';
import { Attributes, Codec, decodeRecords, encodeBatch, isControlBatch, readBatchHeader, type BatchHeader } from '../storage/record-batch.js';

/** 'MR': a control type Kafka does not define. */
export const MARKER_CONTROL_TYPE = 0x4d52;
const MARKER_VERSION = 0;

export interface MarkedBatch {
  originBaseOffset: bigint;
  senderBaseOffset: bigint;
  crc: number;
}

export interface Marker {
  originRegion: string;
  /** The topic's id in the origin region: a topic deleted and recreated there starts afresh. */
  originTopicId: string;
  originPartition: number;
  senderRegion: string;
  senderTopicId: string;
  hops: readonly string[];
  batches: readonly MarkedBatch[];
  senderEndOffset: bigint;
}

const MARKER_KEY = Buffer.from([0, 0, MARKER_CONTROL_TYPE >> 8, MARKER_CONTROL_TYPE & 0xff]);

export function encodeMarker(m: Marker, timestamp = BigInt(Date.now())): Buffer {
  const w = new Writer(64 + m.batches.length * 20);
  w.int16(MARKER_VERSION).string(m.originRegion).string(m.originTopicId).int32(m.originPartition).string(m.senderRegion).string(m.senderTopicId);
  w.int32(m.hops.length);
  for (const h of m.hops) w.string(h);
  w.int32(m.batches.length);
  for (const b of m.batches) w.int64(b.originBaseOffset).int64(b.senderBaseOffset).uint32(b.crc);
  w.int64(m.senderEndOffset);
  return encodeBatch({ records: [{ key: MARKER_KEY, value: w.toBuffer() }], attributes: Attributes.control, baseTimestamp: timestamp, producerId: -1n, producerEpoch: -1, baseSequence: -1 });
}

/** True for a batch that is a Meridian marker (checks the header, then the control key). */
export function isMarkerBatch(batch: Buffer, h: BatchHeader = readBatchHeader(batch)): boolean {
  if (!isControlBatch(h) || (h.attributes & Attributes.codecMask) !== Codec.none || h.recordCount !== 1) return false;
  const key = decodeRecords(batch)[0]?.key;
  return key !== null && key !== undefined && key.length === 4 && key.equals(MARKER_KEY);
}

/** Decodes a marker batch; null when the batch is not a marker. Throws on a garbled value. */
export function decodeMarker(batch: Buffer, h: BatchHeader = readBatchHeader(batch)): Marker | null {
  if (!isMarkerBatch(batch, h)) return null;
  const value = decodeRecords(batch)[0].value;
  if (value === null) throw new MeridianError(ErrorCode.CorruptBatch, 'replication marker without a value');
  const r = new Reader(value);
  const version = r.int16('marker version');
  if (version !== MARKER_VERSION) throw new MeridianError(ErrorCode.CorruptBatch, `replication marker version ${version} is not supported`);
  const originRegion = r.string('originRegion');
  const originTopicId = r.string('originTopicId');
  const originPartition = r.int32('originPartition');
  const senderRegion = r.string('senderRegion');
  const senderTopicId = r.string('senderTopicId');
  const hops: string[] = [];
  for (let n = r.int32('hops'); n > 0; n--) hops.push(r.string('hop'));
  const batches: MarkedBatch[] = [];
  for (let n = r.int32('batches'); n > 0; n--) batches.push({ originBaseOffset: r.int64('originBaseOffset'), senderBaseOffset: r.int64('senderBaseOffset'), crc: r.uint32('crc') });
  const senderEndOffset = r.int64('senderEndOffset');
  return { originRegion, originTopicId, originPartition, senderRegion, senderTopicId, hops, batches, senderEndOffset };
}
