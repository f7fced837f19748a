/**
 * Fetch, ListOffsets and OffsetForLeaderEpoch, read through the partitions' log views
 * (storage/log-view.ts), so offsets offloaded to the object store answer as local ones do.
 * Stored batches go back exactly as stored; there are no transactions, so the last stable
 * offset is the high watermark and no transaction is ever aborted; `preferredReadReplica`
 * is always -1 (anything else redirects both clients).
 *
 * Fetch versions: v12+ flexible (the tagged divergingEpoch, currentLeader and snapshotId
 * stay at their defaults: there is one leader and no epochs); v13+ names topics by id
 * (resolved through the topic manager; an unknown id is UNKNOWN_TOPIC_ID); v15 moves the
 * replica id into replicaState (only consumers fetch here). `currentLeaderEpoch` is not
 * checked: Metadata reports no leader epoch, so clients send -1.
 *
 * Fetch sessions (KIP-227, fetch-sessions.ts): an INITIAL fetch (epoch 0) opens a session
 * when the cache has room and is answered with its id; incremental fetches then name only
 * the partitions that changed, read every partition of the session (so a long-poll wakes on
 * an append to any of them, listed in the request or not), and are answered with only the
 * partitions that have records, an error, or a new high watermark or log start offset.
 * Without `deps.fetchSessions` (handler tests) no session is granted: INITIAL is answered
 * with id 0 and an incremental fetch with FETCH_SESSION_ID_NOT_FOUND, as Kafka's full cache
 * would.
 *
 * Authorization (authorize.ts): Fetch needs READ on each topic, ListOffsets and
 * OffsetForLeaderEpoch DESCRIBE; a denied topic's partitions get TOPIC_AUTHORIZATION_FAILED
 * and are not read.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { FetchRequest, FetchResponse, FetchResponsePartitionData } from '../../protocol/kafka/messages/fetch.js';
import type { ListOffsetsRequest, ListOffsetsResponse } from '../../protocol/kafka/messages/list-offsets.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import type { LogView } from '../../storage/log-view.js';
import { fetchPartitions, type FetchOptions, type FetchPartitionRequest, type FetchPartitionResult } from '../fetch-partitions.js';
import type { ReplicaManager } from '../../cluster/replica-manager.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { handleOffsetForLeaderEpoch } from './offset-for-leader-epoch.js';
import { FetchSessions, type SessionPartition } from './fetch-sessions.js';
import { AclOperation, deniedTopics, enforcing, UNKNOWN_REQUESTER, type Requester } from './authorize.js';

export const FETCH_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.Fetch, versions: [4, 17], handle: (d, c, req, v) => handleFetch(d, c, req, v) },
  { key: ApiKey.ListOffsets, versions: [1, 9], handle: (d, c, req) => handleListOffsets(d, req, c) },
  // A region cluster's leader answers from its epochs (ReplicaManager.offsetForLeaderEpoch).
  {
    key: ApiKey.OffsetForLeaderEpoch,
    versions: [0, 4],
    handle: (d, c, req) => {
      const rm = d.replicaManager;
      return rm === undefined ? handleOffsetForLeaderEpoch(d, req, c) : handleOffsetForLeaderEpoch(d, req, c, (_log, q) => rm.offsetForLeaderEpoch(q.topic, q.partition, q.currentLeaderEpoch, q.leaderEpoch));
    },
  },
];

/** ListOffsets' special timestamps (ListOffsetsRequest.java). */
const LATEST = -1n;
const EARLIEST = -2n;
const MAX_TIMESTAMP = -3n;
const EARLIEST_LOCAL = -4n;
const LATEST_TIERED = -5n;

/** Fetch v13+ names topics by id. */
const TOPIC_IDS_FROM = 13;

