/**
 * Fetch and ListOffsets, read through the partitions' log views (storage/log-view.ts), so
 * offsets offloaded to the object store answer as local ones do. Stored batches go back
 * exactly as stored; there are no transactions, so the last stable offset is the high
 * watermark and no transaction is ever aborted; `preferredReadReplica` is always -1
 * (anything else redirects both clients).
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { FetchRequest, FetchResponse } from '../../protocol/kafka/messages/fetch.js';
import type { ListOffsetsRequest, ListOffsetsResponse } from '../../protocol/kafka/messages/list-offsets.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { fetchPartitions, type FetchPartitionRequest } from '../fetch-partitions.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const FETCH_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.Fetch, versions: [4, 11], handle: (d, c, req) => handleFetch(d, c, req) },
  { key: ApiKey.ListOffsets, versions: [1, 3], handle: (d, _c, req) => handleListOffsets(d, req) },
];

const LATEST = -1n;
const EARLIEST = -2n;
const MAX_TIMESTAMP = -3n;

export async function handleFetch(deps: KafkaApiDeps, ctx: RequestContext, req: FetchRequest): Promise<FetchResponse> {
  const wanted: FetchPartitionRequest[] = [];
  for (const t of req.topics) {
    for (const p of t.partitions) wanted.push({ topic: t.topic, partition: p.partition, fetchOffset: p.fetchOffset, maxBytes: p.partitionMaxBytes });
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
  });
  let i = 0;
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    sessionId: 0,
    responses: req.topics.map((t) => ({
      topic: t.topic,
      topicId: '00000000-0000-0000-0000-000000000000',
      partitions: t.partitions.map(() => {
        const r = results[i++];
        return {
          partitionIndex: r.partition,
          errorCode: r.errorCode,
          highWatermark: r.highWatermark,
          lastStableOffset: r.highWatermark,
          logStartOffset: r.logStartOffset,
          divergingEpoch: { epoch: -1, endOffset: -1n },
          currentLeader: { leaderId: -1, leaderEpoch: -1 },
          snapshotId: { endOffset: -1n, epoch: -1 },
          abortedTransactions: r.errorCode === 0 ? [] : null,
          preferredReadReplica: -1,
          records: r.records,
        };
      }),
    })),
    nodeEndpoints: [],
  };
}

export async function handleListOffsets(deps: KafkaApiDeps, req: ListOffsetsRequest): Promise<ListOffsetsResponse> {
  const topics = await Promise.all(
    req.topics.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(
        t.partitions.map(async (p) => {
          const base = { partitionIndex: p.partitionIndex, oldStyleOffsets: [] as bigint[], leaderEpoch: -1 };
          const view = deps.logs.view(t.name, p.partitionIndex);
          if (view === undefined) return { ...base, errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'), timestamp: -1n, offset: -1n };
          try {
            if (p.timestamp === EARLIEST) return { ...base, errorCode: 0, timestamp: -1n, offset: view.logStartOffset };
            if (p.timestamp === LATEST || p.timestamp === MAX_TIMESTAMP) return { ...base, errorCode: 0, timestamp: -1n, offset: view.highWatermark };
            const hit = await view.offsetForTimestamp(p.timestamp);
            // No record at or after the timestamp: Kafka answers offset -1, timestamp -1.
            return hit === null ? { ...base, errorCode: 0, timestamp: -1n, offset: -1n } : { ...base, errorCode: 0, timestamp: hit.timestamp, offset: hit.offset };
          } catch (err) {
            return { ...base, errorCode: toKafkaError(err).code, timestamp: -1n, offset: -1n };
          }
        }),
      ),
    })),
  );
  return { throttleTimeMs: 0, topics };
}
