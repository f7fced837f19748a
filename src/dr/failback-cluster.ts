/**
 * Failback's effects on a region cluster (failback.ts decides the plan; this carries it out
 * region-wide). Per partition of the DR topic, in order:
 *
 * 1. The divergent tail [cut, end) is read from the partition's **leader** over the Kafka
 *    port (a consumer Fetch, as any client). Not from this broker's replica: the broker asked
 *    may lead none of the partitions, and a follower may lack the leader's last records
 *    (appended at acks=1, or still on their way when the `failing-back` entry stopped the
 *    producers). `end` is the leader's log end (OffsetForLeaderEpoch of its current epoch,
 *    Kafka's answer for the latest epoch); a consumer Fetch serves up to the high watermark,
 *    which reaches that end once the in-sync followers copied it (producers and inbound
 *    replication are refused while `failing-back`, so the end no longer moves).
 * 2. Each tail batch (markers and other control batches hold no records and are skipped) is
 *    produced, one Produce per batch, acks=all, to the same partition of the side topic
 *    `<topic>.diverged-<region>-e<epoch>` through that partition's leader. The records are
 *    byte-identical (keys, values, headers, timestamps, compression); the batch header's
 *    producer fields are cleared (producer id, epoch, sequence, transactional bit; CRC
 *    recomputed) because the side partition knows none of the original producers' sequences,
 *    and the side leader stamps its own leader epoch, as it must: a cluster log learns its
 *    epoch cache from the stamps. The side topic is created region-wide (the controller), with
 *    the topic's partitions and replication factor and no retention.
 * 3. **Resuming** after a crash or a failed attempt: the side partition's replicated end
 *    (its leader's log end, once its high watermark reached it) counts the records an earlier
 *    attempt copied, whole batches in order (only failback writes the side topic); that many
 *    tail records are skipped. A batch the side leader appended without answering is counted
 *    once replicated; one it lost with a leader change is copied again.
 * 4. The tail found (its record count, offsets, timestamps, where the side topic holds it) is
 *    saved with the plan in etcd before the partition is cut: a failback resumed after that
 *    cut finds nothing past it any more, and reports the saved tail instead.
 * 5. The partition is cut at its cut on the leader and every replica
 *    (`ClusterNode.truncatePartition`, cluster/partition-truncate.ts); a refusal (the leader's
 *    reason) or a timeout is an error naming the partition, and the failback stays
 *    `failing-back` for the same command to complete (a repeated cut at the same offset
 *    cuts nothing more).
 *
 * Group commits past the cuts are clamped by every coordinator of the region (DisasterRecovery,
 * by the rule of failback-clamp.ts, from the cuts and the epochs returned here, which the
 * `following` entry carries), not here: the region's groups are coordinated by the leaders of
 * `__meridian_offsets`'s partitions, spread over the brokers, and each coordinator's offsets
 * live in its memory and its replicated log.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { ApiKey } from '../protocol/kafka/api-keys.js';
import { kafkaErrorByCode } from '../protocol/kafka/error-codes.js';
import { decodeFetchResponse, encodeFetchRequest } from '../protocol/kafka/messages/fetch.js';
import { ZERO_UUID } from '../protocol/kafka/messages/index.js';
import { decodeListOffsetsResponse, encodeListOffsetsRequest } from '../protocol/kafka/messages/list-offsets.js';
import { decodeOffsetForLeaderEpochResponse, encodeOffsetForLeaderEpochRequest } from '../protocol/kafka/messages/offset-for-leader-epoch.js';
import { decodeProduceResponse, encodeProduceRequest } from '../protocol/kafka/messages/produce.js';
import { LinkClient } from '../replication/link-client.js';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ANONYMOUS, formatPrincipal, userPrincipal } from '../security/principal.js';
import { computeBatchCrc, isControlBatch, lastOffsetOf, LOG_OVERHEAD, readBatchHeader, type BatchHeader } from '../storage/record-batch.js';
import type { DivergentPartition } from './recovery-report.js';

const FETCH_VERSION = 11;
const LIST_OFFSETS_VERSION = 4;
const OFFSET_FOR_LEADER_EPOCH_VERSION = 3;
const PRODUCE_VERSION = 8;
const FETCH_MAX_BYTES = 4 * 1024 * 1024;
const POLL_MS = 100;

/** A partition's leader as this broker sees it in etcd. */
export interface PartitionLeader {
  readonly nodeId: number;
  readonly leaderEpoch: number;
  /** Its Kafka listener (the address follower fetchers use). */
  readonly host: string;
  readonly port: number;
}

