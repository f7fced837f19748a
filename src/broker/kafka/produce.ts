/**
 * Produce and InitProducerId.
 *
 * acks: 0 → appended, no response at all; 1 → answered once written (survives a process
 * crash); -1 → answered once fdatasync'd in flush mode `fsync` (group commit), or once
 * written in mode `interval`. Partitions of one request are appended concurrently, so they
 * share the log's group commit.
 */
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { InitProducerIdRequest, InitProducerIdResponse } from '../../protocol/kafka/messages/init-producer-id.js';
import type { ProduceRequest, ProduceResponse } from '../../protocol/kafka/messages/produce.js';
import { producePartition } from '../produce-partition.js';
import type { KafkaApiDeps } from '../kafka-api.js';

export async function handleProduce(deps: KafkaApiDeps, req: ProduceRequest): Promise<ProduceResponse | null> {
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
  const responses = await Promise.all(
    req.topicData.map(async (t) => ({
      name: t.name,
      partitionResponses: await Promise.all(
        t.partitionData.map(async (p) => {
          const log = deps.topics.partition(t.name, p.index);
          if (log === undefined) return partitionError(p.index, kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'), `unknown topic or partition ${t.name}-${p.index}`);
          const r = await producePartition(log, deps.producerStates, p.records, sync);
          if (r.errorCode !== 0) deps.logger.debug({ topic: t.name, partition: p.index, errorCode: r.errorCode, message: r.errorMessage }, 'produce rejected');
          return {
            index: p.index,
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

function partitionError(index: number, errorCode: number, errorMessage: string): ProduceResponse['responses'][number]['partitionResponses'][number] {
  return { index, errorCode, baseOffset: -1n, logAppendTimeMs: -1n, logStartOffset: -1n, recordErrors: [], errorMessage, currentLeader: { leaderId: -1, leaderEpoch: -1 } };
}

export function handleInitProducerId(deps: KafkaApiDeps, req: InitProducerIdRequest): InitProducerIdResponse {
  if (req.transactionalId !== null) {
    return { throttleTimeMs: 0, errorCode: kafkaCode('TRANSACTIONAL_ID_AUTHORIZATION_FAILED'), producerId: -1n, producerEpoch: -1 };
  }
  return { throttleTimeMs: 0, errorCode: 0, producerId: deps.producerIds.next(), producerEpoch: 0 };
}
