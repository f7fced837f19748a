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
 *               partitionCount INT32, partitions ARRAY<[partition INT32, senderCursor INT64]>,
 *               maxAppendVersion INT16 (since issue 15; absent from older receivers: 0)
 *
 *   ReplicatedAppend (key 32001, v0): one partition
 *     request:  targetRegion STRING, senderRegion STRING, senderTopicId STRING, topic STRING,
 *               partition INT32, senderEndOffset INT64, continuesFrom INT64,
 *               entries ARRAY<ENTRY>
 *     response: errorCode INT16, errorMessage NULLABLE_STRING, senderCursor INT64,
 *               appendedBatches INT32, duplicateBatches INT32
 *
 *   ReplicatedAppend (key 32001, v1): several partitions, of any topics
 *     request:  targetRegion STRING, senderRegion STRING,
 *               partitions ARRAY<[senderTopicId STRING, topic STRING, partition INT32,
 *                                 senderEndOffset INT64, continuesFrom INT64, entries ARRAY<ENTRY>]>
 *     response: partitions ARRAY<[errorCode INT16, errorMessage NULLABLE_STRING, senderCursor INT64,
 *                                 appendedBatches INT32, duplicateBatches INT32]>
 *               one result per request item, in request order
 *
 *   ENTRY = originRegion STRING, originTopicId STRING, originPartition INT32, hops ARRAY<STRING>,
 *           batches ARRAY<[originBaseOffset INT64, senderBaseOffset INT64, batch BYTES]>
 *
 * v1 exists so that a link replicating thousands of partitions sends a few requests, each
 * carrying whatever its workers had ready, instead of one request stream per partition
 * (issue 15). Each item of a v1 request is exactly a v0 request and is judged alone: one
 * item's refusal (fenced, out of order, policy, an invalid batch) fails that item only. Items
 * of the same partition in one request are applied in request order, so a sender's pipeline
 * (continuesFrom) holds within a request as across requests.
 *
 * Which version a sender uses: the receiver's handshake response ends with the highest
 * ReplicatedAppend version it serves (maxAppendVersion). A receiver from before v1 does not
 * send the field (an old sender ignores it), so a sender uses v1 only once a handshake with
 * that remote said so, and v0 otherwise: both directions of a mesh in the middle of a rolling
 * upgrade keep replicating. The sender keeps what the last handshake said; a remote rolled
 * back to a version without v1 closes the connection on the first v1 request (an unknown
 * version), the workers' next handshakes then say 0.
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

export const ReplicationApiKey = { Handshake: 32000, Append: 32001, OffsetSync: 32002, DrProbe: 32003, EtcdContact: 32004 } as const;

/** Each internal API's name, for logs and metric labels. */
export const REPLICATION_API_NAMES: Readonly<Record<number, string>> = {
  [ReplicationApiKey.Handshake]: 'ReplicationHandshake',
  [ReplicationApiKey.Append]: 'ReplicatedAppend',
  [ReplicationApiKey.OffsetSync]: 'OffsetSync',
  [ReplicationApiKey.DrProbe]: 'DrProbe',
  [ReplicationApiKey.EtcdContact]: 'EtcdContact',
};

/** The internal API keys: these two, disaster recovery's (dr/dr-api.ts) and a region cluster's contact question (cluster/etcd-contact.ts). */
export function isReplicationApi(apiKey: number): boolean {
  return apiKey >= ReplicationApiKey.Handshake && apiKey <= ReplicationApiKey.EtcdContact;
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
  /** The highest ReplicatedAppend version the receiver serves (0 from a receiver before v1). */
  maxAppendVersion: number;
}

/** The ReplicatedAppend versions this broker serves (and sends, when the remote serves them). */
export const APPEND_VERSIONS = { min: 0, max: 1 } as const;

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

/** One partition's part of an append: all of a v0 request, one item of a v1 request. */
export interface PartitionAppend {
  senderTopicId: string;
  topic: string;
  partition: number;
  senderEndOffset: bigint;
  continuesFrom: bigint;
  entries: ReplicatedEntry[];
}

/** ReplicatedAppend v1: several partitions for one target region. */
export interface MultiAppendRequest {
  targetRegion: string;
  senderRegion: string;
  partitions: PartitionAppend[];
}

/** ReplicatedAppend v0: one partition. */
export interface AppendRequest extends PartitionAppend {
  targetRegion: string;
  senderRegion: string;
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
  w.int16(r.maxAppendVersion);
}

export function readHandshakeResponse(r: Reader): HandshakeResponse {
  const errorCode = r.int16('errorCode');
  const errorMessage = r.nullableString('errorMessage');
  const region = r.string('region');
  const partitionCount = r.int32('partitionCount');
  const partitions: HandshakeResponse['partitions'] = [];
  for (let n = r.int32('partitions'); n > 0; n--) partitions.push({ partition: r.int32('partition'), senderCursor: r.int64('senderCursor') });
  // A receiver from before ReplicatedAppend v1 ends here.
  const maxAppendVersion = r.remaining >= 2 ? r.int16('maxAppendVersion') : 0;
  return { errorCode, errorMessage, region, partitionCount, partitions, maxAppendVersion };
}

export function writeAppendRequest(w: Writer, r: AppendRequest): void {
  w.string(r.targetRegion).string(r.senderRegion);
  writePartitionAppend(w, r);
}

export function readAppendRequest(r: Reader): AppendRequest {
  const targetRegion = r.string('targetRegion');
  const senderRegion = r.string('senderRegion');
  return { targetRegion, senderRegion, ...readPartitionAppend(r) };
}

export function writeAppendRequestV1(w: Writer, r: MultiAppendRequest): void {
  w.string(r.targetRegion).string(r.senderRegion).int32(r.partitions.length);
  for (const p of r.partitions) writePartitionAppend(w, p);
}

export function readAppendRequestV1(r: Reader): MultiAppendRequest {
  const targetRegion = r.string('targetRegion');
  const senderRegion = r.string('senderRegion');
  const partitions: PartitionAppend[] = [];
  for (let n = r.int32('partitions'); n > 0; n--) partitions.push(readPartitionAppend(r));
  return { targetRegion, senderRegion, partitions };
}

function writePartitionAppend(w: Writer, r: PartitionAppend): void {
  w.string(r.senderTopicId).string(r.topic).int32(r.partition).int64(r.senderEndOffset).int64(r.continuesFrom).int32(r.entries.length);
  for (const e of r.entries) {
    w.string(e.originRegion).string(e.originTopicId).int32(e.originPartition).int32(e.hops.length);
    for (const h of e.hops) w.string(h);
    w.int32(e.batches.length);
    for (const b of e.batches) w.int64(b.originBaseOffset).int64(b.senderBaseOffset).bytes(b.batch);
  }
}

function readPartitionAppend(r: Reader): PartitionAppend {
  const head = { senderTopicId: r.string('senderTopicId'), topic: r.string('topic'), partition: r.int32('partition'), senderEndOffset: r.int64('senderEndOffset'), continuesFrom: r.int64('continuesFrom') };
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

/** v1: one result per request item, in request order. */
export function writeAppendResponseV1(w: Writer, results: readonly AppendResponse[]): void {
  w.int32(results.length);
  for (const r of results) writeAppendResponse(w, r);
}

export function readAppendResponseV1(r: Reader): AppendResponse[] {
  const results: AppendResponse[] = [];
  for (let n = r.int32('partitions'); n > 0; n--) results.push(readAppendResponse(r));
  return results;
}