/** What failback needs of the region cluster (broker.ts sets it from the ClusterNode). */
export interface DrClusterOps {
  /** Cuts a partition at `offset` on its leader and every replica (ClusterNode.truncatePartition). */
  truncatePartition(topic: string, partition: number, offset: bigint, opts: { timeoutMs: number }): Promise<{ readonly leaderEpoch: number }>;
  /** Creates a topic region-wide (TOPIC_EXISTS when it is there) and resolves once it is open here. */
  createTopic(name: string, partitions: number, replicationFactor: number, configs: Record<string, string>): Promise<void>;
  /** The partition's leader now; undefined while it has none or its state is unknown here. */
  leaderOf(topic: string, partition: number): PartitionLeader | undefined;
  /** The number of replicas of the topic's partition 0 (its replication factor). */
  replicationFactor(topic: string): number | undefined;
  /** TLS and SASL of this broker's connections to the other brokers of its region (replication.tls/sasl, as the follower fetchers). */
  readonly security: LinkSecurityConfig | undefined;
  /**
   * With authorization on: which of `wants` the principal of those connections may not do,
   * as this broker's authorizer answers for its own host (ACLs are region-wide). Null when
   * that principal cannot be told from the config (a TLS client certificate without SASL).
   */
  missingAccess(wants: readonly TopicAccess[]): { principal: string; missing: TopicAccess[] } | null;
}

/** A Kafka permission on a topic, as `meridian acl add` names it. */
export interface TopicAccess {
  readonly operation: 'Read' | 'Write';
  readonly topic: string;
}

/**
 * What failback does over the Kafka port on a cluster, as ACLs of the principal of the
 * region's in-region connections: it reads the DR topic (Fetch; ListOffsets and
 * OffsetForLeaderEpoch need Describe, which Read implies) and writes the side topic (Produce;
 * Write implies Describe). ClusterAction, which the followers need, covers neither: Kafka's
 * inter-broker principal is usually a superuser, which needs nothing more.
 */
export function failbackAccess(topic: string, sideTopic: string): TopicAccess[] {
  return [
    { operation: 'Read', topic },
    { operation: 'Write', topic: sideTopic },
  ];
}

/**
 * The principal a broker's connections with `link` authenticate as: the SASL user, else
 * User:ANONYMOUS (plaintext, or TLS without a client certificate). Null with a client
 * certificate and no SASL: the certificate's subject decides, which the config does not say.
 */
export function linkPrincipal(link: Pick<LinkSecurityConfig, 'tls' | 'sasl'>): string | null {
  if (link.sasl.mechanism !== null && link.sasl.username !== null) return formatPrincipal(userPrincipal(link.sasl.username));
  if (link.tls.enabled && link.tls.certFile !== null) return null;
  return formatPrincipal(ANONYMOUS);
}

/** The `meridian acl add` commands that grant `missing` to `principal`. */
export function grantCommands(principal: string, missing: readonly TopicAccess[]): string {
  return missing.map((m) => `meridian acl add --allow-principal ${principal} --operation ${m.operation} --topic ${m.topic}`).join('; ');
}

export interface ClusterFailbackPlan {
  readonly sideTopic: string;
  readonly cuts: Record<string, string>;
  /** The tails an earlier attempt saved before cutting their partitions (`saveTail`). */
  readonly tails?: readonly DivergentPartition[];
}

export interface ClusterFailbackOptions {
  readonly ops: DrClusterOps;
  readonly clientId: string;
  readonly requestTimeoutMs: number;
  /** How long one partition's copy and cut may take before the attempt fails (retriable). */
  readonly partitionTimeoutMs: number;
  readonly partitions: number;
  /**
   * Saves a partition's tail with the plan (etcd) before that partition is cut: once cut, the
   * tail is only in the side topic, and a failback resumed after a crash reports the saved one.
   */
  readonly saveTail: (tail: DivergentPartition) => Promise<void>;
}