export async function handleFetch(deps: KafkaApiDeps, ctx: RequestContext, req: FetchRequest, version: number): Promise<FetchResponse> {
  const sessions = deps.fetchSessions ?? sessionsNotGranted(deps);
  const plan = sessions.open(ctx, req, version);
  if (plan.kind === 'error') {
    deps.logger.debug({ sessionId: req.sessionId, sessionEpoch: req.sessionEpoch, clientId: ctx.header.clientId, error: plan.errorCode }, 'fetch session error');
    return { throttleTimeMs: 0, errorCode: kafkaCode(plan.errorCode), sessionId: 0, responses: [], nodeEndpoints: [] };
  }
  const answered = await readPartitions(deps, ctx, req, plan.partitions, version);
  let sessionId = 0;
  let sent = answered;
  if (plan.kind === 'full') sessionId = sessions.created(ctx, version, answered);
  else if (plan.kind === 'incremental') {
    sessionId = plan.sessionId;
    sent = sessions.respond(plan.sessionId, answered);
  }
  return { throttleTimeMs: 0, errorCode: 0, sessionId, responses: byTopic(sent, version), nodeEndpoints: [] };
}

interface Answered {
  p: SessionPartition;
  data: FetchResponsePartitionData;
}

/**
 * Reads `partitions` (long-polling per the request) and answers each, in order: a topic id
 * that names no topic is UNKNOWN_TOPIC_ID, a topic the principal may not READ is
 * TOPIC_AUTHORIZATION_FAILED (checked on every request, a session's partitions included),
 * and neither is read.
 */
async function readPartitions(deps: KafkaApiDeps, ctx: RequestContext, req: FetchRequest, partitions: readonly SessionPartition[], version: number): Promise<Answered[]> {
  const sec = enforcing(deps);
  const names = new Set<string>();
  for (const p of partitions) if (p.topic !== null) names.add(p.topic);
  const rm = deps.replicaManager;
  // A follower's fetch (replica_id >= 0 in a region cluster) needs ClusterAction on the
  // cluster, as in Kafka, instead of READ on each topic; without it every partition is
  // TOPIC_AUTHORIZATION_FAILED (Kafka's answer too).
  const replicaId = version >= 15 ? req.replicaState.replicaId : req.replicaId;
  const denied = sec === null ? null : replicaId >= 0 && rm !== undefined ? (sec.authorizeCluster(ctx, AclOperation.ClusterAction) ? null : names) : deniedTopics(sec, ctx, AclOperation.Read, [...names]);
  const cluster = rm === undefined ? undefined : clusterFetch(rm, req, version, partitions);
  const wanted: FetchPartitionRequest[] = [];
  for (const p of partitions) {
    if (p.topic === null || denied?.has(p.topic) || cluster?.refused.has(p)) continue;
    wanted.push({ topic: p.topic, partition: p.partition, fetchOffset: p.fetchOffset, maxBytes: p.maxBytes });
  }
  const pool = deps.readBuffers;
  const results = await fetchPartitions(deps.logs, wanted, {
    maxBytes: req.maxBytes,
    minBytes: req.minBytes,
    maxWaitMs: req.maxWaitMs,
    signal: ctx.signal,
    pool,
    // The response references these buffers until the socket has taken its bytes.
    keep: (slab) => ctx.afterWrite(() => pool.release(slab)),
    ...(cluster === undefined ? {} : cluster.options),
  });
  let i = 0;
  return partitions.map((p) => {
    if (p.topic === null) return { p, data: unknownTopicId(p.partition) };
    if (denied?.has(p.topic)) return { p, data: unauthorized(p.partition) };
    const refused = cluster?.refused.get(p);
    if (refused !== undefined) return { p, data: partitionData({ topic: p.topic, partition: p.partition, errorCode: refused, highWatermark: -1n, logStartOffset: -1n, records: null }) };
    return { p, data: partitionData(results[i++]!) };
  });
}

/**
 * A fetch in a region cluster (src/cluster/replica-manager.ts): each partition must be led
 * here, at the request's current_leader_epoch when it names one; a follower's fetch
 * (replica_id >= 0) records its progress and reads to the log end, a consumer's reads to
 * the replicated high watermark and its long poll also wakes when that moves.
 */
