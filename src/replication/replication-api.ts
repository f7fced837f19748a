/**
 * The internal replication API, served on every broker's Kafka port next to the Kafka APIs.
 * Two requests, framed like any Kafka request (request header v1, response header v0), with
 * API keys far above Kafka's so they never collide with a future Kafka API; they are not
 * advertised in ApiVersions, and a Kafka client never sends them.
 *
 *   ReplicationHandshake (key 32000, v0)
 *     request:  targetRegion STRING, senderRegion STRING, senderTopicId STRING, topic STRING,
 *               partitionCount INT32, createIfMissing BOOLEAN, drPrimary STRING, drEpoch INT32
 *     response: errorCode INT16, errorMessage NULLABLE_STRING, region STRING,
 *               partitionCount INT32, partitions ARRAY<[partition INT32, senderCursor INT64]>
 *
 *   ReplicatedAppend (key 32001, v0)
 *     request:  targetRegion STRING, senderRegion STRING, senderTopicId STRING, topic STRING,
 *               partition INT32, senderEndOffset INT64, continuesFrom INT64,
 *               entries ARRAY<[originRegion STRING, originTopicId STRING, originPartition INT32,
 *                              hops ARRAY<STRING>,
 *                              batches ARRAY<[originBaseOffset INT64, senderBaseOffset INT64,
 *                                             batch BYTES]>]>
 *     response: errorCode INT16, errorMessage NULLABLE_STRING, senderCursor INT64,
 *               appendedBatches INT32, duplicateBatches INT32
 *
 * drPrimary and drEpoch carry the sender's view of a one-way or fan-out topic's primary and
 * promotion epoch ("" and -1 for other topics): the receiver refuses a sender whose epoch
 * differs from its own (REPLICATION_FENCED), see dr/disaster-recovery.ts.
 *
 * senderCursor is the last offset of the sender's log the receiver holds for that partition
 * (-1: none): where the sender's worker resumes. Batches travel verbatim (the sender's bytes).
 *
 * continuesFrom lets a sender pipeline appends: it is the senderCursor the sender expects the
 * receiver to hold when this request arrives (the end of its previous request). A receiver
 * holding anything else refuses the request (OUT_OF_ORDER_SEQUENCE_NUMBER), so when one
 * request of a pipeline fails, the ones behind it cannot leave a gap. -2 skips the check.
 */
import type { Reader } from '../protocol/kafka/reader.js';
import type { Writer } from '../protocol/kafka/writer.js';

/** continuesFrom value that skips the continuity check (tools, tests). */
export const NO_CONTINUITY_CHECK = -2n;

export const ReplicationApiKey = { Handshake: 32000, Append: 32001, OffsetSync: 32002, DrProbe: 32003 } as const;

/** The internal API keys: these two, and disaster recovery's (dr/dr-api.ts). */
export function isReplicationApi(apiKey: number): boolean {
  return apiKey >= ReplicationApiKey.Handshake && apiKey <= ReplicationApiKey.DrProbe;
}

export interface HandshakeRequest {
  targetRegion: string;
  senderRegion: string;
  /** The topic's id in the sender's region (progress is tracked per id). */
  senderTopicId: string;
  topic: string;
  partitionCount: number;
  createIfMissing: boolean;
  /** The sender's view of a DR topic's primary and promotion epoch (dr/dr-state.ts); null for other topics. */
  dr: { primary: string; epoch: number } | null;
}

export interface HandshakeResponse {
  errorCode: number;
  errorMessage: string | null;
  region: string;
  partitionCount: number;
  partitions: Array<{ partition: number; senderCursor: bigint }>;
}

export interface ReplicatedBatch {
  originBaseOffset: bigint;
  senderBaseOffset: bigint;
  batch: Buffer;
}

export interface ReplicatedEntry {
  originRegion: string;
  originTopicId: string;
  originPartition: number;
  hops: readonly string[];
  batches: ReplicatedBatch[];
}

export interface AppendRequest {
  targetRegion: string;
  senderRegion: string;
  senderTopicId: string;
  topic: string;
  partition: number;
  senderEndOffset: bigint;
  continuesFrom: bigint;
  entries: ReplicatedEntry[];
}

