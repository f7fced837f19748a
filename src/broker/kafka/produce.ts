/**
 * Produce and InitProducerId.
 *
 * acks: 0 → appended, no response at all; 1 → answered once written (survives a process
 * crash); -1 → answered once fdatasync'd in flush mode `fsync` (group commit), or once
 * written in mode `interval`. Partitions of one request are appended concurrently, so they
 * share the log's group commit.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { InitProducerIdRequest, InitProducerIdResponse } from '../../protocol/kafka/messages/init-producer-id.js';
import type { ProduceRequest, ProduceResponse } from '../../protocol/kafka/messages/produce.js';
import { beginProducePartition, type ProduceOutcome } from '../produce-partition.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

/**
 * Produce is served from v3 (RecordBatch) but *advertised* from v0: librdkafka 2.0.2 uses
 * gzip, snappy and lz4 only if the broker's Produce range includes v0
 * (rdkafka_msgset_writer.c); otherwise it silently sends those batches uncompressed. Kafka
 * 4.0 hit the same (KAFKA-18659) and, like it, Meridian answers v0-v2 with
 * UNSUPPORTED_VERSION: no client that speaks RecordBatch sends them.
 */
export const PRODUCE_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.Produce, versions: [3, 7], advertised: [0, 7], handle: (d, c, req) => handleProduce(d, c, req) },
  { key: ApiKey.InitProducerId, versions: [0, 1], handle: (d, _c, req) => handleInitProducerId(d, req) },
];

export async function handleProduce(deps: KafkaApiDeps, ctx: RequestContext, req: ProduceRequest): Promise<ProduceResponse | null> {
  if (req.transactionalId !== null) {
    // Transactions are not offered (no transactional InitProducerId is ever granted).
    return {
      responses: req.topicData.map((t) => ({
        name: t.name,
        partitionResponses: t.partitionData.map((p) => partitionError(p.index, kafkaCode('TRANSACTIONAL_ID_AUTHORIZATION_FAILED'), 'transactions are not supported')),
      })),
      throttleTimeMs: 0,
      nodeEndpoints: [],
    };
  }
  const sync = req.acks === -1 && deps.config.log.flush.mode === 'fsync';
  // Phase 1: every partition's batches get their offsets (in request order per partition).
  const begun = await Promise.all(
    req.topicData.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(
        t.partitionData.map(async (p) => {
          const log = deps.topics.partition(t.name, p.index);
          if (log === undefined) return { index: p.index, done: Promise.resolve(unknownPartition(t.name, p.index)) };
          return { index: p.index, done: (await beginProducePartition(log, deps.producerStates, p.records, sync)).done };
        }),
      ),
    })),
  );
  // The connection may now handle the next request: its appends land after these.
  ctx.release();
  // Phase 2: wait for the durability the acks asked for.
  const responses = await Promise.all(
    begun.map(async (t) => ({
      name: t.name,
      partitionResponses: await Promise.all(
        t.partitions.map(async ({ index, done }) => {
          const r = await done;
          if (r.errorCode !== 0) deps.logger.debug({ topic: t.name, partition: index, errorCode: r.errorCode, message: r.errorMessage }, 'produce rejected');
          return {
            index,
            errorCode: r.errorCode,
            baseOffset: r.baseOffset,
            logAppendTimeMs: -1n,
            logStartOffset: r.logStartOffset,
            recordErrors: [],
            errorMessage: r.errorMessage,
            currentLeader: { leaderId: -1, leaderEpoch: -1 },
          };
        }),
      ),
    })),
  );
  if (req.acks === 0) return null;
  return { responses, throttleTimeMs: 0, nodeEndpoints: [] };
}

function unknownPartition(topic: string, index: number): ProduceOutcome {
  return { errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'), errorMessage: `unknown topic or partition ${topic}-${index}`, baseOffset: -1n, logStartOffset: -1n };
}

function partitionError(index: number, errorCode: number, errorMessage: string): ProduceResponse['responses'][number]['partitionResponses'][number] {
  return { index, errorCode, baseOffset: -1n, logAppendTimeMs: -1n, logStartOffset: -1n, recordErrors: [], errorMessage, currentLeader: { leaderId: -1, leaderEpoch: -1 } };
}

export function handleInitProducerId(deps: KafkaApiDeps, req: InitProducerIdRequest): InitProducerIdResponse {
  if (req.transactionalId !== null) {
    return { throttleTimeMs: 0, errorCode: kafkaCode('TRANSACTIONAL_ID_AUTHORIZATION_FAILED'), producerId: -1n, producerEpoch: -1 };
  }
  return { throttleTimeMs: 0, errorCode: 0, producerId: deps.producerIds.next(), producerEpoch: 0 };
}