function clusterFetch(rm: ReplicaManager, req: FetchRequest, version: number, partitions: readonly SessionPartition[]): { refused: Map<SessionPartition, number>; options: Pick<FetchOptions, 'bounds' | 'watch'> } {
  const replicaId = version >= 15 ? req.replicaState.replicaId : req.replicaId;
  const follower = replicaId >= 0;
  const epochs = new Map<string, number>();
  // A follower's log start (v5+), so DeleteRecords can wait until every replica moved its own.
  const starts = new Map<string, bigint>();
  for (const t of req.topics) {
    for (const p of t.partitions) {
      const k = `${version >= TOPIC_IDS_FROM ? t.topicId : t.topic}\u0000${p.partition}`;
      epochs.set(k, p.currentLeaderEpoch);
      starts.set(k, p.logStartOffset);
    }
  }
  const refused = new Map<SessionPartition, number>();
  for (const p of partitions) {
    if (p.topic === null) continue;
    const epoch = epochs.get(`${version >= TOPIC_IDS_FROM ? p.topicId : p.topic}\u0000${p.partition}`) ?? -1;
    const err = rm.checkFetch(p.topic, p.partition, replicaId, epoch);
    if (err !== null) refused.set(p, toKafkaError(err).code);
    else if (follower) rm.followerFetched(replicaId, p.topic, p.partition, p.fetchOffset, starts.get(`${version >= TOPIC_IDS_FROM ? p.topicId : p.topic}\u0000${p.partition}`) ?? -1n);
  }
  const options: Pick<FetchOptions, 'bounds' | 'watch'> = { bounds: (view) => rm.fetchBounds(view, follower) };
  // A follower's answer waits only for appends (what it copies), never for the high watermark.
  if (!follower) options.watch = (log, wake) => rm.watch(log, wake);
  return { refused, options };
}

/**
 * The response's topics: each topic once, in the order its first partition comes, with its
 * partitions in order (a full fetch's answer follows the request's order).
 */
function byTopic(answered: readonly Answered[], version: number): FetchResponse['responses'] {
  const topics = new Map<string, FetchResponse['responses'][number]>();
  for (const { p, data } of answered) {
    const key = version >= TOPIC_IDS_FROM ? p.topicId : (p.topic ?? '');
    let t = topics.get(key);
    if (t === undefined) {
      t = { topic: version >= TOPIC_IDS_FROM ? '' : (p.topic ?? ''), topicId: p.topicId, partitions: [] };
      topics.set(key, t);
    }
    t.partitions.push(data);
  }
  return [...topics.values()];
}

/** Handler tests build deps without a session cache: no session is ever granted. */
function sessionsNotGranted(deps: KafkaApiDeps): FetchSessions {
  return new FetchSessions({ slots: 0, evictionMs: 0, topicName: (id) => deps.topics.getTopicById(id)?.name ?? null });
}

const NO_RECORDS: Buffer = Buffer.alloc(0);
// The fields every partition answers alike, shared rather than built per partition per
// fetch (a full fetch of 10,000 partitions built 50,000 of these objects; the encoder only
// reads them).
const NO_DIVERGING_EPOCH = Object.freeze({ epoch: -1, endOffset: -1n });
const NO_CURRENT_LEADER = Object.freeze({ leaderId: -1, leaderEpoch: -1 });
const NO_SNAPSHOT_ID = Object.freeze({ endOffset: -1n, epoch: -1 });
const NO_ABORTED_TRANSACTIONS: [] = Object.freeze([]) as unknown as [];

function partitionData(r: FetchPartitionResult): FetchResponsePartitionData {
  return {
    partitionIndex: r.partition,
    errorCode: r.errorCode,
    highWatermark: r.highWatermark,
    lastStableOffset: r.highWatermark,
    logStartOffset: r.logStartOffset,
    divergingEpoch: NO_DIVERGING_EPOCH,
    currentLeader: NO_CURRENT_LEADER,
    snapshotId: NO_SNAPSHOT_ID,
    abortedTransactions: r.errorCode === 0 ? NO_ABORTED_TRANSACTIONS : null,
    preferredReadReplica: -1,
    // Kafka answers an error partition with empty records, never null (FetchResponse
    // .partitionResponse): librdkafka reads a null record set at v11 as an invalid size.
    records: r.records ?? NO_RECORDS,
  };
}

function unknownTopicId(partition: number): FetchResponsePartitionData {
  return partitionData({ topic: '', partition, errorCode: kafkaCode('UNKNOWN_TOPIC_ID'), highWatermark: -1n, logStartOffset: -1n, records: null });
}

