/**
 * Produce and consumer Fetch over a bare socket (test/helpers/raw-kafka.ts) for the
 * replication tests, which check exact error codes and high watermarks that a client
 * library would retry or hide.
 */
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { ZERO_UUID } from '../../src/protocol/kafka/messages/index.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { RawClient } from '../helpers/raw-kafka.js';

export async function rawProduce(port: number, topic: string, partition: number, values: string[], acks: number, timeoutMs = 10_000): Promise<{ errorCode: number; baseOffset: bigint }> {
  const c = await RawClient.connect(port);
  try {
    const records = encodeBatch({ records: values.map((v) => ({ value: Buffer.from(v) })) });
    const r = await c.request(ApiKey.Produce, 7, { transactionalId: null, acks, timeoutMs, topicData: [{ name: topic, partitionData: [{ index: partition, records }] }] });
    const p = r.body.responses[0].partitionResponses[0];
    return { errorCode: p.errorCode, baseOffset: p.baseOffset };
  } finally {
    c.close();
  }
}

/** A consumer's fetch (replica_id -1) of one partition from `offset`, answered at once. */
export async function rawFetch(port: number, topic: string, partition: number, offset: bigint, currentLeaderEpoch = -1): Promise<{ errorCode: number; highWatermark: bigint; bytes: number }> {
  const c = await RawClient.connect(port);
  try {
    const r = await c.request(ApiKey.Fetch, 11, {
      clusterId: null,
      replicaId: -1,
      replicaState: { replicaId: -1, replicaEpoch: -1n },
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 1 << 20,
      isolationLevel: 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic, topicId: ZERO_UUID, partitions: [{ partition, currentLeaderEpoch, fetchOffset: offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: ZERO_UUID }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    const p = r.body.responses[0].partitions[0];
    return { errorCode: p.errorCode, highWatermark: p.highWatermark, bytes: p.records?.length ?? 0 };
  } finally {
    c.close();
  }
}