export interface AppendResponse {
  errorCode: number;
  errorMessage: string | null;
  senderCursor: bigint;
  appendedBatches: number;
  duplicateBatches: number;
}

export function writeHandshakeRequest(w: Writer, r: HandshakeRequest): void {
  w.string(r.targetRegion).string(r.senderRegion).string(r.senderTopicId).string(r.topic).int32(r.partitionCount).boolean(r.createIfMissing);
  w.string(r.dr?.primary ?? '').int32(r.dr?.epoch ?? -1);
}

export function readHandshakeRequest(r: Reader): HandshakeRequest {
  const head = { targetRegion: r.string('targetRegion'), senderRegion: r.string('senderRegion'), senderTopicId: r.string('senderTopicId'), topic: r.string('topic'), partitionCount: r.int32('partitionCount'), createIfMissing: r.boolean('createIfMissing') };
  // A sender from before disaster recovery ends here: no view.
  if (r.remaining === 0) return { ...head, dr: null };
  const primary = r.string('drPrimary');
  const epoch = r.int32('drEpoch');
  return { ...head, dr: epoch < 0 ? null : { primary, epoch } };
}

export function writeHandshakeResponse(w: Writer, r: HandshakeResponse): void {
  w.int16(r.errorCode).nullableString(r.errorMessage).string(r.region).int32(r.partitionCount).int32(r.partitions.length);
  for (const p of r.partitions) w.int32(p.partition).int64(p.senderCursor);
}

export function readHandshakeResponse(r: Reader): HandshakeResponse {
  const errorCode = r.int16('errorCode');
  const errorMessage = r.nullableString('errorMessage');
  const region = r.string('region');
  const partitionCount = r.int32('partitionCount');
  const partitions: HandshakeResponse['partitions'] = [];
  for (let n = r.int32('partitions'); n > 0; n--) partitions.push({ partition: r.int32('partition'), senderCursor: r.int64('senderCursor') });
  return { errorCode, errorMessage, region, partitionCount, partitions };
}

export function writeAppendRequest(w: Writer, r: AppendRequest): void {
  w.string(r.targetRegion).string(r.senderRegion).string(r.senderTopicId).string(r.topic).int32(r.partition).int64(r.senderEndOffset).int64(r.continuesFrom).int32(r.entries.length);
  for (const e of r.entries) {
    w.string(e.originRegion).string(e.originTopicId).int32(e.originPartition).int32(e.hops.length);
    for (const h of e.hops) w.string(h);
    w.int32(e.batches.length);
    for (const b of e.batches) w.int64(b.originBaseOffset).int64(b.senderBaseOffset).bytes(b.batch);
  }
}

export function readAppendRequest(r: Reader): AppendRequest {
  const head = { targetRegion: r.string('targetRegion'), senderRegion: r.string('senderRegion'), senderTopicId: r.string('senderTopicId'), topic: r.string('topic'), partition: r.int32('partition'), senderEndOffset: r.int64('senderEndOffset'), continuesFrom: r.int64('continuesFrom') };
  const entries: ReplicatedEntry[] = [];
  for (let n = r.int32('entries'); n > 0; n--) {
    const originRegion = r.string('originRegion');
    const originTopicId = r.string('originTopicId');
    const originPartition = r.int32('originPartition');
    const hops: string[] = [];
    for (let h = r.int32('hops'); h > 0; h--) hops.push(r.string('hop'));
    const batches: ReplicatedBatch[] = [];
    for (let b = r.int32('batches'); b > 0; b--) batches.push({ originBaseOffset: r.int64('originBaseOffset'), senderBaseOffset: r.int64('senderBaseOffset'), batch: r.bytes('batch') });
    entries.push({ originRegion, originTopicId, originPartition, hops, batches });
  }
  return { ...head, entries };
}

export function writeAppendResponse(w: Writer, r: AppendResponse): void {
  w.int16(r.errorCode).nullableString(r.errorMessage).int64(r.senderCursor).int32(r.appendedBatches).int32(r.duplicateBatches);
}

export function readAppendResponse(r: Reader): AppendResponse {
  return { errorCode: r.int16('errorCode'), errorMessage: r.nullableString('errorMessage'), senderCursor: r.int64('senderCursor'), appendedBatches: r.int32('appendedBatches'), duplicateBatches: r.int32('duplicateBatches') };
}