/** A denied topic's partition. */
function unauthorized(partition: number): FetchResponsePartitionData {
  return partitionData({ topic: '', partition, errorCode: kafkaCode('TOPIC_AUTHORIZATION_FAILED'), highWatermark: -1n, logStartOffset: -1n, records: null });
}

export async function handleListOffsets(deps: KafkaApiDeps, req: ListOffsetsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<ListOffsetsResponse> {
  const sec = enforcing(deps);
  const denied = sec === null ? null : deniedTopics(sec, who, AclOperation.Describe, req.topics.map((t) => t.name));
  const topics = await Promise.all(
    req.topics.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(
        t.partitions.map(async (p) => {
          const base = { partitionIndex: p.partitionIndex, oldStyleOffsets: [] as bigint[], leaderEpoch: -1 };
          if (denied?.has(t.name)) return { ...base, errorCode: kafkaCode('TOPIC_AUTHORIZATION_FAILED'), timestamp: -1n, offset: -1n };
          const view = deps.logs.view(t.name, p.partitionIndex);
          if (view === undefined) return { ...base, errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'), timestamp: -1n, offset: -1n };
          try {
            // A region cluster: the leader answers, and LATEST is the replicated high watermark.
            const rm = deps.replicaManager;
            const refused = rm?.checkFetch(t.name, p.partitionIndex, -1, p.currentLeaderEpoch) ?? null;
            if (refused !== null) throw refused;
            if (rm === undefined) {
              const hit = await listOffset(view, p.timestamp);
              return { ...base, errorCode: 0, timestamp: hit.timestamp, offset: hit.offset };
            }
            const hw = rm.fetchBounds(view, false).highWatermark;
            const hit = await listOffset(view, p.timestamp, () => hw);
            // Kafka's rules on a replicated partition (KIP-207): while a new leader's high
            // watermark is below the start of its epoch, LATEST, and a timestamp lookup that
            // lands at or past it, answer OFFSET_NOT_AVAILABLE (retriable: the offset could
            // otherwise go backwards); after that, a lookup landing past the high watermark
            // finds nothing a consumer may read yet.
            const lagging = hw < (rm.leaderEpochStartOffset(t.name, p.partitionIndex) ?? hw);
            const lookup = p.timestamp >= 0n;
            if (lagging && (p.timestamp === LATEST || (lookup && (hit.offset < 0n || hit.offset >= hw)))) {
              return { ...base, errorCode: kafkaCode('OFFSET_NOT_AVAILABLE'), timestamp: -1n, offset: -1n };
            }
            if (lookup && hit.offset >= hw) return { ...base, errorCode: 0, timestamp: -1n, offset: -1n };
            return { ...base, errorCode: 0, timestamp: hit.timestamp, offset: hit.offset };
          } catch (err) {
            return { ...base, errorCode: toKafkaError(err).code, timestamp: -1n, offset: -1n };
          }
        }),
      ),
    })),
  );
  return { throttleTimeMs: 0, topics };
}

/**
 * One partition's ListOffsets answer, as Kafka's UnifiedLog.fetchOffsetByTimestamp gives
 * it: the special timestamps answer with timestamp -1 except MAX_TIMESTAMP, which names
 * the record with the largest timestamp and that timestamp; any other value is the first
 * record at or after it (offset -1, timestamp -1 when there is none).
 */
async function listOffset(view: LogView, timestamp: bigint, highWatermark?: () => bigint): Promise<{ offset: bigint; timestamp: bigint }> {
  const none = { offset: -1n, timestamp: -1n };
  switch (timestamp) {
    case EARLIEST:
      return { offset: view.logStartOffset, timestamp: -1n };
    case LATEST:
      return { offset: highWatermark?.() ?? view.highWatermark, timestamp: -1n };
    case MAX_TIMESTAMP:
      return (await view.maxTimestampHit()) ?? none;
    case EARLIEST_LOCAL:
      return { offset: view.localLogStartOffset, timestamp: -1n };
    case LATEST_TIERED:
      return { offset: view.latestTieredOffset, timestamp: -1n };
    default:
      return (await view.offsetForTimestamp(timestamp)) ?? none;
  }
}