/** What the region-wide failback did: each tail, and the leader epoch each cut left its partition at. */
export interface ClusterFailbackResult {
  readonly partitions: DivergentPartition[];
  /** Per partition: records written past the cut from now on carry this leader epoch or a later one (failback-clamp.ts). */
  readonly leaderEpochs: Record<string, number>;
}

/**
 * Copies every partition's divergent tail to the side topic through the leaders, then cuts
 * each partition region-wide (the file header). Returns what each tail held.
 */
export async function failbackOnCluster(topic: string, plan: ClusterFailbackPlan, o: ClusterFailbackOptions): Promise<ClusterFailbackResult> {
  const region = new RegionClients(o, topic, plan.sideTopic);
  try {
    // The leaders' ends first: whether there is a tail at all decides the side topic.
    const ends: bigint[] = [];
    for (let p = 0; p < o.partitions; p++) ends.push(await retrying(o, () => region.logEnd(topic, p)));
    if (ends.some((end, p) => end > BigInt(plan.cuts[String(p)]!))) await ensureSideTopic(topic, plan.sideTopic, o);
    const out: DivergentPartition[] = [];
    const leaderEpochs: Record<string, number> = {};
    for (let p = 0; p < o.partitions; p++) {
      const cut = BigInt(plan.cuts[String(p)]!);
      // A failed attempt (a leader change, a lost answer) starts over from the side
      // partition's replicated end: nothing is copied twice.
      const measured = await retrying(o, () => copyTail(region, topic, plan.sideTopic, p, cut, ends[p]!));
      // Producers are refused since the plan was saved, so a tail measured before its cut
      // is the tail; measured again after the cut it would be empty.
      const saved = plan.tails?.find((t) => t.partition === p);
      const tail = saved === undefined ? measured : { ...saved };
      if (saved === undefined && BigInt(measured.records) > 0n) await o.saveTail(measured);
      try {
        leaderEpochs[String(p)] = (await o.ops.truncatePartition(topic, p, cut, { timeoutMs: o.partitionTimeoutMs })).leaderEpoch;
      } catch (err) {
        const e = err as Error;
        // Retriable as its cause is (a refusal by the leader is not; a timeout or a lost
        // request is): the failback stays failing-back either way.
        throw new MeridianError(
          err instanceof MeridianError ? err.code : ErrorCode.ReplicationTimedOut,
          `failback of ${topic}: partition ${p} could not be cut at ${cut} on every replica: ${e.message}. Its tail is preserved in ${plan.sideTopic}; the topic stays failing-back (producers refused): run the same failback again`,
          { cause: err },
        );
      }
      out.push(tail);
    }
    return { partitions: out, leaderEpochs };
  } finally {
    region.close();
  }
}

async function ensureSideTopic(topic: string, sideTopic: string, o: ClusterFailbackOptions): Promise<void> {
  const rf = o.ops.replicationFactor(topic) ?? 1;
  try {
    // Kept until an operator deletes it: the tail may be older than any retention.
    await o.ops.createTopic(sideTopic, o.partitions, rf, { 'retention.ms': '-1', 'retention.bytes': '-1' });
  } catch (err) {
    if (!(err instanceof MeridianError && err.code === ErrorCode.TopicExists)) throw err;
  }
}

