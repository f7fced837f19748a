/**
 * The disaster-recovery messages of the internal replication API (replication-api.ts has
 * the data ones), on the Kafka port, never advertised:
 *
 *   OffsetSync (key 32002, v0): a region's committed group offsets and partition ends, to a
 *   peer of the topics' policies.
 *     request:  targetRegion STRING, senderRegion STRING, sentAt INT64,
 *               commits ARRAY<[group STRING, topic STRING, partition INT32, offset INT64,
 *                              commitTimestamp INT64, vector ARRAY<[origin STRING, offset INT64]>]>,
 *               ends ARRAY<[topic STRING, topicId STRING, partition INT32, endOffset INT64,
 *                           lastTimestamp INT64]>
 *     response: errorCode INT16, errorMessage NULLABLE_STRING
 *   The receiver makes the request durable before it answers; the sender resends whatever
 *   was not acknowledged (the receiver keeps, per group, partition and sender, the newest
 *   commit by commit time, so a resend is a no-op).
 *
 *   DrProbe (key 32003, v0): what a peer knows of a topic, for failback.
 *     request:  targetRegion STRING, senderRegion STRING, topic STRING, senderTopicId STRING
 *     response: errorCode INT16, errorMessage NULLABLE_STRING, primary STRING, epoch INT32,
 *               since INT64, partitions ARRAY<[partition INT32, heldOriginOffset INT64,
 *                                              origins ARRAY<[origin STRING, held INT64]>]>
 *   heldOriginOffset: the last offset of the sender's own records that the peer holds;
 *   origins: per origin, the last origin offset it holds (its own records included): the
 *   vector a failing-back region cuts its log at (the first record not covered).
 *
 * A vector maps an origin (`region/topicId`, replica-state.ts's originKey) to the highest
 * origin offset covered (origin-index.ts).
 */
import type { Reader } from '../protocol/kafka/reader.js';
import type { Writer } from '../protocol/kafka/writer.js';

import { ReplicationApiKey } from '../replication/replication-api.js';

export const DrApiKey = { OffsetSync: ReplicationApiKey.OffsetSync, Probe: ReplicationApiKey.DrProbe } as const;

export interface SyncedCommit {
  group: string;
  topic: string;
  partition: number;
  offset: bigint;
  commitTimestamp: number;
  vector: Array<[string, bigint]>;
}

export interface PartitionEnd {
  topic: string;
  topicId: string;
  partition: number;
  endOffset: bigint;
  /** The largest timestamp of the partition's last batch (-1: empty). */
  lastTimestamp: number;
}

export interface OffsetSyncRequest {
  targetRegion: string;
  senderRegion: string;
  sentAt: number;
  commits: SyncedCommit[];
  ends: PartitionEnd[];
}

export interface DrResponseHead {
  errorCode: number;
  errorMessage: string | null;
}

export interface ProbeRequest {
  targetRegion: string;
  senderRegion: string;
  topic: string;
  senderTopicId: string;
}

export interface ProbeResponse extends DrResponseHead {
  primary: string;
  epoch: number;
  since: number;
  partitions: Array<{ partition: number; heldOriginOffset: bigint; origins: Array<[string, bigint]> }>;
}

export function writeOffsetSyncRequest(w: Writer, r: OffsetSyncRequest): void {
  w.string(r.targetRegion).string(r.senderRegion).int64(BigInt(r.sentAt)).int32(r.commits.length);
  for (const c of r.commits) {
    w.string(c.group).string(c.topic).int32(c.partition).int64(c.offset).int64(BigInt(c.commitTimestamp)).int32(c.vector.length);
    for (const [origin, offset] of c.vector) w.string(origin).int64(offset);
  }
  w.int32(r.ends.length);
  for (const e of r.ends) w.string(e.topic).string(e.topicId).int32(e.partition).int64(e.endOffset).int64(BigInt(e.lastTimestamp));
}

export function readOffsetSyncRequest(r: Reader): OffsetSyncRequest {
  const targetRegion = r.string('targetRegion');
  const senderRegion = r.string('senderRegion');
  const sentAt = Number(r.int64('sentAt'));
  const commits: SyncedCommit[] = [];
  for (let n = r.int32('commits'); n > 0; n--) {
    const group = r.string('group');
    const topic = r.string('topic');
    const partition = r.int32('partition');
    const offset = r.int64('offset');
    const commitTimestamp = Number(r.int64('commitTimestamp'));
    const vector: Array<[string, bigint]> = [];
    for (let v = r.int32('vector'); v > 0; v--) vector.push([r.string('origin'), r.int64('originOffset')]);
    commits.push({ group, topic, partition, offset, commitTimestamp, vector });
  }
  const ends: PartitionEnd[] = [];
  for (let n = r.int32('ends'); n > 0; n--) ends.push({ topic: r.string('topic'), topicId: r.string('topicId'), partition: r.int32('partition'), endOffset: r.int64('endOffset'), lastTimestamp: Number(r.int64('lastTimestamp')) });
  return { targetRegion, senderRegion, sentAt, commits, ends };
}

export function writeHead(w: Writer, r: DrResponseHead): void {
  w.int16(r.errorCode).nullableString(r.errorMessage);
}

export function readHead(r: Reader): DrResponseHead {
  return { errorCode: r.int16('errorCode'), errorMessage: r.nullableString('errorMessage') };
}

export function writeProbeRequest(w: Writer, r: ProbeRequest): void {
  w.string(r.targetRegion).string(r.senderRegion).string(r.topic).string(r.senderTopicId);
}

export function readProbeRequest(r: Reader): ProbeRequest {
  return { targetRegion: r.string('targetRegion'), senderRegion: r.string('senderRegion'), topic: r.string('topic'), senderTopicId: r.string('senderTopicId') };
}

export function writeProbeResponse(w: Writer, r: ProbeResponse): void {
  writeHead(w, r);
  w.string(r.primary).int32(r.epoch).int64(BigInt(r.since)).int32(r.partitions.length);
  for (const p of r.partitions) {
    w.int32(p.partition).int64(p.heldOriginOffset).int32(p.origins.length);
    for (const [origin, held] of p.origins) w.string(origin).int64(held);
  }
}

export function readProbeResponse(r: Reader): ProbeResponse {
  const head = readHead(r);
  const primary = r.string('primary');
  const epoch = r.int32('epoch');
  const since = Number(r.int64('since'));
  const partitions: ProbeResponse['partitions'] = [];
  for (let n = r.int32('partitions'); n > 0; n--) {
    const partition = r.int32('partition');
    const heldOriginOffset = r.int64('heldOriginOffset');
    const origins: Array<[string, bigint]> = [];
    for (let o = r.int32('origins'); o > 0; o--) origins.push([r.string('origin'), r.int64('held')]);
    partitions.push({ partition, heldOriginOffset, origins });
  }
  return { ...head, primary, epoch, since, partitions };
}