async function copyTail(region: RegionClients, topic: string, sideTopic: string, partition: number, cut: bigint, end: bigint): Promise<DivergentPartition> {
  let records = 0n;
  let first: bigint | null = null;
  let last: bigint | null = null;
  let tsFirst: bigint | null = null;
  let tsLast: bigint | null = null;
  let preservedAt: { first: string; last: string } | null = null;
  if (end > cut) {
    const start = await region.replicatedEnd(sideTopic, partition);
    let copied = 0n;
    for await (const { buf, h } of region.read(topic, partition, cut, end)) {
      if (isControlBatch(h)) continue; // markers hold no records
      const span = BigInt(h.lastOffsetDelta) + 1n;
      records += span;
      first ??= h.baseOffset;
      last = lastOffsetOf(h);
      tsFirst ??= h.baseTimestamp;
      tsLast = h.maxTimestamp > (tsLast ?? -1n) ? h.maxTimestamp : tsLast;
      if (copied + span <= start) {
        copied += span;
        continue;
      }
      if (copied < start) {
        // The side partition ends inside this batch: it was not written by a failback.
        throw new MeridianError(ErrorCode.InvalidDrRequest, `side topic ${sideTopic}/${partition} holds ${start} records, which is not a whole number of ${topic}/${partition}'s tail batches: something else wrote to it; move it aside and run the failback again`);
      }
      await region.produce(sideTopic, partition, anonymous(buf));
      copied += span;
    }
    const held = await region.replicatedEnd(sideTopic, partition);
    if (held > 0n) preservedAt = { first: '0', last: String(held - 1n) };
  }
  return {
    partition,
    truncateAt: String(cut),
    records: String(records),
    offsets: first === null ? null : { first: String(first), last: String(last) },
    timestamps: tsFirst === null ? null : { first: new Date(Number(tsFirst)).toISOString(), last: new Date(Number(tsLast)).toISOString() },
    ...(preservedAt === null ? {} : { preservedAt }),
  };
}

// Offsets inside a v2 record batch header (Kafka's RecordBatch grammar).
const CRC_OFFSET = 17;
const ATTRIBUTES_OFFSET = 21;
const PRODUCER_ID_OFFSET = 43;
const PRODUCER_EPOCH_OFFSET = 51;
const BASE_SEQUENCE_OFFSET = 53;
const TRANSACTIONAL = 0x10;

/**
 * A copy of `batch` as a producer without idempotence would send it: base offset 0, no
 * producer id, epoch or sequence, not transactional, CRC recomputed. The records are untouched.
 */
export function anonymous(batch: Buffer): Buffer {
  const b = Buffer.from(batch);
  b.writeBigInt64BE(0n, 0);
  b.writeInt16BE(b.readInt16BE(ATTRIBUTES_OFFSET) & ~TRANSACTIONAL, ATTRIBUTES_OFFSET);
  b.writeBigInt64BE(-1n, PRODUCER_ID_OFFSET);
  b.writeInt16BE(-1, PRODUCER_EPOCH_OFFSET);
  b.writeInt32BE(-1, BASE_SEQUENCE_OFFSET);
  b.writeUInt32BE(computeBatchCrc(b), CRC_OFFSET);
  return b;
}

/**
 * Kafka requests to the region's partition leaders, one connection per broker, each request
 * sent to the partition's leader as etcd names it now (waiting, up to the partition timeout,
 * while it has none). A refusal is an error naming the partition; the failback is run again.
 */
class RegionClients {
  readonly #o: ClusterFailbackOptions;
  readonly #topic: string;
  readonly #sideTopic: string;
  readonly #clients = new Map<string, LinkClient>();

  constructor(o: ClusterFailbackOptions, topic: string, sideTopic: string) {
    this.#o = o;
    this.#topic = topic;
    this.#sideTopic = sideTopic;
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  async #leader(topic: string, partition: number): Promise<{ leader: PartitionLeader; client: LinkClient }> {
    const deadline = Date.now() + this.#o.partitionTimeoutMs;
    for (;;) {
      const leader = this.#o.ops.leaderOf(topic, partition);
      if (leader !== undefined) {
        const address = `${leader.host}:${leader.port}`;
        let client = this.#clients.get(address);
        if (client === undefined) {
          client = new LinkClient({ address, clientId: this.#o.clientId, ...(this.#o.ops.security === undefined ? {} : { security: this.#o.ops.security }), requestTimeoutMs: this.#o.requestTimeoutMs });
          this.#clients.set(address, client);
        }
        return { leader, client };
      }
      if (Date.now() >= deadline) throw new MeridianError(ErrorCode.NotLeader, `${topic}/${partition} has no leader in the region (offline) after ${this.#o.partitionTimeoutMs} ms; bring one of its replicas back and run the failback again`, { retriable: true });
      await pause(POLL_MS);
    }
  }

  #refused(topic: string, partition: number, what: string, errorCode: number, message?: string | null): MeridianError {
    const info = kafkaErrorByCode(errorCode);
    if (info?.name === 'TOPIC_AUTHORIZATION_FAILED') {
      // ACLs changed since the failback's own check (failback.ts), or a principal it could not tell.
      const access = topic === this.#sideTopic ? ('Write' as const) : ('Read' as const);
      const security = this.#o.ops.security;
      const principal = (security === undefined ? formatPrincipal(ANONYMOUS) : linkPrincipal(security)) ?? '<the subject of replication.tls.certFile>';
      return new MeridianError(
        ErrorCode.InvalidDrRequest,
        `failback: ${what} of ${topic}/${partition} was refused by its leader: TOPIC_AUTHORIZATION_FAILED. Failback reads ${this.#topic} and writes ${this.#sideTopic} over the Kafka port as ${principal}, the principal of this region's in-region connections (replication.sasl / replication.tls), which needs ${access} on topic ${topic} (ClusterAction does not cover it). Grant it (${grantCommands(principal, [{ operation: access, topic }])}) and run the failback again; the topic stays failing-back until then`,
      );
    }
    // Retriable as Kafka classifies the code (a leader change, a fenced epoch, a timeout).
    return new MeridianError(ErrorCode.RemoteUnavailable, `failback: ${what} of ${topic}/${partition} was refused by its leader: ${info?.name ?? String(errorCode)}${message ? ` (${message})` : ''}; run the failback again`, { retriable: info?.retriable ?? false });
  }

  /** The leader's log end (OffsetForLeaderEpoch of its current epoch: Kafka answers the log end). */
  async logEnd(topic: string, partition: number): Promise<bigint> {
    const { leader, client } = await this.#leader(topic, partition);
    const req = { replicaId: -1, topics: [{ topic, partitions: [{ partition, currentLeaderEpoch: leader.leaderEpoch, leaderEpoch: leader.leaderEpoch }] }] };
    const res = decodeOffsetForLeaderEpochResponse(await client.request(ApiKey.OffsetForLeaderEpoch, OFFSET_FOR_LEADER_EPOCH_VERSION, (w) => encodeOffsetForLeaderEpochRequest(w, OFFSET_FOR_LEADER_EPOCH_VERSION, req)), OFFSET_FOR_LEADER_EPOCH_VERSION);
    const p = res.topics[0]?.partitions[0];
    if (p === undefined) throw this.#refused(topic, partition, 'the log end', -1, 'empty answer');
    if (p.errorCode !== 0) throw this.#refused(topic, partition, 'the log end', p.errorCode);
    return p.endOffset;
  }

  /** The leader's high watermark (ListOffsets latest, read uncommitted). */
  async #highWatermark(topic: string, partition: number): Promise<bigint> {
    const { leader, client } = await this.#leader(topic, partition);
    const req = { replicaId: -1, isolationLevel: 0, timeoutMs: this.#o.requestTimeoutMs, topics: [{ name: topic, partitions: [{ partitionIndex: partition, currentLeaderEpoch: leader.leaderEpoch, timestamp: -1n, maxNumOffsets: 1 }] }] };
    const res = decodeListOffsetsResponse(await client.request(ApiKey.ListOffsets, LIST_OFFSETS_VERSION, (w) => encodeListOffsetsRequest(w, LIST_OFFSETS_VERSION, req)), LIST_OFFSETS_VERSION);
    const p = res.topics[0]?.partitions[0];
    if (p === undefined) throw this.#refused(topic, partition, 'the high watermark', -1, 'empty answer');
    if (p.errorCode !== 0) throw this.#refused(topic, partition, 'the high watermark', p.errorCode);
    return p.offset;
  }

  /**
   * Where the partition's replicated log ends once nothing is on its way: its leader's log
   * end, waited for until the high watermark reached it (the in-sync replicas hold it all).
   */
  async replicatedEnd(topic: string, partition: number): Promise<bigint> {
    const deadline = Date.now() + this.#o.partitionTimeoutMs;
    for (;;) {
      const end = await this.logEnd(topic, partition);
      const hw = await this.#highWatermark(topic, partition);
      if (hw >= end) return end;
      if (Date.now() >= deadline) throw new MeridianError(ErrorCode.ReplicationTimedOut, `failback: ${topic}/${partition}'s high watermark ${hw} did not reach its leader's log end ${end} within ${this.#o.partitionTimeoutMs} ms (its in-sync replicas are behind); run the failback again`, { retriable: true });
      await pause(POLL_MS);
    }
  }

  /** The batches of [from, end) from the leader, in order, as stored there. */
  async *read(topic: string, partition: number, from: bigint, end: bigint): AsyncGenerator<{ buf: Buffer; h: BatchHeader }> {
    let offset = from;
    const deadline = Date.now() + this.#o.partitionTimeoutMs;
    while (offset < end) {
      const { leader, client } = await this.#leader(topic, partition);
      const req = {
        clusterId: null,
        replicaId: -1,
        replicaState: { replicaId: -1, replicaEpoch: -1n },
        maxWaitMs: POLL_MS,
        minBytes: 1,
        maxBytes: FETCH_MAX_BYTES,
        isolationLevel: 0,
        sessionId: 0,
        sessionEpoch: -1,
        topics: [{ topic, topicId: ZERO_UUID, partitions: [{ partition, currentLeaderEpoch: leader.leaderEpoch, fetchOffset: offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: FETCH_MAX_BYTES, replicaDirectoryId: ZERO_UUID }] }],
        forgottenTopicsData: [],
        rackId: '',
      };
      const res = decodeFetchResponse(await client.request(ApiKey.Fetch, FETCH_VERSION, (w) => encodeFetchRequest(w, FETCH_VERSION, req)), FETCH_VERSION);
      const p = res.responses[0]?.partitions[0];
      if (res.errorCode !== 0) throw this.#refused(topic, partition, 'the read of the divergent tail', res.errorCode);
      if (p === undefined) throw this.#refused(topic, partition, 'the read of the divergent tail', -1, 'empty answer');
      if (p.errorCode !== 0) throw this.#refused(topic, partition, 'the read of the divergent tail', p.errorCode);
      const got = p.records ?? Buffer.alloc(0);
      let moved = false;
      for (let pos = 0; pos + 61 <= got.length; ) {
        const h = readBatchHeader(got, pos);
        const size = h.batchLength + LOG_OVERHEAD;
        if (pos + size > got.length) break; // a partial batch at the end of the answer
        const buf = got.subarray(pos, pos + size);
        pos += size;
        if (lastOffsetOf(h) < offset) continue;
        if (h.baseOffset >= end) return;
        offset = lastOffsetOf(h) + 1n;
        moved = true;
        yield { buf, h };
      }
      if (!moved && Date.now() >= deadline) {
        throw new MeridianError(ErrorCode.ReplicationTimedOut, `failback: ${topic}/${partition} served nothing past offset ${offset} within ${this.#o.partitionTimeoutMs} ms though its leader's log ends at ${end} (its high watermark stays at ${p.highWatermark}: the in-sync replicas are behind); run the failback again`, { retriable: true });
      }
    }
  }

  /** Appends one batch to the partition through its leader, acks=all. */
  async produce(topic: string, partition: number, batch: Buffer): Promise<void> {
    const { client } = await this.#leader(topic, partition);
    const req = { transactionalId: null, acks: -1, timeoutMs: this.#o.requestTimeoutMs, topicData: [{ name: topic, partitionData: [{ index: partition, records: batch }] }] };
    const res = decodeProduceResponse(await client.request(ApiKey.Produce, PRODUCE_VERSION, (w) => encodeProduceRequest(w, PRODUCE_VERSION, req)), PRODUCE_VERSION);
    const p = res.responses[0]?.partitionResponses[0];
    if (p === undefined) throw this.#refused(topic, partition, 'the copy to the side topic', -1, 'empty answer');
    if (p.errorCode !== 0) throw this.#refused(topic, partition, 'the copy to the side topic', p.errorCode, p.errorMessage);
  }
}

/**
 * `attempt` again while it fails retriably (a connection lost, a leader moving: the
 * requests go to the leader etcd names at each attempt), within the partition timeout.
 */
async function retrying<T>(o: ClusterFailbackOptions, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + o.partitionTimeoutMs;
  for (let backoff = POLL_MS; ; backoff = Math.min(backoff * 2, 1000)) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof MeridianError && err.retriable) || Date.now() + backoff >= deadline) throw err;
    }
    await pause(backoff);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
